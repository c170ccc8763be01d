//! `zoo sample`: draw new images and write them as a PNG grid (a multi-scale model's each beside
//! its small image), and with `--gif` the grid being drawn.

use std::time::Instant;

use anyhow::Result;
use pixel_data::files::{grid, write_png};
use pixel_ops::sampler::{sample, Given};
use pixel_ops::subset::Subset;
use pixel_zoo::pixel_format;
use pixel_zoo::Zoo;

use crate::cli::{DeviceArg, SampleArgs};
use crate::context::{check_output, drawing_frames, load, progress_bar, write_drawing_gif};

pub fn run(zoo: &Zoo, device: DeviceArg, args: SampleArgs) -> Result<()> {
    let SampleArgs { model, count, draw, output, gif } = args;
    let m = load(zoo, &model, device)?;
    let opts = draw.options(count);
    check_output(&output)?;
    if let Some(gif) = &gif {
        check_output(gif)?;
    }
    let t = Instant::now();
    let bar = progress_bar(m.spec().height as u64, "sampling rows");
    let images = sample(m.as_ref(), &opts, &mut |done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    let spec = m.spec();
    let pixels = images.flatten_all()?.to_vec1::<u8>()?;
    let cols = (count as f64).sqrt().ceil() as usize;
    let (reveal, frames) = drawing_frames(m.as_ref(), Given::Nothing);
    let what = match m.entry.config.multiscale_factor() {
        // Each sample beside its small image (the first stage's output), enlarged to the same size.
        Some(f) => {
            let subset = Subset::new(f);
            let tiles = with_small_images(&pixels, count, &spec, subset);
            write_png(&grid(&tiles, 2 * count, &pixel_format(&spec), 2 * cols, 2), &output)?;
            if let Some(gif) = &gif {
                // The small tile shows each small-image pixel when the big tile does.
                let plane = (1, spec.height, spec.width);
                let small = subset.enlarge_values(&subset.extract_values(&reveal, plane), plane);
                let both: Vec<usize> = (0..count).flat_map(|_| small.iter().chain(&reveal).copied()).collect();
                write_drawing_gif(gif, &tiles, 2 * count, &spec, 2 * cols, &both, frames)?;
            }
            "samples (each beside its small image, enlarged)"
        }
        None => {
            write_png(&grid(&pixels, count, &pixel_format(&spec), cols, 2), &output)?;
            if let Some(gif) = &gif {
                let all: Vec<usize> = (0..count).flat_map(|_| reveal.iter().copied()).collect();
                write_drawing_gif(gif, &pixels, count, &spec, cols, &all, frames)?;
            }
            "samples"
        }
    };
    let gif_note = gif.map(|g| format!(" (and the drawing to {})", g.display())).unwrap_or_default();
    eprintln!(
        "wrote {count} {what} of {} to {}{gif_note} in {:.1} s",
        m.entry.id,
        output.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Images `(n, c, h, w)` → `2n` images: each image's small image (pixels at multiples of `f`)
/// enlarged f× by repetition, then the image.
fn with_small_images(pixels: &[u8], n: usize, spec: &pixel_zoo::ImageSpec, subset: Subset) -> Vec<u8> {
    let dims = (spec.channels, spec.height, spec.width);
    let mut out = Vec::with_capacity(2 * pixels.len());
    for img in pixels.chunks(spec.dims()).take(n) {
        out.extend(subset.enlarge_values(&subset.extract_values(img, dims), dims));
        out.extend_from_slice(img);
    }
    out
}
