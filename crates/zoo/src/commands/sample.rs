//! `zoo sample`: draw new images and write them as a PNG grid (a multi-scale model's each beside
//! its small image), and with `--gif` the grid being drawn; a class-conditional model's of the
//! class `--class` names, of each class a row (`--class all`), or of classes drawn from p(c).

use std::time::Instant;

use anyhow::Result;
use pixel_data::files::{grid, write_png};
use pixel_ops::sampler::{sample, ClassChoice, Given};
use pixel_ops::subset::Subset;
use pixel_zoo::pixel_format;
use pixel_zoo::Zoo;

use crate::cli::{DeviceArg, SampleArgs};
use crate::context::{
    check_picture_outputs, class_conditional, class_label, drawing_frames, load, log_drawn_classes, parse_class,
    progress_bar, write_drawing_gif,
};

/// `--class all`: `-n` images of each class, one row per class.
const EVERY_CLASS: &str = "all";

pub fn run(zoo: &Zoo, device: DeviceArg, args: SampleArgs) -> Result<()> {
    let SampleArgs { model, count, draw, class, output, gif } = args;
    let m = load(zoo, &model, device)?;
    // The images' classes, and the grid's columns when each class has a row of its own.
    let (classes, count, row_per_class) = match class.as_deref() {
        None => (ClassChoice::Drawn, count, None),
        Some(EVERY_CLASS) => {
            let classes = class_conditional(&m, "--class", "leave --class out")?.classes();
            let per_image = (0..classes).flat_map(|c| std::iter::repeat_n(c, count)).collect();
            (ClassChoice::PerImage(per_image), classes.saturating_mul(count), Some(count))
        }
        Some(name) => (ClassChoice::One(parse_class(&m, name)?), count, None),
    };
    let opts = pixel_ops::sampler::SampleOptions { classes, ..draw.options(count) };
    check_picture_outputs(&output, gif.as_deref())?;
    let t = Instant::now();
    let bar = progress_bar(m.spec().height as u64, "sampling rows");
    let drawn = sample(m.as_ref(), &opts, &mut |done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    log_drawn_classes(&m, &opts, &drawn, "each image's class was drawn from the uniform prior p(c), in grid order");
    let spec = m.spec();
    let pixels = drawn.images.flatten_all()?.to_vec1::<u8>()?;
    let cols = row_per_class.unwrap_or_else(|| (count as f64).sqrt().ceil() as usize);
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
    let class_note = match &opts.classes {
        ClassChoice::One(c) => format!(" of class {}", class_label(&m, *c)),
        ClassChoice::PerImage(_) => " (a row per class)".to_string(),
        ClassChoice::Drawn => String::new(),
    };
    eprintln!(
        "wrote {count} {what}{class_note} of {} to {}{gif_note} in {:.1} s",
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
