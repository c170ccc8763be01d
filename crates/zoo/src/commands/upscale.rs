//! `zoo upscale`: a low-resolution image becomes a multi-scale model's small image `x[::f, ::f]`,
//! and the model samples the other pixels given it (`pixel_ops::sampler::upscale`); writes a row
//! per input: the input enlarged, the upscalings and, with `--from-full`, the original.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use pixel_data::files::{grid, read_image, write_png};
use pixel_ops::head::bits_per_dim;
use pixel_ops::sampler::{upscale, Given};
use pixel_ops::subset::Subset;
use pixel_zoo::pixel_format;
use pixel_zoo::{ImageSpec, Tensor, Zoo};

use crate::cli::{DeviceArg, UpscaleArgs};
use crate::context::{check_output, check_picture_outputs, drawing_frames, load, progress_bar, write_drawing_gif};

pub fn run(zoo: &Zoo, device: DeviceArg, args: UpscaleArgs) -> Result<()> {
    let UpscaleArgs { model, image, from_full, count, draw, output, images, gif } = args;
    let entry = zoo.entry(&model.id)?;
    if entry.config.multiscale_factor().is_none() {
        bail!(
            "{} is a single-scale model ({}); `zoo upscale` takes a multi-scale model: {}",
            entry.id,
            entry.architecture(),
            multi_scale_models(zoo)
        );
    }
    let m = load(zoo, &model, device)?;
    let multi = m.multi_scale().context("the manifest says multi-scale, the network is not")?;
    let (f, subset, spec, small_spec) = (multi.factor(), multi.subset(), m.spec(), multi.small_stage().spec());
    check_picture_outputs(&output, gif.as_deref())?;
    let inputs = image.len().max(from_full.len());
    if let Some(dir) = &images {
        // Created only at the end, so that a failure leaves nothing behind.
        check_output(&if dir.is_dir() { image_path(dir, 0, 0, inputs) } else { dir.clone() })?;
    }
    // The small images, and with --from-full the originals they came from.
    let mut small = Vec::with_capacity(inputs * small_spec.dims());
    let mut originals = Vec::new();
    for path in &image {
        small.extend(read_image(path, &pixel_format(&small_spec)).with_context(|| {
            format!(
                "--image takes {}'s small image, {}; a full-size {} image goes with --from-full",
                entry.id,
                describe(&small_spec),
                describe(&spec)
            )
        })?);
    }
    for path in &from_full {
        let full = read_image(path, &pixel_format(&spec)).with_context(|| {
            format!(
                "--from-full takes a full-size image of {}, {}; its small image ({}) goes with --image",
                entry.id,
                describe(&spec),
                describe(&small_spec)
            )
        })?;
        small.extend(subset.extract_values(&full, (spec.channels, spec.height, spec.width)));
        originals.extend(full);
    }
    if inputs == 0 {
        bail!("give the low-resolution image with --image SMALL.png, or a full-size one with --from-full");
    }
    let opts = draw.options(count);
    let small_t =
        Tensor::from_slice(&small, (inputs, small_spec.channels, small_spec.height, small_spec.width), m.device())?;
    let (reveal, frames) = drawing_frames(m.as_ref(), Given::Subsampled(f));
    let bar = progress_bar((frames - 1) as u64, "upscaling rows");
    let done = upscale(m.as_ref(), &small_t, &opts, &mut |d, _| bar.set_position(d as u64))?;
    bar.finish_and_clear();
    let done = done.flatten_all()?.to_vec1::<u8>()?;
    // A row per input: the input enlarged, the upscalings, the original.
    let (d, hw) = (spec.dims(), spec.height * spec.width);
    let (mut tiles, mut all_reveal) = (Vec::new(), Vec::new());
    for i in 0..inputs {
        tiles.extend(subset.enlarge_values(
            &small[i * small_spec.dims()..(i + 1) * small_spec.dims()],
            (spec.channels, spec.height, spec.width),
        ));
        tiles.extend_from_slice(&done[i * count * d..(i + 1) * count * d]);
        all_reveal.extend(std::iter::repeat_n(0, hw));
        all_reveal.extend((0..count).flat_map(|_| reveal.iter().copied()));
        if !originals.is_empty() {
            tiles.extend_from_slice(&originals[i * d..(i + 1) * d]);
            all_reveal.extend(std::iter::repeat_n(0, hw));
        }
    }
    let (n_tiles, cols) = (tiles.len() / d, tiles.len() / d / inputs);
    write_png(&grid(&tiles, n_tiles, &pixel_format(&spec), cols, 2), &output)?;
    if let Some(dir) = &images {
        std::fs::create_dir_all(dir).with_context(|| format!("--images {}: cannot create it", dir.display()))?;
        for (k, img) in done.chunks(d).enumerate() {
            write_png(&grid(img, 1, &pixel_format(&spec), 1, 0), &image_path(dir, k / count, k % count, inputs))?;
        }
    }
    if let Some(gif) = &gif {
        write_drawing_gif(gif, &tiles, n_tiles, &spec, cols, &all_reveal, frames)?;
    }
    let what = if originals.is_empty() { "" } else { " and the original" };
    eprintln!("wrote {inputs} input(s) (enlarged {f}x), {count} upscalings of each{what} to {}", output.display());
    if !originals.is_empty() {
        // How likely each original is given its small image: what the upscalings are drawn from.
        let x = Tensor::from_slice(&originals, (inputs, spec.channels, spec.height, spec.width), m.device())?;
        let (small_nats, up_nats) = multi.nll_split(&x)?;
        let (small_dims, up_dims) = multi.split_dims();
        let as_f64 = |t: Tensor| -> Result<Vec<f64>> {
            Ok(t.to_device(&candle_core::Device::Cpu)?.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()?)
        };
        for ((path, s), u) in from_full.iter().zip(as_f64(small_nats)?).zip(as_f64(up_nats)?) {
            println!(
                "{}\tupscaling {:.4} bits/dim ({u:.1} nats over {up_dims} values)\tsmall image {:.4} bits/dim \
                 ({s:.1} nats over {small_dims} values)",
                path.display(),
                bits_per_dim(u, up_dims),
                bits_per_dim(s, small_dims),
            );
        }
    }
    Ok(())
}

/// The multi-scale models of the manifest, with what they take: "multiscale-mnist (14x14 grey →
/// 28x28), ...".
fn multi_scale_models(zoo: &Zoo) -> String {
    let list: Vec<String> = zoo
        .manifest
        .models
        .iter()
        .filter_map(|e| {
            let f = e.config.multiscale_factor()?;
            let s = e.config.spec();
            let (height, width) = Subset::new(f).small_size(s.height, s.width);
            let small = ImageSpec { height, width, ..s };
            Some(format!("{} ({} → {}x{})", e.id, describe(&small), s.width, s.height))
        })
        .collect();
    list.join(", ")
}

/// "16x16 RGB" or "14x14 grey".
fn describe(spec: &ImageSpec) -> String {
    format!("{}x{} {}", spec.width, spec.height, if spec.channels == 3 { "RGB" } else { "grey" })
}

/// Upscaling `k` of input `i` in the `--images` directory: upscaled-K.png for one input,
/// upscaled-I-K.png for several.
fn image_path(dir: &Path, i: usize, k: usize, inputs: usize) -> PathBuf {
    if inputs == 1 {
        dir.join(format!("upscaled-{k}.png"))
    } else {
        dir.join(format!("upscaled-{i}-{k}.png"))
    }
}
