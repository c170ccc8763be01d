//! What the subcommands share: the thread count of candle's products, the device, loading a model,
//! the models the benchmarks measure by default, the progress bar, checking an output path before
//! any work, reading input images, the NLL of a set of images, the GIF of a grid being drawn, and
//! the settings and file names of the compression commands, the classes of a class-conditional
//! model (names, `--class`, each image's log-likelihood under every class), and the command-line
//! words the library's errors leave to the binary.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use pixel_data::files::{read_image, reveal_frames, write_gif};
use pixel_ops::sampler::{ClassChoice, Given, SampleOptions, Sampled};
use pixel_ops::stepper::{in_parallel, threads_on};
use pixel_zoo::pixel_format;
use pixel_zoo::{ClassConditionalModel, ImageSpec, LoadedModel, PixelModel, Zoo};

use crate::cli::{Command, DeviceArg, ModelArgs};

/// Candle's CPU matrix products ask for the thread count on every call, and without
/// RAYON_NUM_THREADS that re-reads the CPU topology from sysfs each time. Sampling splits the
/// batch over the cores itself, so there each product runs on one thread (3x faster measured:
/// 16 diagonal-bilstm-mnist samples 4.5 s → 1.6 s); elsewhere, one per core. Call before any
/// thread starts; the user's RAYON_NUM_THREADS wins.
pub fn set_threads_per_product(command: &Command) {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let per_op = match command {
            Command::Sample(_)
            | Command::Complete(_)
            | Command::Upscale(_)
            | Command::Bench(_)
            | Command::Eval(_)
            | Command::Classify(_)
            | Command::Compress(_)
            | Command::Decompress(_)
            | Command::BenchCompress(_) => 1,
            _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        std::env::set_var("RAYON_NUM_THREADS", per_op.to_string());
    }
}

/// The device `--device` names; auto picks cuda, then metal, then cpu.
fn device(arg: DeviceArg) -> Result<Device> {
    Ok(match arg {
        DeviceArg::Cpu => Device::Cpu,
        DeviceArg::Cuda => Device::new_cuda(0)
            .context("--device cuda: build with `--features cuda` on a machine with an NVIDIA GPU")?,
        DeviceArg::Metal => Device::new_metal(0).context("--device metal: build with `--features metal` on a Mac")?,
        // candle's `cuda_is_available()` / `metal_is_available()` only say what the build has: a
        // GPU build on a machine without a usable GPU falls back to the CPU, and says why.
        DeviceArg::Auto => {
            let tried = [
                ("cuda", candle_core::utils::cuda_is_available(), Device::new_cuda as fn(usize) -> _),
                ("metal", candle_core::utils::metal_is_available(), Device::new_metal),
            ];
            for (name, built, open) in tried {
                if !built {
                    continue;
                }
                match open(0) {
                    Ok(device) => return Ok(device),
                    Err(e) => {
                        // candle's error may carry a backtrace (RUST_BACKTRACE): its first line says why.
                        let why = e.to_string();
                        let why = why.lines().next().unwrap_or_default();
                        tracing::warn!("--device auto: no {name} device ({why}); using the CPU")
                    }
                }
            }
            Device::Cpu
        }
    })
}

/// Loads model `args.id` (with `--weights` if given) on the device `dev` names.
pub fn load(zoo: &Zoo, args: &ModelArgs, dev: DeviceArg) -> Result<LoadedModel> {
    let device = device(dev)?;
    let m = zoo.load_with(&args.id, &device, args.weights.as_deref())?;
    tracing::info!(id = %args.id, weights = %m.source.path().display(), source = m.source.kind(), "model loaded");
    Ok(m)
}

/// The model ids given, or if none, every model whose weights are here (in the manifest's order):
/// what `zoo bench` and `zoo bench-compress` measure.
pub fn given_or_local_models(zoo: &Zoo, ids: Vec<String>) -> Vec<String> {
    if ids.is_empty() {
        zoo.manifest.models.iter().filter(|e| zoo.resolver.locate(e).is_some()).map(|e| e.id.clone()).collect()
    } else {
        ids
    }
}

/// The model as a class-conditional model, or an error saying that `what` (a flag or a command)
/// takes one, that this model is not, and `instead`: what to do.
pub fn class_conditional<'a>(m: &'a LoadedModel, what: &str, instead: &str) -> Result<&'a dyn ClassConditionalModel> {
    m.class_conditional().with_context(|| {
        format!(
            "{} is not class-conditional ({}): {what} takes a class-conditional model (a gated-pixelcnn with \
             classes); {instead}",
            m.entry.id,
            m.entry.architecture()
        )
    })
}

/// The names of a class-conditional model's classes, by index: its data set's
/// ([`pixel_data::datasets::Dataset::class_names`]) when the model has as many classes as the data
/// set has names; `None` otherwise (the classes are then known by index only).
pub fn class_names(m: &LoadedModel) -> Option<&'static [&'static str]> {
    let classes = m.class_conditional()?.classes();
    let names = pixel_data::datasets::Dataset::from_name(&m.entry.dataset)?.class_names();
    (names.len() == classes).then_some(names)
}

/// Class `c` as the tool shows it: `horse (7)`, or `7` for a model whose classes have no names.
pub fn class_label(m: &LoadedModel, c: usize) -> String {
    match class_names(m) {
        Some(names) if names[c] != c.to_string() => format!("{} ({c})", names[c]),
        _ => c.to_string(),
    }
}

/// A class given on the command line (`--class`): a name of the model's data set's classes or an
/// index; an error listing the valid ones otherwise, or if the model is not class-conditional.
pub fn parse_class(m: &LoadedModel, arg: &str) -> Result<usize> {
    let classes = class_conditional(m, "--class", "leave --class out")?.classes();
    let names = class_names(m);
    if let Some(c) = names.and_then(|names| names.iter().position(|n| n.eq_ignore_ascii_case(arg))) {
        return Ok(c);
    }
    if let Ok(c) = arg.parse::<usize>() {
        if c < classes {
            return Ok(c);
        }
    }
    let valid = match names {
        Some(names) => names.iter().enumerate().map(|(c, n)| class_label_of(n, c)).collect::<Vec<_>>().join(", "),
        None => format!("0..={}", classes - 1),
    };
    anyhow::bail!("unknown class '{arg}': the classes of {} are {valid} (a name or an index)", m.entry.id)
}

fn class_label_of(name: &str, c: usize) -> String {
    if name == c.to_string() {
        name.to_string()
    } else {
        format!("{name} ({c})")
    }
}

/// log p(x | c) in nats of each image of `pixels` (whole images of the model's size, row-major)
/// under every class: one `Vec` of C values per image, in order; in batches of `batch`, split over
/// the cores as [`total_nll`] does; `done(b)` after each batch.
pub fn class_log_likelihoods(
    m: &dyn ClassConditionalModel,
    pixels: &[u8],
    batch: usize,
    done: &mut dyn FnMut(usize),
) -> Result<Vec<Vec<f64>>> {
    let parts = per_batch(m, pixels, batch, done, &|x: &Tensor| Ok(m.class_log_likelihoods(x)?.to_vec2::<f64>()?))?;
    Ok(parts.into_iter().flatten().collect())
}

/// An error unless the test images of `dataset` are of the model's size and channels.
pub fn check_test_images(dataset: &str, images: &pixel_data::datasets::Images, spec: &ImageSpec) -> Result<()> {
    if (images.channels, images.height, images.width) != (spec.channels, spec.height, spec.width) {
        anyhow::bail!(
            "{dataset} test images are {}x{}x{} but the model takes {}x{}x{}",
            images.channels,
            images.height,
            images.width,
            spec.channels,
            spec.height,
            spec.width
        );
    }
    Ok(())
}

/// Fails early, before any work, if `path` cannot be written.
pub fn check_output(path: &Path) -> Result<()> {
    Ok(pixel_data::files::check_writable(path)?)
}

/// Fails early, before any work, if the picture `output` or the `--gif` file (if asked for) cannot
/// be written: what `sample`, `complete` and `upscale` check first.
pub fn check_picture_outputs(output: &Path, gif: Option<&Path>) -> Result<()> {
    check_output(output)?;
    if let Some(gif) = gif {
        check_output(gif)?;
    }
    Ok(())
}

/// Without `--class` (`opts.classes` [`ClassChoice::Drawn`]) a class-conditional model's images
/// were drawn of classes the sampler drew too; logs them (with -v), `drawn` saying whence and in
/// what order: "each image's class was drawn from …, in grid order".
pub fn log_drawn_classes(m: &LoadedModel, opts: &SampleOptions, sampled: &Sampled, drawn: &str) {
    if let (ClassChoice::Drawn, Some(classes)) = (&opts.classes, &sampled.classes) {
        let shown: Vec<String> = classes.iter().map(|&c| class_label(m, c)).collect();
        tracing::info!("no --class: {drawn}: {}", shown.join(", "));
    }
}

/// A progress bar of `len` steps labelled `msg`, with elapsed time and ETA.
pub fn progress_bar(len: u64, msg: &'static str) -> ProgressBar {
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} [{elapsed_precise}<{eta_precise}]")
            .expect("valid template"),
    );
    b.set_message(msg);
    b
}

/// The images at `paths` as one batch `(n, c, h, w)` on the model's device; each must have the
/// model's size and channels.
pub fn read_images(m: &LoadedModel, paths: &[PathBuf]) -> Result<Tensor> {
    let spec = m.spec();
    let mut pixels = Vec::with_capacity(paths.len() * spec.dims());
    for p in paths {
        pixels.extend(read_image(p, &pixel_format(&spec))?);
    }
    Ok(Tensor::from_vec(pixels, (paths.len(), spec.channels, spec.height, spec.width), m.device())?)
}

/// Σ −log p(x) in nats over images `pixels` (whole images of the model's size, row-major), in
/// batches of `batch`; `done(b)` after each batch. On the CPU each batch is split over the cores,
/// one part per thread (the zoo runs each product on one thread for eval, see
/// [`set_threads_per_product`]), as sampling is.
pub fn total_nll(m: &LoadedModel, pixels: &[u8], batch: usize, done: &mut dyn FnMut(usize)) -> Result<f64> {
    let sums = per_batch(m.as_ref(), pixels, batch, done, &|x: &Tensor| {
        Ok(m.nll(x)?.to_vec1::<f32>()?.iter().map(|&v| v as f64).sum::<f64>())
    })?;
    Ok(sums.into_iter().sum())
}

/// `f` of every batch of `batch` images of `pixels`, each batch split over the cores on the CPU:
/// the results of every part, in order; `done(b)` after each batch.
pub fn per_batch<T: Send>(
    m: &dyn PixelModel,
    pixels: &[u8],
    batch: usize,
    done: &mut dyn FnMut(usize),
    f: &(dyn Fn(&Tensor) -> Result<T> + Sync),
) -> Result<Vec<T>> {
    let spec = m.spec();
    let dims = spec.dims();
    let mut out = Vec::new();
    for chunk in pixels.chunks(batch * dims) {
        let b = chunk.len() / dims;
        let threads = threads_on(m.device(), 0, b);
        let parts: Vec<&[u8]> = chunk.chunks(b.div_ceil(threads) * dims).collect();
        let run = |part: &[u8]| -> Result<T> {
            let x = Tensor::from_slice(part, (part.len() / dims, spec.channels, spec.height, spec.width), m.device())?;
            f(&x)
        };
        for r in in_parallel(parts, run, |_, p| run(p), || Err(anyhow::anyhow!("an eval thread panicked"))) {
            out.push(r?);
        }
        done(b);
    }
    Ok(out)
}

/// When each pixel of an image being drawn appears in the GIF of the drawing: `(h, w)` frame
/// numbers, 0 for the `given` pixels, else 1 + (the pixel's place among the drawn ones, in the
/// model's order) / width, a frame per row's worth of pixels; and the number of frames (the last
/// shows the whole image). The sampler draws the values in this order and never changes one, so
/// frame k is the grid as it stood then.
pub fn drawing_frames(model: &dyn PixelModel, given: Given) -> (Vec<usize>, usize) {
    let s = model.spec();
    let mut reveal = vec![0; s.height * s.width];
    let mut drawn = 0;
    for (r, c) in model.pixel_order() {
        if !given.contains(r, c) {
            reveal[r * s.width + c] = 1 + drawn / s.width;
            drawn += 1;
        }
    }
    (reveal, 1 + drawn.div_ceil(s.width))
}

/// Writes the animated GIF of a grid of `n` images `tiles` (row-major `(n, c, h, w)`, `cols`
/// columns, laid out as the PNG grids are) being drawn: `reveal` `(n, h, w)` the frame in which
/// each pixel appears, `frames` frames of 80 ms, the last held 2 s.
pub fn write_drawing_gif(
    path: &Path,
    tiles: &[u8],
    n: usize,
    spec: &ImageSpec,
    cols: usize,
    reveal: &[usize],
    frames: usize,
) -> Result<()> {
    let frames = reveal_frames(tiles, n, &pixel_format(spec), cols, 2, reveal, frames);
    write_gif(&frames, 80, 2000, path)?;
    tracing::info!(path = %path.display(), frames = frames.len(), "GIF written");
    Ok(())
}

/// Threads the coding groups are spread over (each group's computation is the same on any thread).
pub const CODING_THREADS: usize = 0;

/// The name a compressed image is decompressed under: its stored name with the extension `.png`.
pub fn png_name(name: &str) -> String {
    match Path::new(name).extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("png") => name.to_string(),
        Some(_) => Path::new(name).with_extension("png").to_string_lossy().into_owned(),
        None => format!("{name}.png"),
    }
}

/// What the command line adds to an error of the library, whose messages speak of fetching,
/// importing and giving files in its own terms: the commands and flags that do it.
pub fn command_line_hint(e: &anyhow::Error) -> Option<String> {
    use pixel_zoo::compress::CompressError;
    use pixel_zoo::ZooError;
    let data_dir = |e: &pixel_data::Error| match e {
        pixel_data::Error::MissingData { .. } => Some(
            "--data-dir DIR or PIXEL_ZOO_DATA names the data directory; `zoo data fetch mnist|cifar10` puts the \
             data sets in the zoo's data cache"
                .to_string(),
        ),
        pixel_data::Error::NoData { dataset, .. } => Some(format!(
            "run `zoo data fetch {dataset}`, or pass --data-dir DIR (or set PIXEL_ZOO_DATA) naming a directory \
             that holds {dataset}/"
        )),
        _ => None,
    };
    for cause in e.chain() {
        if let Some(z) = cause.downcast_ref::<ZooError>() {
            return match z {
                ZooError::UnknownModel { .. } => Some("`zoo list` shows every id".into()),
                // The library's message already says what to do (delete it and fetch again, or
                // give the right file): the tool names its commands for that instead.
                ZooError::ChecksumMismatch { id, .. } => Some(format!("here: `zoo fetch {id}`, or --weights FILE")),
                ZooError::BadWeights { id, .. } => Some(format!("`zoo fetch {id}` gets the manifest's file")),
                ZooError::WeightsNotFound { id, upstream_format: Some(format), .. } => {
                    Some(format!("run `zoo import {format} FILE`, or `zoo fetch {id}` with network access"))
                }
                ZooError::NotPublished { .. } => {
                    Some("pass the file with --weights, or run zoo from a clone of pixel-zoo (its weights/)".into())
                }
                ZooError::WeightsNotFound { id, upstream_format: None, .. } => {
                    Some(format!("run `zoo fetch {id}` with network access, or pass the file with --weights"))
                }
                ZooError::Download { .. } => {
                    Some("here: --weights FILE (a third-party checkpoint: download it and run `zoo import`)".into())
                }
                ZooError::Data(data) => data_dir(data),
                ZooError::DataFetch { .. } => Some(
                    "`zoo data fetch DATASET --url MIRROR` downloads from a mirror; or download the files \
                     yourself, unpack them into DIR/mnist or DIR/cifar10, and pass --data-dir DIR"
                        .into(),
                ),
                _ => None,
            };
        }
        if let Some(data) = cause.downcast_ref::<pixel_data::Error>() {
            return data_dir(data);
        }
        if let Some(c) = cause.downcast_ref::<CompressError>() {
            return match c {
                CompressError::NotAZooFile => Some("`zoo compress` writes them".into()),
                CompressError::WeightsMismatch { .. } => Some("pass them with --weights FILE".into()),
                CompressError::DeviceMismatch { file, .. } => Some(format!("use --device {file}")),
                _ => None,
            };
        }
    }
    None
}
