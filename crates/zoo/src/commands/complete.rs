//! `zoo complete`: keep the top rows of an image and sample the rest; writes the original, the
//! occluded image and the completions side by side, and with `--gif` the completions being drawn;
//! a class-conditional model's of the class `--class` names, or of classes drawn from p(c | kept
//! rows).

use anyhow::{bail, Result};
use candle_core::Device;
use pixel_data::files::{grid, write_png};
use pixel_ops::sampler::{complete, ClassChoice, Given};
use pixel_zoo::pixel_format;
use pixel_zoo::Zoo;

use crate::cli::{CompleteArgs, DeviceArg};
use crate::context::{
    check_picture_outputs, drawing_frames, load, log_drawn_classes, parse_class, progress_bar, read_images,
    write_drawing_gif,
};

pub fn run(zoo: &Zoo, device: DeviceArg, args: CompleteArgs) -> Result<()> {
    let CompleteArgs { model, image, keep_rows, count, draw, class, output, gif } = args;
    let m = load(zoo, &model, device)?;
    let classes = match class.as_deref() {
        None => ClassChoice::Drawn,
        Some(name) => ClassChoice::One(parse_class(&m, name)?),
    };
    check_picture_outputs(&output, gif.as_deref())?;
    let spec = m.spec();
    let given = read_images(&m, std::slice::from_ref(&image))?;
    if keep_rows > spec.height {
        bail!("--keep-rows {keep_rows} is beyond the image height {}; use 0..={}", spec.height, spec.height);
    }
    let opts = pixel_ops::sampler::SampleOptions { classes, ..draw.options(count) };
    let bar = progress_bar(spec.height.saturating_sub(keep_rows) as u64, "completing rows");
    let done = complete(m.as_ref(), &given, keep_rows, &opts, &mut |d, _| bar.set_position(d as u64))?;
    bar.finish_and_clear();
    log_drawn_classes(&m, &opts, &done, "each completion's class was drawn from p(c | the kept rows), in order");
    let done = done.images;
    // One row: the original, the occluded input (dropped rows grey), the completions.
    let original = given.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<u8>()?;
    let mut occluded = original.clone();
    let (h, w) = (spec.height, spec.width);
    let grey = if spec.head == pixel_zoo::Head::Bernoulli { 0 } else { 128 };
    for ch in 0..spec.channels {
        for y in keep_rows..h {
            occluded[(ch * h + y) * w..(ch * h + y + 1) * w].fill(grey);
        }
    }
    let mut all = original;
    all.extend(occluded);
    all.extend(done.flatten_all()?.to_vec1::<u8>()?);
    write_png(&grid(&all, count + 2, &pixel_format(&spec), count + 2, 2), &output)?;
    if let Some(gif) = &gif {
        // The original and the occluded image stand from the first frame; the completions fill in.
        let (reveal, frames) = drawing_frames(m.as_ref(), Given::Rows(keep_rows));
        let mut all_reveal = vec![0; 2 * h * w];
        all_reveal.extend((0..count).flat_map(|_| reveal.iter().copied()));
        write_drawing_gif(gif, &all, count + 2, &spec, count + 2, &all_reveal, frames)?;
    }
    eprintln!("wrote the original, the occluded image and {count} completions to {}", output.display());
    Ok(())
}
