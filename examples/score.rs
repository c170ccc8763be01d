//! Score image files with a zoo model: NLL in nats and bits/dim, and the log-probabilities.
//!
//!     cargo run --release --example score -- pixelcnn-cifar10 image.png
use pixel_zoo::data::files::read_image;
use pixel_zoo::{Device, Tensor, Zoo};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let id = args.next().ok_or_else(|| anyhow::anyhow!("usage: score MODEL-ID IMAGE..."))?;
    let zoo = Zoo::new()?;
    let model = zoo.load(&id, &Device::Cpu)?;
    let spec = model.spec();
    for path in args {
        let pixels = read_image(path.as_ref(), &pixel_zoo::pixel_format(&spec))?;
        let x = Tensor::from_vec(pixels, (1, spec.channels, spec.height, spec.width), model.device())?;
        let nats = model.nll(&x)?.to_vec1::<f32>()?[0];
        // (1, c, levels, h, w): log p of every value of every conditional.
        let log_probs = model.log_probs(&x)?;
        println!(
            "{path}: {nats:.2} nats, {:.4} bits/dim, log-probs {:?}",
            model.bits_per_dim(&x)?[0],
            log_probs.dims()
        );
    }
    Ok(())
}
