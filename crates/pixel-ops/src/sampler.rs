//! The generic sampler (paper §2): the model's pixel order (raster order for single-scale models), R
//! then G then B within a pixel, one conditional at a time, a whole batch at once; completion keeps
//! given rows and samples the rest; upscaling (§3.6) keeps a multi-scale model's small image and
//! samples the rest.

use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::class_conditional::{class_log_posterior, GivenClasses};
use crate::error::{Error, Result};
use crate::model::{ClassConditionalModel, PixelModel};
pub use crate::stepper::Given;
pub use crate::stepper::Method;
use crate::stepper::{in_parallel, step_through, threads_on};

/// The classes of the images a class-conditional model ([`PixelModel::class_conditional`]) draws.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ClassChoice {
    /// Each image's class drawn from p(c | the given pixels), with the seeded generator: from the
    /// uniform prior p(c) when nothing is given (sampling), from the posterior given the kept
    /// pixels when completing, so that class and image together are a draw of the marginal
    /// p(x | given). The only choice for an unconditional model.
    #[default]
    Drawn,
    /// One class for every image.
    One(usize),
    /// One class per image, in order (a grid with one row per class, say).
    PerImage(Vec<usize>),
}

/// How to sample.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleOptions {
    /// Images to draw (≥ 1).
    pub count: usize,
    /// Seed of the ChaCha8 generators that draw the values (image `i` uses stream `i`); the same
    /// seed gives the same images.
    pub seed: u64,
    /// Logits are divided by this (> 0); 1.0 samples the model's distribution.
    pub temperature: f64,
    /// Cached (default) or naive computation of the logits; both give the same images.
    pub method: Method,
    /// Threads the batch is split over (0: one per core). The images do not depend on it.
    pub threads: usize,
    /// The images' classes, for a class-conditional model; anything but [`ClassChoice::Drawn`] is
    /// an error for an unconditional one.
    pub classes: ClassChoice,
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self { count: 16, seed: 0, temperature: 1.0, method: Method::Cached, threads: 0, classes: ClassChoice::Drawn }
    }
}

/// Images drawn by the sampler and, for a class-conditional model, the class of each.
#[derive(Debug, Clone)]
pub struct Sampled {
    /// `(n, c, h, w)` u8 pixel values.
    pub images: Tensor,
    /// Image `i`'s class (a class-conditional model), else `None`.
    pub classes: Option<Vec<usize>>,
}

/// The stream of the seed's ChaCha8 generator that draws the images' classes (image `i`'s values
/// use stream `i`, below [`MAX_COUNT`]).
const CLASS_STREAM: u64 = u64::MAX;

/// The most images one call draws (or completes): their pixels are held in memory at once.
pub const MAX_COUNT: usize = 65_536;

impl SampleOptions {
    fn validate(&self) -> Result<()> {
        if self.count == 0 {
            return Err(Error::InvalidArgument("the number of images must be at least 1".into()));
        }
        if self.count > MAX_COUNT {
            return Err(Error::InvalidArgument(format!(
                "{} images in one call is more than the {MAX_COUNT} the sampler takes; draw them in several \
                 calls with different seeds",
                self.count
            )));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::InvalidArgument(format!(
                "the temperature must be a finite number > 0, got {}",
                self.temperature
            )));
        }
        Ok(())
    }
}

/// Draws `opts.count` new images: [`Sampled::images`] `(n, c, h, w)` u8 pixel values (0/1 or
/// 0..=255), and each image's class for a class-conditional model ([`SampleOptions::classes`]).
/// `progress(done, total)` is called after each `width` generated pixels (a row's worth).
pub fn sample(model: &dyn PixelModel, opts: &SampleOptions, progress: &mut dyn FnMut(usize, usize)) -> Result<Sampled> {
    opts.validate()?;
    let s = model.spec();
    let start = vec![0u8; opts.count * s.dims()];
    generate(model, start, Given::Nothing, opts, progress)
}

/// Completes images: keeps rows `0..keep_rows` of `given` `(n, c, h, w)` and samples the rest,
/// `opts.count` completions of each given image. [`Sampled::images`] is `(n·count, c, h, w)` u8, the
/// completions of image 0 first; a class-conditional model also gives each completion's class
/// ([`SampleOptions::classes`]: one per completion, `n·count`, for [`ClassChoice::PerImage`]).
pub fn complete(
    model: &dyn PixelModel,
    given: &Tensor,
    keep_rows: usize,
    opts: &SampleOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Sampled> {
    opts.validate()?;
    let s = model.spec();
    if keep_rows > s.height {
        return Err(Error::InvalidArgument(format!(
            "keep_rows = {keep_rows} is beyond the image height {}; use 0..={}",
            s.height, s.height
        )));
    }
    let per_image = images_of(given, &s, "the images to complete")?;
    SampleOptions { count: per_image.len().saturating_mul(opts.count), ..opts.clone() }.validate()?;
    let start: Vec<u8> =
        per_image.iter().flat_map(|img| (0..opts.count).flat_map(move |_| img.iter().copied())).collect();
    let opts = SampleOptions { count: per_image.len() * opts.count, ..opts.clone() };
    generate(model, start, Given::Rows(keep_rows), &opts, progress)
}

/// Upscales small images with a multi-scale model (§3.6): each of `small` `(n, c, h / f, w / f)`
/// becomes the small image `x[::f, ::f]` of `opts.count` images `(c, h, w)`, whose other pixels
/// are sampled in the model's order given it. Every output holds the input's pixels exactly at the
/// subset positions. Returns `(n·count, c, h, w)` u8, the upscalings of image 0 first.
/// `progress(done, total)` is called after each `width` sampled pixels.
///
/// An error if `model` is a single-scale model ([`PixelModel::multi_scale`] is `None`) or `small`
/// is not of its small stage's size and channels.
pub fn upscale(
    model: &dyn PixelModel,
    small: &Tensor,
    opts: &SampleOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Tensor> {
    opts.validate()?;
    let s = model.spec();
    let multi = model.multi_scale().ok_or_else(|| {
        Error::InvalidArgument(format!(
            "a single-scale model of {}x{} images: upscaling needs a multi-scale model, whose small stage \
             gives the low-resolution image",
            s.width, s.height
        ))
    })?;
    let f = multi.factor();
    let per_image = images_of(small, &multi.small_stage().spec(), "the small images to upscale")?;
    SampleOptions { count: per_image.len().saturating_mul(opts.count), ..opts.clone() }.validate()?;
    let mut start = Vec::with_capacity(per_image.len() * opts.count * s.dims());
    for img in &per_image {
        let mut big = vec![0u8; s.dims()];
        multi.subset().place_values(img, &mut big, (s.channels, s.height, s.width));
        for _ in 0..opts.count {
            start.extend_from_slice(&big);
        }
    }
    let opts = SampleOptions { count: per_image.len() * opts.count, ..opts.clone() };
    Ok(generate(model, start, Given::Subsampled(f), &opts, progress)?.images)
}

/// The images of `x` `(n, c, h, w)` (n ≥ 1) as u8 values on the CPU, one `Vec` each, checked
/// against `spec`; `what` names them in errors.
fn images_of(x: &Tensor, spec: &crate::ImageSpec, what: &str) -> Result<Vec<Vec<u8>>> {
    let x = x.to_dtype(DType::U8)?.to_device(&Device::Cpu)?;
    let n = x.dims().first().copied().unwrap_or(0);
    if x.dims() != [n, spec.channels, spec.height, spec.width] {
        return Err(Error::InvalidArgument(format!(
            "{what} are {:?}; the model takes (n, {}, {}, {})",
            x.dims(),
            spec.channels,
            spec.height,
            spec.width
        )));
    }
    if n == 0 {
        return Err(Error::InvalidArgument(format!("{what}: none given")));
    }
    let images = x.flatten_from(1)?.to_vec2::<u8>()?;
    let values = spec.head.values();
    if let Some(v) = images.iter().flatten().find(|&&v| usize::from(v) >= values) {
        return Err(Error::InvalidArgument(format!(
            "{what} hold the value {v}; the model's pixel values are 0..={}",
            values - 1
        )));
    }
    Ok(images)
}

/// The most images one part of a batch samples at once on the CPU. A part's session caches grow with
/// its images (about 1 MB per CIFAR-10 image for the PixelCNN), so a large batch is sampled in waves
/// of parts of at most this many, one part per thread; the images do not depend on it.
pub const PART_IMAGES: usize = 64;

/// The most images one part samples at once on a GPU: one part at a time, as large as this, since
/// each step launches the same kernels and copies the logits to the host once, whatever the number
/// of images; 512 CIFAR-10 images hold about 0.5 GB of session caches (PixelCNN).
pub const DEVICE_PART_IMAGES: usize = 512;

/// Fills the pixels not `given` of the `opts.count` images in `pixels` (row-major `(n, c, h, w)`).
/// The batch is split into parts of at most [`PART_IMAGES`], sampled `opts.threads` at a time in
/// parallel (on a GPU: parts of at most [`DEVICE_PART_IMAGES`], one at a time); image `i` draws
/// from its own ChaCha8 stream (seed, stream `i`), and the cached sessions compute an image's logits
/// to the same bits whatever the other images of its part ([`crate::row_product`]), so the images
/// do not depend on the split.
fn generate(
    model: &dyn PixelModel,
    mut pixels: Vec<u8>,
    given: Given,
    opts: &SampleOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Sampled> {
    let s = model.spec();
    let (n, dims) = (opts.count, s.dims());
    let classes = image_classes(model, &pixels, given, opts)?;
    let classes = classes.as_deref();
    let threads = threads_on(model.device(), opts.threads, n);
    let most = if model.device().is_cpu() { PART_IMAGES } else { DEVICE_PART_IMAGES };
    let per_part = n.div_ceil(threads).min(most);
    let mut parts: Vec<(usize, &mut [u8])> =
        pixels.chunks_mut(per_part * dims).enumerate().map(|(k, part)| (k * per_part, part)).collect();
    let waves = parts.len().div_ceil(threads);
    for wave in 0..waves {
        let rest = parts.split_off(threads.min(parts.len()));
        let this_wave = std::mem::replace(&mut parts, rest);
        // The first part of each wave runs on this thread and reports progress, over all waves.
        let mut report = |done: usize, total: usize| progress(wave * total + done, waves * total);
        in_parallel(
            this_wave,
            |(first_image, part)| generate_part(model, classes, part, first_image, given, opts, &mut report),
            |_, (first_image, part)| generate_part(model, classes, part, first_image, given, opts, &mut |_, _| {}),
            || Err(Error::WorkerPanicked("sampling")),
        )
        .into_iter()
        .collect::<Result<Vec<()>>>()?;
    }
    let (c, h, w) = (s.channels, s.height, s.width);
    Ok(Sampled {
        images: Tensor::from_vec(pixels, (n, c, h, w), &Device::Cpu)?,
        classes: classes.map(<[usize]>::to_vec),
    })
}

/// The class of each of the `opts.count` images in `pixels` (row-major `(n, c, h, w)`, the
/// `given` pixels filled in) for a class-conditional model, as [`SampleOptions::classes`] asks;
/// `None` for an unconditional model, which refuses any other choice than [`ClassChoice::Drawn`].
fn image_classes(
    model: &dyn PixelModel,
    pixels: &[u8],
    given: Given,
    opts: &SampleOptions,
) -> Result<Option<Vec<usize>>> {
    let Some(conditional) = model.class_conditional() else {
        return match opts.classes {
            ClassChoice::Drawn => Ok(None),
            _ => Err(Error::InvalidArgument(
                "the model is not class-conditional: it takes no class; leave the class out".into(),
            )),
        };
    };
    let count = conditional.classes();
    let classes = match &opts.classes {
        ClassChoice::Drawn => draw_classes(conditional, pixels, given, opts)?,
        ClassChoice::One(c) => vec![*c; opts.count],
        ClassChoice::PerImage(classes) => {
            if classes.len() != opts.count {
                return Err(Error::InvalidArgument(format!(
                    "{} classes given for {} images: give one class per image",
                    classes.len(),
                    opts.count
                )));
            }
            classes.clone()
        }
    };
    if let Some(c) = classes.iter().find(|&&c| c >= count) {
        return Err(Error::InvalidArgument(format!(
            "class {c} is out of range: the model's classes are 0..={}",
            count - 1
        )));
    }
    Ok(Some(classes))
}

/// Each image's class drawn from p(c | given pixels) ∝ p(given pixels | c) (the uniform prior when
/// none are given), by the seed's ChaCha8 generator on its own stream, image by image. The given
/// pixels come first in the factorisation order (rows kept from the top, a multi-scale model's small
/// image), so their log-likelihood is the sum of their values' log-probabilities.
fn draw_classes(
    model: &dyn ClassConditionalModel,
    pixels: &[u8],
    given: Given,
    opts: &SampleOptions,
) -> Result<Vec<usize>> {
    use rand::Rng;
    let s = model.spec();
    let (n, classes) = (opts.count, model.classes());
    let mut log_weights = vec![vec![0f64; classes]; n];
    if given != Given::Nothing {
        let x = Tensor::from_slice(pixels, (n, s.channels, s.height, s.width), model.device())?;
        let kept: Vec<f32> = (0..s.height)
            .flat_map(|row| (0..s.width).map(move |col| if given.contains(row, col) { 1.0 } else { 0.0 }))
            .collect();
        let kept = Tensor::from_vec(kept, (1, 1, s.height, s.width), model.device())?;
        for c in 0..classes {
            let nll = s.head.nll_per_value(&model.logits_given_classes(&x, &vec![c; n])?, &x)?;
            let nll = nll.broadcast_mul(&kept.to_dtype(nll.dtype())?)?.reshape((n, ()))?.sum(1)?;
            let nll = nll.to_device(&Device::Cpu)?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            for (weights, v) in log_weights.iter_mut().zip(nll) {
                weights[c] = -v;
            }
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    rng.set_stream(CLASS_STREAM);
    Ok(log_weights
        .iter()
        .map(|weights| {
            let posterior = class_log_posterior(weights);
            let mut u = rng.gen::<f64>();
            for (c, p) in posterior.iter().enumerate() {
                u -= p.exp();
                if u < 0.0 {
                    return c;
                }
            }
            // Rounding left u past the last class: the last class with non-zero probability.
            posterior.iter().rposition(|p| p.exp() > 0.0).unwrap_or(0)
        })
        .collect())
}

/// Samples the images in `pixels` (whole images, the first is image `first_image` of the batch);
/// `classes`: every image's class, for a class-conditional model (the part's images are sampled
/// given theirs).
fn generate_part(
    model: &dyn PixelModel,
    classes: Option<&[usize]>,
    pixels: &mut [u8],
    first_image: usize,
    given: Given,
    opts: &SampleOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<()> {
    let s = model.spec();
    let (c, h, w) = (s.channels, s.height, s.width);
    let n = pixels.len() / s.dims();
    let mut rngs: Vec<ChaCha8Rng> = (0..n)
        .map(|i| {
            let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
            rng.set_stream((first_image + i) as u64);
            rng
        })
        .collect();
    let given_classes = match (model.class_conditional(), classes) {
        (Some(conditional), Some(classes)) => {
            Some(GivenClasses::new(conditional, classes[first_image..first_image + n].to_vec())?)
        }
        _ => None,
    };
    let model: &dyn PixelModel = match &given_classes {
        Some(given_classes) => given_classes,
        None => model,
    };
    let levels = s.head.levels();
    let to_draw = model.pixel_order().iter().filter(|&&(row, col)| !given.contains(row, col)).count();
    let mut drawn = 0;
    step_through(model, opts.method, pixels, given, |v, logits, pixels: &mut [u8]| -> Result<()> {
        let logits = logits.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        for (i, rng) in rngs.iter_mut().enumerate() {
            let value = s.head.sample_values(&logits[i * levels..(i + 1) * levels], 1, opts.temperature, rng)[0];
            pixels[i * s.dims() + v.index(h, w)] = value;
        }
        if v.channel + 1 == c {
            drawn += 1;
            if drawn % w == 0 || drawn == to_draw {
                progress(drawn.div_ceil(w), to_draw.div_ceil(w));
            }
        }
        Ok(())
    })
}
