//! Load a zoo model by id, draw images, save them as a PNG grid and score them.
//!
//!     cargo run --release --example sample -- pixelcnn-mnist 4 samples.png
use pixel_zoo::data::files::{grid, write_png};
use pixel_zoo::{Device, SampleOptions, Zoo};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let id = args.next().unwrap_or_else(|| "pixelcnn-mnist".into());
    let count: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(4);
    let out = args.next().unwrap_or_else(|| "samples.png".into());

    let zoo = Zoo::new()?;
    let model = zoo.load(&id, &Device::Cpu)?;
    let opts = SampleOptions { count, seed: 1, ..Default::default() };
    let images = pixel_zoo::sample(model.as_ref(), &opts, &mut |row, rows| eprint!("\rrow {row}/{rows}"))?.images;
    eprintln!();

    // Score what we drew: −log p(x) in nats and bits/dim.
    for (i, bpd) in model.bits_per_dim(&images)?.iter().enumerate() {
        println!("sample {i}: {bpd:.4} bits/dim");
    }
    let spec = model.spec();
    let pixels = images.flatten_all()?.to_vec1::<u8>()?;
    write_png(&grid(&pixels, count, &pixel_zoo::pixel_format(&spec), count, 2), out.as_ref())?;
    println!("wrote {out}");
    Ok(())
}
