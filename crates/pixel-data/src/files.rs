//! PNG in and out: images for scoring and completion, and sample grids with a small border; the
//! animated GIF of a grid being drawn.
//! Files are written to a temporary name beside the target and renamed, so a failure never leaves
//! a half-written file.

use std::io::Cursor;
use std::path::Path;

use image::{ColorType, DynamicImage, ImageDecoder, ImageFormat, ImageReader};

use crate::error::{Error, Result};

/// The pixels of a model's images, as files hold them: `(c, h, w)` values, binary or 8-bit (a
/// model with a Bernoulli head takes binary ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelFormat {
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Values 0/1 (read from a grey value ≥ 128, shown as 0/255) rather than 0..=255.
    pub binary: bool,
}

impl PixelFormat {
    /// Values per image: c·h·w.
    pub fn dims(&self) -> usize {
        self.channels * self.height * self.width
    }
}

/// Reads an image file as `(c, h, w)` pixel values for a model with `spec` ([`decode_image`]).
pub fn read_image(path: &Path, spec: &PixelFormat) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_image(&bytes, spec, path)
}

/// Decodes a PNG file's `bytes` (read from `path`, which names it in errors) as `(c, h, w)` pixel
/// values for a model with `spec`.
///
/// RGB models take 8-bit RGB images (a palette image is expanded to its RGB colours); grey models
/// take 8-bit greyscale images (1-, 2- and 4-bit greyscale are expanded). For a Bernoulli (binary)
/// model a grey value ≥ 128 reads as 1, below as 0. Size and colour type are checked from the
/// header, before the pixels are decoded; 16-bit, alpha, and the wrong number of channels are
/// refused with what to do.
pub fn decode_image(bytes: &[u8], spec: &PixelFormat, path: &Path) -> Result<Vec<u8>> {
    if bytes.is_empty() {
        return Err(Error::bad_file(path, "the file is empty (0 bytes); pass a PNG image"));
    }
    let unreadable = |e: image::ImageError| {
        Error::bad_file(path, format!("not a readable image ({e}); pass a PNG file of {}", want_full(spec)))
    };
    if let Err(msg) = check_png_chunks(bytes) {
        return Err(Error::bad_file(path, format!("a corrupt PNG ({msg}); save the image again")));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| Error::io(path, e))?;
    // The `gif` feature is on for writing animations (`write_gif`); GIF inputs are not read.
    if reader.format() == Some(ImageFormat::Gif) {
        return Err(Error::bad_file(
            path,
            format!(
                "not a readable image (a GIF header; GIF is not an input format); pass a PNG file of {}",
                want_full(spec)
            ),
        ));
    }
    // The pixels of a model's image are a few KiB; nothing a valid input needs comes near this.
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(64 << 20);
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(unreadable)?;
    let (w, h) = decoder.dimensions();
    let (w, h) = (w as usize, h as usize);
    if (h, w) != (spec.height, spec.width) {
        return Err(Error::bad_file(
            path,
            format!(
                "image is {w}x{h} but the model takes {}x{} images; resize or crop it first",
                spec.width, spec.height
            ),
        ));
    }
    let palette = is_palette_png(bytes);
    let kind = match decoder.color_type() {
        ColorType::L8 => 1,
        ColorType::Rgb8 => 3,
        other => {
            return Err(Error::bad_file(
                path,
                format!("{} images are not supported; save it as {}", describe(other, palette), want_full(spec)),
            ))
        }
    };
    if kind != spec.channels {
        let what = if palette { "a palette (indexed-colour) image".to_string() } else { describe_channels(kind) };
        return Err(Error::bad_file(
            path,
            format!("{what}, but the model takes {} channel(s): save it as {}", spec.channels, want_full(spec)),
        ));
    }
    // The decoder is third-party code; should a corrupt file make it panic (unwinding), it is
    // still one more unreadable file (the panic hook will have printed its message).
    let img = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| DynamicImage::from_decoder(decoder)))
        .map_err(|_| Error::bad_file(path, "a corrupt PNG: the decoder failed on it; save the image again"))?
        .map_err(unreadable)?;
    let hwc = img.into_bytes();
    let c = spec.channels;
    if hwc.len() != c * h * w {
        return Err(Error::bad_file(path, format!("decoded {} bytes, expected {}", hwc.len(), c * h * w)));
    }
    let mut chw = vec![0u8; hwc.len()];
    for (i, &v) in hwc.iter().enumerate() {
        let (pixel, ch) = (i / c, i % c);
        chw[ch * h * w + pixel] = if spec.binary { u8::from(v >= 128) } else { v };
    }
    Ok(chw)
}

/// Checks what the `png` crate (0.18.1) does not before it indexes into it: a `PLTE` chunk of
/// 1..=256 whole RGB entries (a 49-byte palette makes its palette expansion panic; found by the
/// `image` fuzz target). Walks the chunk headers only; not a PNG: nothing to check.
fn check_png_chunks(bytes: &[u8]) -> std::result::Result<(), String> {
    if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok(());
    }
    let mut pos = 8usize;
    while let Some(head) = bytes.get(pos..pos + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        match &head[4..8] {
            b"PLTE" if len == 0 || !len.is_multiple_of(3) || len > 768 => {
                return Err(format!("its palette is {len} bytes, not 1 to 256 RGB entries of 3 bytes"))
            }
            b"IEND" => break,
            _ => {}
        }
        pos = match pos.checked_add(12).and_then(|p| p.checked_add(len)) {
            Some(p) => p,
            None => break,
        };
    }
    Ok(())
}

/// Whether `bytes` is a PNG whose header says indexed colour (the decoder expands it to RGB).
fn is_palette_png(bytes: &[u8]) -> bool {
    bytes.len() > 25 && bytes.starts_with(b"\x89PNG\r\n\x1a\n") && &bytes[12..16] == b"IHDR" && bytes[25] == 3
}

/// "8-bit greyscale (one channel)" or "8-bit RGB (three channels, no alpha)".
fn want_full(spec: &PixelFormat) -> &'static str {
    if spec.channels == 3 {
        "8-bit RGB without alpha"
    } else {
        "8-bit greyscale without alpha"
    }
}

fn describe_channels(kind: usize) -> String {
    match kind {
        1 => "a greyscale image (1 colour channel)".into(),
        _ => format!("an RGB image ({kind} colour channels)"),
    }
}

/// The colour type in words, for errors.
fn describe(c: ColorType, palette: bool) -> String {
    let s = match c {
        ColorType::L16 => "16-bit greyscale",
        ColorType::La8 => "greyscale-with-alpha",
        ColorType::La16 => "16-bit greyscale-with-alpha",
        ColorType::Rgb16 => "16-bit RGB",
        ColorType::Rgba8 if palette => "palette (indexed-colour) with transparency",
        ColorType::Rgba8 => "RGBA (with alpha)",
        ColorType::Rgba16 => "16-bit RGBA",
        ColorType::Rgb32F => "32-bit float RGB",
        ColorType::Rgba32F => "32-bit float RGBA",
        other => return format!("{other:?}"),
    };
    s.to_string()
}

/// Lays out `images` (row-major `(n, c, h, w)` pixel values) on a grid of `cols` columns with a
/// `border`-pixel grey border, scaling binary values to 0/255. Returns an 8-bit image.
pub fn grid(images: &[u8], n: usize, spec: &PixelFormat, cols: usize, border: usize) -> DynamicImage {
    let (c, h, w) = (spec.channels, spec.height, spec.width);
    let cols = cols.clamp(1, n.max(1));
    let rows = n.div_ceil(cols);
    let gw = cols * w + (cols + 1) * border;
    let gh = rows * h + (rows + 1) * border;
    let scale = |v: u8| {
        if spec.binary {
            v.saturating_mul(255)
        } else {
            v
        }
    };
    let mut out = vec![128u8; gw * gh * c];
    for i in 0..n {
        let (oy, ox) = tile_origin(i, cols, h, w, border);
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let v = images[((i * c + ch) * h + y) * w + x];
                    out[((oy + y) * gw + ox + x) * c + ch] = scale(v);
                }
            }
        }
    }
    if c == 3 {
        DynamicImage::ImageRgb8(image::RgbImage::from_raw(gw as u32, gh as u32, out).expect("buffer sized to the grid"))
    } else {
        DynamicImage::ImageLuma8(
            image::GrayImage::from_raw(gw as u32, gh as u32, out).expect("buffer sized to the grid"),
        )
    }
}

/// The top-left corner `(y, x)` of image `i` on a grid of `cols` columns of `h`×`w` images.
fn tile_origin(i: usize, cols: usize, h: usize, w: usize, border: usize) -> (usize, usize) {
    (border + i / cols * (h + border), border + i % cols * (w + border))
}

/// The grey of the pixels not drawn yet in [`reveal_frames`] (darker than the border's 128).
pub const NOT_YET_DRAWN: u8 = 64;

/// The frames of a grid (as [`grid`] lays out `images`) whose pixels appear one after another:
/// `reveal` `(n, h, w)` holds the frame in which each pixel of each image appears (0: from the
/// first). Frame k (of `frames`) shows the pixels whose frame is ≤ k, and [`NOT_YET_DRAWN`] grey
/// in place of the others.
pub fn reveal_frames(
    images: &[u8],
    n: usize,
    spec: &PixelFormat,
    cols: usize,
    border: usize,
    reveal: &[usize],
    frames: usize,
) -> Vec<DynamicImage> {
    let (c, h, w) = (spec.channels, spec.height, spec.width);
    let full = grid(images, n, spec, cols, border);
    let (gw, gh) = (full.width(), full.height());
    let full = full.into_bytes();
    let cols = cols.clamp(1, n.max(1));
    (0..frames)
        .map(|k| {
            let mut out = full.clone();
            for i in 0..n {
                let (oy, ox) = tile_origin(i, cols, h, w, border);
                for y in 0..h {
                    for x in 0..w {
                        if reveal[(i * h + y) * w + x] > k {
                            let at = ((oy + y) * gw as usize + ox + x) * c;
                            out[at..at + c].fill(NOT_YET_DRAWN);
                        }
                    }
                }
            }
            if c == 3 {
                DynamicImage::ImageRgb8(image::RgbImage::from_raw(gw, gh, out).expect("the grid's size"))
            } else {
                DynamicImage::ImageLuma8(image::GrayImage::from_raw(gw, gh, out).expect("the grid's size"))
            }
        })
        .collect()
}

/// Writes `frames` (all of one size) as an animated GIF to `path`, atomically: each frame shown
/// for `delay_ms` milliseconds, the last for `last_ms`, looping. Colours are reduced to a palette
/// of 256 per frame by the `image` crate's encoder (exact when a frame has no more).
pub fn write_gif(frames: &[DynamicImage], delay_ms: u32, last_ms: u32, path: &Path) -> Result<()> {
    use image::codecs::gif::{GifEncoder, Repeat};
    use image::{Delay, Frame};
    let failed = |e: image::ImageError| Error::bad_file(path, format!("GIF encoding failed: {e}"));
    let mut buf = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut buf, 10);
        encoder.set_repeat(Repeat::Infinite).map_err(failed)?;
        for (k, f) in frames.iter().enumerate() {
            let ms = if k + 1 == frames.len() { last_ms } else { delay_ms };
            encoder
                .encode_frame(Frame::from_parts(f.to_rgba8(), 0, 0, Delay::from_numer_denom_ms(ms, 1)))
                .map_err(failed)?;
        }
    }
    write_atomic(path, &buf)
}

/// Writes `img` as PNG to `path` atomically (temporary file beside it, then rename).
pub fn write_png(img: &DynamicImage, path: &Path) -> Result<()> {
    let mut buf = Vec::new();
    img.write_to(&mut Cursor::new(&mut buf), ImageFormat::Png)
        .map_err(|e| Error::bad_file(path, format!("PNG encoding failed: {e}")))?;
    write_atomic(path, &buf)
}

/// Writes `bytes` to `path` through a temporary file in the same directory, flushed to disk, and a
/// rename: `path` is either its old self or the whole new file, and a failure removes the temporary.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = output_dir(path);
    let name =
        path.file_name().ok_or_else(|| Error::InvalidArgument(format!("{} is not a file path", path.display())))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::Write { path: path.to_path_buf(), source: e });
    }
    Ok(())
}

/// Checks, before any work, that `path` can be written: its directory exists and takes a new file,
/// and `path` is not a directory. Leaves nothing behind.
pub fn check_writable(path: &Path) -> Result<()> {
    let fail = |why: String| {
        Error::InvalidArgument(format!("cannot write {}: {why}; choose another output path", path.display()))
    };
    let dir = output_dir(path);
    if path.file_name().is_none() {
        return Err(fail("it is not a file path".into()));
    }
    match std::fs::metadata(dir) {
        Err(_) => return Err(fail(format!("directory {} does not exist", dir.display()))),
        Ok(m) if !m.is_dir() => return Err(fail(format!("{} is not a directory", dir.display()))),
        Ok(_) => {}
    }
    if path.is_dir() {
        return Err(fail("it is a directory".into()));
    }
    let probe =
        dir.join(format!(".{}.probe-{}", path.file_name().unwrap_or_default().to_string_lossy(), std::process::id()));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(fail(format!("directory {} does not take new files ({e})", dir.display()))),
    }
}

fn output_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
