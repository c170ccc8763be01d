//! Upscale test-like images with a multi-scale model: take the small image x[::2, ::2] of a few
//! samples, draw upscalings of it, and print how likely each upscaling is given its small image.
//!
//!     cargo run --release --example upscale -- multiscale-mnist 2 upscaled.png
use pixel_zoo::data::files::{grid, write_png};
use pixel_zoo::{Device, SampleOptions, Zoo};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let id = args.next().unwrap_or_else(|| "multiscale-mnist".into());
    let count: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(2);
    let out = args.next().unwrap_or_else(|| "upscaled.png".into());

    let zoo = Zoo::new()?;
    let model = zoo.load(&id, &Device::Cpu)?;
    let multi = model.multi_scale().ok_or_else(|| anyhow::anyhow!("{id} is not a multi-scale model"))?;
    // Two images to take the small images of: here samples of the model itself.
    let originals =
        pixel_zoo::sample(model.as_ref(), &SampleOptions { count: 2, ..Default::default() }, &mut |_, _| {})?.images;
    let small = multi.small_image(&originals)?; // (2, c, h/2, w/2)
    let opts = SampleOptions { count, seed: 1, ..Default::default() };
    let up = pixel_zoo::upscale(model.as_ref(), &small, &opts, &mut |row, rows| eprint!("\rrow {row}/{rows}"))?;
    eprintln!();

    // −log p(x | x[::2, ::2]) of each upscaling, in bits per upscaled value.
    let (_, upscaling_nats) = multi.nll_split(&up)?;
    let (_, values) = multi.split_dims();
    for (i, nats) in upscaling_nats.to_vec1::<f32>()?.iter().enumerate() {
        println!(
            "upscaling {i}: {:.4} bits/dim given its small image",
            pixel_zoo::ops::head::bits_per_dim(*nats as f64, values)
        );
    }
    let spec = model.spec();
    let pixels = up.flatten_all()?.to_vec1::<u8>()?;
    write_png(&grid(&pixels, 2 * count, &pixel_zoo::pixel_format(&spec), count, 2), out.as_ref())?;
    println!("wrote {out}");
    Ok(())
}
