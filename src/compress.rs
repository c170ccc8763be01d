//! Lossless image compression with a zoo model: arithmetic (range) coding of every pixel value
//! with the model's conditional distribution, so an image costs about −log2 p(x) bits.
//!
//! The entropy coder is `constriction`'s range coder (`DefaultRangeEncoder`, 32-bit words). The
//! model's probabilities are quantised to integer frequencies summing to 2^24, every symbol at
//! least 1 ([`frequencies`]), so any value can be coded whatever the model thinks of it.
//!
//! Encoder and decoder must see bit-identical frequencies. Both use the same path: the model's
//! cached sampling session ([`PixelModel::session`]), one value at a time in the model's order,
//! on groups of [`GROUP`] images (the last group smaller; the decoder forms the same groups), with
//! the input holding exactly the values decoded so far (zeros after), and the frequencies computed
//! from the f32 logits by this module's integer/f64 code. The groups are split into a few
//! contiguous runs, each coded as one range-coder stream (so the coder's end-of-stream cost is paid
//! once per stream, not per image) and coded in parallel; the decoder decodes the streams in
//! parallel whatever its own thread count. What a file depends on: the model's
//! weights (their sha256 is in the header, checked before decoding), the format version and this
//! computation being bit-identical, which holds for the same build on the same device class (the
//! header records the device class; another CPU or another build of candle's kernels may round
//! differently). The file carries a checksum of all its pixels, so a mismatch or a corrupt file is
//! an error, never a silently wrong image.
//!
//! Versions 1 to 4 share one layout (below); a new version marks a change in how the
//! probabilities are computed, so a file is decoded only by a build of its own version (an older
//! one is refused with the advice to decode it with the build that wrote it). Version 2: the CPU's
//! LSTM cell computes its sigmoids with a vectorised exponential, which moves the recurrent
//! models' logits by a few ulp. Version 3: the cached sessions' products at one position (every
//! layer's, and the LSTMs' state-to-state products) are computed row by row
//! (`pixel_ops::row_product`), which moves every model's logits by a few ulp. Version 4, the one
//! this build writes and reads ([`VERSION`]): the logistic mixture's 256 bins are computed on the
//! CPU by one fused kernel with vectorised exponentials and logarithms
//! (`pixel_ops::kernels::mixture_bins`), which moves the mixture model's logits by a few ulp; the
//! other models' files are as in version 3.
//!
//! # Container (version 4, all integers little-endian)
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `PXZC` |
//! | 1 | format version (4) |
//! | 1 | frequency precision in bits (24) |
//! | 1 | images per coding group ([`GROUP`], 16) |
//! | 1 | device class the file was coded on (0 = CPU, 1 = CUDA, 2 = Metal) |
//! | 1 + L | model id: length L, UTF-8 |
//! | 32 | sha256 of the model's weights file |
//! | 1, 2, 2 | channels, height, width of every image |
//! | 4 | image count n |
//! | 4 + N | the images' names (plain file names, no directories), joined by `\n`, deflate-compressed: length N, bytes |
//! | 8 | the first 8 bytes of the sha256 of all images' pixels `(n, c, h, w)` |
//! | 1 | stream count S: the ⌈n / 16⌉ groups are split into S contiguous runs, run k = groups ⌊kG/S⌋..⌊(k+1)G/S⌋ |
//! | 4 × S | each stream's length in 32-bit words |
//! | 4 | the first 4 bytes of the sha256 of everything above (the header checksum) |
//! | payload | each stream's range-coder words (u32 little-endian), in order; within a stream, group by group, each value of the group's images interleaved (the model's order, then image) |

use candle_core::{DType, Device};
use constriction::stream::model::DefaultContiguousCategoricalEntropyModel;
use constriction::stream::queue::{DefaultRangeDecoder, DefaultRangeEncoder};
use constriction::stream::{Decode, Encode};
use pixel_ops::stepper::{in_parallel, step_through, threads_on, Given, Method};
use pixel_ops::{Head, ImageSpec, PixelModel};
use sha2::{Digest, Sha256};

use crate::registry::LoadedModel;

/// The file's first bytes.
pub const MAGIC: [u8; 4] = *b"PXZC";
/// The container version this build writes and reads.
pub const VERSION: u8 = 4;
/// Frequencies sum to 2^PRECISION (constriction's default categorical model).
pub const PRECISION: u32 = 24;
/// Images coded together in one batched session.
pub const GROUP: usize = 16;

/// What can go wrong reading or writing a compressed file; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    #[error("not a pixel-zoo compressed file (it does not start with 'PXZC'); the zoo's compressor writes them")]
    NotAZooFile,
    #[error(
        "compressed file version {0}; this build reads version {VERSION}: use the pixel-zoo release that wrote it"
    )]
    UnsupportedVersion(u8),
    #[error("the compressed file is truncated ({0}); it was cut short in transfer or writing, nothing can be decoded")]
    Truncated(String),
    #[error("the compressed file is corrupt: {0}")]
    Corrupt(String),
    #[error("the file was coded with '{file}' but the model given is '{given}'; decode it with '{file}'")]
    WrongModel { file: String, given: String },
    #[error("the file was coded with '{id}' weights of sha256 {file}, but the weights loaded have sha256 {loaded}: decoding would give garbage; use the weights it was coded with")]
    WeightsMismatch { id: String, file: String, loaded: String },
    #[error("the file was coded on {file}, this model runs on {here}: the probabilities must be computed on the same device class; run it on {file}")]
    DeviceMismatch { file: &'static str, here: &'static str },
    #[error("the {images} decoded images' checksum differs from the encoder's: the file is corrupt, or this build computes the model's probabilities differently from the one that wrote it (a file depends on the model's weights, the format version and the exact arithmetic of the build and device class that wrote it)")]
    ChecksumMismatch { images: usize },
    #[error("{0}")]
    Invalid(String),
    /// A coding thread panicked (a bug, not a problem with the input).
    #[error("a coding thread panicked")]
    WorkerPanicked,
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// One image: a file name (no directories) and its pixel values `(c, h, w)` (0/1 or 0..=255).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedImage {
    pub name: String,
    pub pixels: Vec<u8>,
}

/// What a file's header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub model_id: String,
    /// Hex sha256 of the weights the file was coded with.
    pub weights_sha256: String,
    pub device: &'static str,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// The images' names, in order.
    pub names: Vec<String>,
    /// The first 8 bytes of the sha256 of all pixels.
    pub checksum: [u8; 8],
    /// Each stream's length in 32-bit words.
    pub streams: Vec<usize>,
}

const DEVICES: [&str; 3] = ["cpu", "cuda", "metal"];

fn device_class(device: &Device) -> u8 {
    match device {
        Device::Cpu => 0,
        Device::Cuda(_) => 1,
        Device::Metal(_) => 2,
    }
}

fn pixel_checksum<'a>(images: impl Iterator<Item = &'a [u8]>) -> [u8; 8] {
    let mut h = Sha256::new();
    images.for_each(|p| h.update(p));
    h.finalize()[..8].try_into().expect("8 bytes")
}

/// Checks that an image name is a plain file name: decoding writes it into a directory.
fn check_name(name: &str) -> Result<(), CompressError> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0', '\n'])
        && name.len() <= u16::MAX as usize;
    if plain {
        Ok(())
    } else {
        Err(CompressError::Invalid(format!("image name {name:?} is not a plain file name")))
    }
}

/// The model's distribution of one value as integer frequencies: `levels` logits (256 softmax
/// logits, or 1 Bernoulli logit) → one frequency per value (256 or 2), each ≥ 1, summing to
/// 2^[`PRECISION`]. Computed in f64 from the f32 logits by fixed code: the same logits give the
/// same frequencies on every machine with IEEE f64 (the only libm call is `exp`, of the same build).
pub fn frequencies(head: Head, logits: &[f32]) -> Vec<u32> {
    let total = 1u64 << PRECISION;
    let weights = head.value_weights(logits, 1.0);
    match head {
        Head::Bernoulli => {
            let p1 = weights[1];
            let f1 = 1 + ((p1 * (total - 2) as f64).floor() as u64).min(total - 2);
            vec![(total - f1) as u32, f1 as u32]
        }
        Head::Softmax256 | Head::LogisticMixture => {
            let e = weights;
            let sum: f64 = e.iter().sum();
            let free = (total - logits.len() as u64) as f64;
            let mut f: Vec<u64> = e.iter().map(|&v| 1 + ((v / sum * free).floor() as u64)).collect();
            let used: u64 = f.iter().sum();
            // Rounding down leaves a remainder (≥ 0); the most probable value takes it.
            let top = (0..f.len()).fold(0, |best, i| if f[i] > f[best] { i } else { best });
            f[top] += total.saturating_sub(used);
            // Guard against rounding up past the total (never expected): take it from the top.
            let over = f.iter().sum::<u64>().saturating_sub(total);
            f[top] -= over;
            f.into_iter().map(|v| v as u32).collect()
        }
    }
}

fn entropy_model(freqs: &[u32]) -> Result<DefaultContiguousCategoricalEntropyModel, CompressError> {
    DefaultContiguousCategoricalEntropyModel::from_nonzero_fixed_point_probabilities(freqs, false)
        .map_err(|()| CompressError::Invalid("frequencies do not sum to 2^24".into()))
}

/// Codes one value: `(image in the group, index in the image, frequencies)` → the value.
type CodeValue<'a> = dyn FnMut(usize, usize, &[u32]) -> Result<u8, CompressError> + 'a;
/// Codes one stream: `(stream, its groups' image ranges)` → its result.
type StreamWork<'a, T> = dyn Fn(usize, &[std::ops::Range<usize>]) -> Result<T, CompressError> + Sync + 'a;

/// Runs the model over one group of images, value by value in the model's order, calling
/// `code(image, value_index, frequencies) -> value` for each value of each image; `value` is
/// written into the input before the next step (the encoder returns the true value, the decoder
/// the decoded one), so both compute from identical inputs.
fn run_group(model: &dyn PixelModel, n: usize, code: &mut CodeValue<'_>) -> Result<Vec<u8>, CompressError> {
    let s = model.spec();
    let levels = s.head.levels();
    let mut pixels = vec![0u8; n * s.dims()];
    step_through(
        model,
        Method::Cached,
        &mut pixels,
        Given::Nothing,
        |v, logits, pixels: &mut [u8]| -> Result<(), CompressError> {
            let logits = logits.to_dtype(DType::F32)?.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?;
            let k = v.index(s.height, s.width);
            for i in 0..n {
                let freqs = frequencies(s.head, &logits[i * levels..(i + 1) * levels]);
                pixels[i * s.dims() + k] = code(i, k, &freqs)?;
            }
            Ok(())
        },
    )?;
    Ok(pixels)
}

/// The images of each stream's groups: `streams` contiguous runs of the ⌈n / GROUP⌉ groups.
fn stream_groups(n: usize, streams: usize) -> Vec<Vec<std::ops::Range<usize>>> {
    let g = n.div_ceil(GROUP);
    (0..streams)
        .map(|k| (k * g / streams..(k + 1) * g / streams).map(|i| i * GROUP..((i + 1) * GROUP).min(n)).collect())
        .collect()
}

/// Runs `work` on every stream's groups, one thread per stream, results in stream order.
fn per_stream<T: Send>(
    groups: &[Vec<std::ops::Range<usize>>],
    work: &StreamWork<'_, T>,
) -> Result<Vec<T>, CompressError> {
    let items: Vec<&[std::ops::Range<usize>]> = groups.iter().map(Vec::as_slice).collect();
    in_parallel(items, |runs| work(0, runs), work, || Err(CompressError::WorkerPanicked)).into_iter().collect()
}

/// Stream count for `n` images on `threads` threads (0: one per core) on `device`: one per thread,
/// at most one per group, at most 255; one on a GPU ([`threads_on`]).
fn stream_count(n: usize, threads: usize, device: &candle_core::Device) -> usize {
    threads_on(device, threads, n.div_ceil(GROUP).clamp(1, 255))
}

/// Compresses `images` (each `(c, h, w)` as the model's spec) with `model` into one file's bytes.
/// `progress(images_done)` is called as groups finish.
pub fn compress(
    model: &LoadedModel,
    images: &[NamedImage],
    threads: usize,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<u8>, CompressError> {
    let s = model.spec();
    let values = s.head.values();
    let mut names = std::collections::HashSet::new();
    for img in images {
        check_name(&img.name)?;
        if !names.insert(img.name.as_str()) {
            return Err(CompressError::Invalid(format!(
                "two images are named '{}'; decompressing writes each under its name",
                img.name
            )));
        }
        if img.pixels.len() != s.dims() {
            return Err(CompressError::Invalid(format!(
                "image '{}' has {} values, the model takes {}×{}×{}",
                img.name,
                img.pixels.len(),
                s.channels,
                s.height,
                s.width
            )));
        }
        if let Some(v) = img.pixels.iter().find(|&&v| v as usize >= values) {
            return Err(CompressError::Invalid(format!(
                "image '{}' has value {v}; '{}' models values 0..{values}",
                img.name, model.entry.id
            )));
        }
    }
    if images.is_empty() {
        return Err(CompressError::Invalid("no images to compress".into()));
    }
    check_exact_products(model)?;
    let groups = stream_groups(images.len(), stream_count(images.len(), threads, model.device()));
    let streams = per_stream(&groups, &|_, runs| {
        let mut encoder = DefaultRangeEncoder::new();
        for range in runs {
            let group = &images[range.clone()];
            run_group(model.as_ref(), group.len(), &mut |i, k, freqs| {
                let v = group[i].pixels[k];
                encoder
                    .encode_symbol(v as usize, entropy_model(freqs)?)
                    .map_err(|e| CompressError::Invalid(format!("range coder: {e}")))?;
                Ok(v)
            })?;
            progress(range.len());
        }
        encoder.into_compressed().map_err(|e| CompressError::Invalid(format!("range coder: {e:?}")))
    })?;
    let header = Header {
        version: VERSION,
        model_id: model.entry.id.clone(),
        weights_sha256: model.weights_sha256.clone(),
        device: DEVICES[device_class(model.device()) as usize],
        channels: s.channels,
        height: s.height,
        width: s.width,
        names: images.iter().map(|i| i.name.clone()).collect(),
        checksum: pixel_checksum(images.iter().map(|i| i.pixels.as_slice())),
        streams: streams.iter().map(|s| s.len()).collect(),
    };
    let mut out = write_header(&header)?;
    for stream in &streams {
        for word in stream {
            out.extend_from_slice(&word.to_le_bytes());
        }
    }
    Ok(out)
}

fn write_header(h: &Header) -> Result<Vec<u8>, CompressError> {
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC);
    out.push(h.version);
    out.push(PRECISION as u8);
    out.push(GROUP as u8);
    out.push(DEVICES.iter().position(|d| *d == h.device).unwrap_or(0) as u8);
    let id = h.model_id.as_bytes();
    if id.len() > u8::MAX as usize {
        return Err(CompressError::Invalid(format!("model id '{}' is too long", h.model_id)));
    }
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    let sha = hex::decode(&h.weights_sha256).map_err(|e| CompressError::Invalid(format!("weights sha256: {e}")))?;
    out.extend_from_slice(&sha);
    out.push(h.channels as u8);
    out.extend_from_slice(&(h.height as u16).to_le_bytes());
    out.extend_from_slice(&(h.width as u16).to_le_bytes());
    out.extend_from_slice(&(h.names.len() as u32).to_le_bytes());
    let mut names = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut names, h.names.join("\n").as_bytes())
        .and_then(|()| names.try_finish())
        .map_err(|e| CompressError::Invalid(format!("compressing the names: {e}")))?;
    let names = names.finish().map_err(|e| CompressError::Invalid(format!("compressing the names: {e}")))?;
    out.extend_from_slice(&(names.len() as u32).to_le_bytes());
    out.extend_from_slice(&names);
    out.extend_from_slice(&h.checksum);
    out.push(h.streams.len() as u8);
    for words in &h.streams {
        out.extend_from_slice(&(*words as u32).to_le_bytes());
    }
    let check: [u8; 32] = Sha256::digest(&out).into();
    out.extend_from_slice(&check[..4]);
    Ok(out)
}

/// A cursor over the file that reports truncation by field name.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], CompressError> {
        if self.bytes.len() - self.at < n {
            return Err(CompressError::Truncated(format!("it ends inside the {what}")));
        }
        self.at += n;
        Ok(&self.bytes[self.at - n..self.at])
    }
    fn u8(&mut self, what: &str) -> Result<u8, CompressError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, CompressError> {
        Ok(u16::from_le_bytes(self.take(2, what)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self, what: &str) -> Result<u32, CompressError> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes")))
    }
}

/// Reads and checks a file's header: `(header, offset of the payload)`.
pub fn read_header(bytes: &[u8]) -> Result<(Header, usize), CompressError> {
    if bytes.len() < 4 || bytes[..4] != MAGIC {
        return Err(CompressError::NotAZooFile);
    }
    let mut r = Reader { bytes, at: 4 };
    let version = r.u8("header")?;
    if version != VERSION {
        return Err(CompressError::UnsupportedVersion(version));
    }
    let (precision, group) = (r.u8("header")?, r.u8("header")?);
    if precision as u32 != PRECISION || group as usize != GROUP {
        return Err(CompressError::Corrupt(format!(
            "precision {precision} and group {group} in the header; version {VERSION} has {PRECISION} and {GROUP}"
        )));
    }
    let device = *DEVICES
        .get(r.u8("header")? as usize)
        .ok_or_else(|| CompressError::Corrupt("unknown device class in the header".into()))?;
    let id_len = r.u8("model id")? as usize;
    let model_id = String::from_utf8(r.take(id_len, "model id")?.to_vec())
        .map_err(|_| CompressError::Corrupt("the model id is not UTF-8".into()))?;
    let weights_sha256 = hex::encode(r.take(32, "weights sha256")?);
    let channels = r.u8("image size")? as usize;
    let (height, width) = (r.u16("image size")? as usize, r.u16("image size")? as usize);
    let count = r.u32("image count")? as usize;
    let names_len = r.u32("names")? as usize;
    let packed_names = r.take(names_len, "names")?;
    let checksum = r.take(8, "pixel checksum")?.try_into().expect("8 bytes");
    let stream_count = r.u8("stream count")? as usize;
    let streams =
        (0..stream_count).map(|_| r.u32("stream lengths").map(|w| w as usize)).collect::<Result<Vec<_>, _>>()?;
    let end = r.at;
    let check = r.take(4, "header checksum")?;
    if check != &<[u8; 32]>::from(Sha256::digest(&bytes[..end]))[..4] {
        return Err(CompressError::Corrupt("the header checksum does not match its contents".into()));
    }
    // Only after the checksum: a corrupt length must not make us inflate garbage.
    let mut names = String::new();
    std::io::Read::read_to_string(&mut flate2::read::DeflateDecoder::new(packed_names), &mut names)
        .map_err(|e| CompressError::Corrupt(format!("the names do not decompress: {e}")))?;
    let names: Vec<String> = if count == 0 { vec![] } else { names.split('\n').map(String::from).collect() };
    if names.len() != count {
        return Err(CompressError::Corrupt(format!("{} names for {count} images", names.len())));
    }
    for name in &names {
        check_name(name).map_err(|e| CompressError::Corrupt(e.to_string()))?;
    }
    if count == 0 || stream_count == 0 || stream_count > count.div_ceil(GROUP) {
        return Err(CompressError::Corrupt(format!("{count} images in {stream_count} streams")));
    }
    let header =
        Header { version, model_id, weights_sha256, device, channels, height, width, names, checksum, streams };
    let payload: usize = header.streams.iter().map(|w| w * 4).sum();
    let have = bytes.len() - r.at;
    if have < payload {
        return Err(CompressError::Truncated(format!(
            "the header announces {payload} bytes of code, {have} are there"
        )));
    }
    if have > payload {
        return Err(CompressError::Corrupt(format!("{} bytes after the last image's code", have - payload)));
    }
    Ok((header, r.at))
}

/// Checks that `model` is the one `header` was coded with (id, weights, image size, device).
/// On CUDA, f32 matrix products must be full f32 (candle's default): with TF32 allowed
/// (`candle_core::cuda::set_gemm_reduced_precision_f32(true)`), cuBLAS may pick kernels whose
/// rounding differs between the encoder's and the decoder's runs.
fn check_exact_products(model: &LoadedModel) -> Result<(), CompressError> {
    if model.device().is_cuda() && candle_core::cuda::gemm_reduced_precision_f32() {
        return Err(CompressError::Invalid(
            "TF32 matrix products are switched on (candle_core::cuda::set_gemm_reduced_precision_f32); \
             compression needs full f32 products: switch them off"
                .into(),
        ));
    }
    Ok(())
}

pub fn check_model(header: &Header, model: &LoadedModel) -> Result<(), CompressError> {
    if header.model_id != model.entry.id {
        return Err(CompressError::WrongModel { file: header.model_id.clone(), given: model.entry.id.clone() });
    }
    if header.weights_sha256 != model.weights_sha256 {
        return Err(CompressError::WeightsMismatch {
            id: header.model_id.clone(),
            file: header.weights_sha256.clone(),
            loaded: model.weights_sha256.clone(),
        });
    }
    let here = DEVICES[device_class(model.device()) as usize];
    if header.device != here {
        return Err(CompressError::DeviceMismatch { file: header.device, here });
    }
    let s: ImageSpec = model.spec();
    if (header.channels, header.height, header.width) != (s.channels, s.height, s.width) {
        return Err(CompressError::Corrupt(format!(
            "the header's image size {}×{}×{} is not the model's",
            header.channels, header.height, header.width
        )));
    }
    Ok(())
}

/// Decodes a file written by [`compress`] with the same model: the images, named as given. The
/// streams are decoded in parallel, one thread each.
pub fn decompress(
    model: &LoadedModel,
    bytes: &[u8],
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<NamedImage>, CompressError> {
    let (header, offset) = read_header(bytes)?;
    check_model(&header, model)?;
    check_exact_products(model)?;
    let s = model.spec();
    let groups = stream_groups(header.names.len(), header.streams.len());
    let mut starts = Vec::with_capacity(header.streams.len());
    let mut at = offset;
    for words in &header.streams {
        starts.push(at);
        at += words * 4;
    }
    let decoded = per_stream(&groups, &|k, runs| {
        let words: Vec<u32> = bytes[starts[k]..starts[k] + header.streams[k] * 4]
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect();
        let mut decoder = DefaultRangeDecoder::from_compressed(words)
            .map_err(|_| CompressError::Corrupt(format!("stream {k} is not a range code")))?;
        let mut pixels = Vec::new();
        for range in runs {
            pixels.extend(run_group(model.as_ref(), range.len(), &mut |_, _, freqs| {
                let v = decoder
                    .decode_symbol(entropy_model(freqs)?)
                    .map_err(|e| CompressError::Corrupt(format!("stream {k} does not decode: {e:?}")))?;
                Ok(v as u8)
            })?);
            progress(range.len());
        }
        Ok(pixels)
    })?;
    let pixels: Vec<u8> = decoded.into_iter().flatten().collect();
    if pixel_checksum(pixels.chunks(s.dims())) != header.checksum {
        return Err(CompressError::ChecksumMismatch { images: header.names.len() });
    }
    Ok(header
        .names
        .iter()
        .zip(pixels.chunks(s.dims()))
        .map(|(name, p)| NamedImage { name: name.clone(), pixels: p.to_vec() })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequencies_are_positive_and_sum_to_the_total() {
        let total = 1u64 << PRECISION;
        for logits in [vec![0f32; 256], (0..256).map(|i| i as f32).collect(), {
            let mut v = vec![-1e30f32; 256];
            v[7] = 50.0;
            v
        }] {
            let f = frequencies(Head::Softmax256, &logits);
            assert_eq!(f.len(), 256);
            assert!(f.iter().all(|&v| v >= 1));
            assert_eq!(f.iter().map(|&v| v as u64).sum::<u64>(), total);
        }
        for z in [-1e30f32, -30.0, 0.0, 30.0, 1e30] {
            let f = frequencies(Head::Bernoulli, &[z]);
            assert!(f.iter().all(|&v| v >= 1), "{z}: {f:?}");
            assert_eq!(f.iter().map(|&v| v as u64).sum::<u64>(), total);
        }
        // Close to the probabilities: p = 1/2 → half the total.
        assert_eq!(frequencies(Head::Bernoulli, &[0.0])[1], 1 << (PRECISION - 1));
    }

    #[test]
    fn header_round_trips_and_every_truncation_is_reported() {
        let h = Header {
            version: VERSION,
            model_id: "pixelcnn-mnist".into(),
            weights_sha256: "ab".repeat(32),
            device: "cpu",
            channels: 1,
            height: 28,
            width: 28,
            names: vec!["a.png".into(), "b.png".into()],
            checksum: [1; 8],
            streams: vec![2],
        };
        let mut bytes = write_header(&h).unwrap();
        bytes.extend_from_slice(&[0; 8]);
        let (back, offset) = read_header(&bytes).unwrap();
        assert_eq!(back, h);
        assert_eq!(offset, bytes.len() - 8);
        for cut in 4..bytes.len() {
            assert!(matches!(read_header(&bytes[..cut]), Err(CompressError::Truncated(_))), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[10] ^= 1;
        assert!(matches!(read_header(&flipped), Err(CompressError::Corrupt(_))));
        assert!(matches!(read_header(b"\x89PNG\r\n"), Err(CompressError::NotAZooFile)));
    }
}
