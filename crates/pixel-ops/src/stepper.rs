//! Running a model value by value (paper §2): the model's pixel order, R→G→B within a pixel, each
//! value's logits from the cached session or the naive step. The sampler, the compressor and the
//! test harness all step through images this one way; batches are split over threads by
//! [`in_parallel`].

use candle_core::{Device, Tensor};

use crate::model::PixelModel;
use crate::subset::Subset;

/// How the logits of each value are computed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Method {
    /// The architecture's cached session where it has one (each position of each layer computed
    /// once), else the network per value.
    #[default]
    Cached,
    /// The network per value ([`PixelModel::step_logits`]): the reference the cached path must equal.
    Naive,
}

/// One value of an image: channel `channel` of pixel `(row, col)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Value {
    pub row: usize,
    pub col: usize,
    pub channel: usize,
}

impl Value {
    /// Its index in a row-major `(c, h, w)` image of `height` × `width` pixels.
    pub fn index(&self, height: usize, width: usize) -> usize {
        (self.channel * height + self.row) * width + self.col
    }
}

/// Which pixels of the images are given (kept as they are): the others are drawn or decoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Given {
    /// None: every pixel is drawn.
    #[default]
    Nothing,
    /// Rows `0..k` (completion).
    Rows(usize),
    /// The pixels whose row and column are multiples of f, `x[::f, ::f]`: the small image of a
    /// multi-scale model with factor f (upscaling, §3.6).
    Subsampled(usize),
}

impl Given {
    /// Whether pixel `(row, col)` is given.
    pub fn contains(&self, row: usize, col: usize) -> bool {
        match *self {
            Given::Nothing => false,
            Given::Rows(k) => row < k,
            Given::Subsampled(f) => Subset::new(f).contains(row, col),
        }
    }
}

/// Steps `model` through the values of the `n` images in `pixels` (row-major `(n, c, h, w)`) in its
/// factorisation order. At each value it computes the logits `(n, levels)` from what `pixels`
/// holds then, and calls `visit(value, logits, pixels)`, which may write that value of every image
/// before the next step (a sampler draws it, a decoder decodes it).
///
/// On a GPU each step copies the images `(n, c, h, w)` u8 to the device and `visit` copies the
/// logits `(n, levels)` back: the sampler draws on the host, image `i` from its own ChaCha8 stream,
/// so that a seed gives the same images on every device, and the range coder runs on the host.
///
/// The `given` pixels' values are kept: `visit` is not called for them; a cached session still
/// steps over them ([`crate::SamplingSession::skip`]: it must see every value from the first), the
/// naive path leaves them out.
pub fn step_through<E: From<candle_core::Error>>(
    model: &dyn PixelModel,
    method: Method,
    pixels: &mut [u8],
    given: Given,
    mut visit: impl FnMut(Value, &Tensor, &mut [u8]) -> Result<(), E>,
) -> Result<(), E> {
    let s = model.spec();
    let (c, h, w) = (s.channels, s.height, s.width);
    let n = pixels.len() / s.dims();
    let mut session = match method {
        Method::Cached => model.session(n)?,
        Method::Naive => None,
    };
    for (row, col) in model.pixel_order() {
        let is_given = given.contains(row, col);
        if is_given && session.is_none() {
            continue;
        }
        for channel in 0..c {
            let x = Tensor::from_slice(pixels, (n, c, h, w), model.device())?;
            match session.as_mut() {
                Some(session) if is_given => session.skip(&x, row, col, channel)?,
                Some(session) => visit(Value { row, col, channel }, &session.step(&x, row, col, channel)?, pixels)?,
                None => visit(Value { row, col, channel }, &model.step_logits(&x, row, col, channel)?, pixels)?,
            }
        }
    }
    Ok(())
}

/// The number of threads for `threads` (0: one per core), at most `parts`, at least 1.
pub fn thread_count(threads: usize, parts: usize) -> usize {
    match threads {
        0 => std::thread::available_parallelism().map_or(1, |t| t.get()),
        t => t,
    }
    .clamp(1, parts.max(1))
}

/// The number of threads to split `parts` items over for work on `device`: [`thread_count`] on the
/// CPU, where each thread runs its own part of a batch; one on a GPU, which runs the whole batch in
/// each launch (more host threads would only interleave their launches on the device's stream).
pub fn threads_on(device: &Device, threads: usize, parts: usize) -> usize {
    if device.is_cpu() {
        thread_count(threads, parts)
    } else {
        1
    }
}

/// Runs every item on a thread of its own and returns the results in order: the first on the
/// calling thread by `first` (which may hold what cannot cross threads, such as a progress
/// callback), item `k` ≥ 1 by `work(k, item)`. A thread that panics gives `panicked()`.
pub fn in_parallel<I: Send, T: Send>(
    items: Vec<I>,
    first: impl FnOnce(I) -> T,
    work: impl Fn(usize, I) -> T + Sync,
    panicked: impl Fn() -> T,
) -> Vec<T> {
    let work = &work;
    std::thread::scope(|scope| {
        let mut items = items.into_iter();
        let head = items.next();
        let handles: Vec<_> = items.enumerate().map(|(k, item)| scope.spawn(move || work(k + 1, item))).collect();
        let mut results = Vec::with_capacity(handles.len() + 1);
        results.extend(head.map(first));
        results.extend(handles.into_iter().map(|h| h.join().unwrap_or_else(|_| panicked())));
        results
    })
}
