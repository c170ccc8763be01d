//! PNG in and out: images for scoring and completion, and sample grids with a small border.
//! Files are written to a temporary name beside the target and renamed, so a failure never leaves
//! a half-written file.

use std::io::Cursor;
use std::path::Path;

use image::{ColorType, DynamicImage, ImageFormat, ImageReader};

use crate::error::{Error, Result};
use crate::head::Head;
use crate::model::ImageSpec;

/// Reads an image file as `(c, h, w)` pixel values for a model with `spec`.
///
/// RGB models take 8-bit RGB images; grey models take 8-bit greyscale images. For a Bernoulli
/// (binary) model a grey value ≥ 128 reads as 1, below as 0.
pub fn read_image(path: &Path, spec: &ImageSpec) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let img = ImageReader::new(Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?
        .decode()
        .map_err(|e| Error::bad_file(path, format!("not a readable image: {e}")))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    if (h, w) != (spec.height, spec.width) {
        return Err(Error::bad_file(
            path,
            format!(
                "image is {w}x{h} but the model takes {}x{} images; resize or crop it first",
                spec.width, spec.height
            ),
        ));
    }
    let kind = match img.color() {
        ColorType::L8 => 1,
        ColorType::Rgb8 => 3,
        other => {
            return Err(Error::bad_file(
                path,
                format!("{other:?} images are not supported; save it as 8-bit {} without alpha", want(spec)),
            ))
        }
    };
    if kind != spec.channels {
        return Err(Error::bad_file(
            path,
            format!(
                "image has {kind} colour channel(s) but the model takes {}: save it as 8-bit {}",
                spec.channels,
                want(spec)
            ),
        ));
    }
    let hwc = img.into_bytes();
    let mut chw = vec![0u8; hwc.len()];
    let c = spec.channels;
    for (i, &v) in hwc.iter().enumerate() {
        let (pixel, ch) = (i / c, i % c);
        chw[ch * h * w + pixel] = match spec.head {
            Head::Bernoulli => u8::from(v >= 128),
            Head::Softmax256 => v,
        };
    }
    Ok(chw)
}

fn want(spec: &ImageSpec) -> &'static str {
    if spec.channels == 3 {
        "RGB"
    } else {
        "greyscale"
    }
}

/// Lays out `images` (row-major `(n, c, h, w)` pixel values) on a grid of `cols` columns with a
/// `border`-pixel grey border, scaling binary values to 0/255. Returns an 8-bit image.
pub fn grid(images: &[u8], n: usize, spec: &ImageSpec, cols: usize, border: usize) -> DynamicImage {
    let (c, h, w) = (spec.channels, spec.height, spec.width);
    let cols = cols.clamp(1, n.max(1));
    let rows = n.div_ceil(cols);
    let gw = cols * w + (cols + 1) * border;
    let gh = rows * h + (rows + 1) * border;
    let scale = |v: u8| {
        if spec.head == Head::Bernoulli {
            v.saturating_mul(255)
        } else {
            v
        }
    };
    let mut out = vec![128u8; gw * gh * c];
    for i in 0..n {
        let (gy, gx) = (i / cols, i % cols);
        let (oy, ox) = (border + gy * (h + border), border + gx * (w + border));
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

/// Writes `img` as PNG to `path` atomically (temporary file beside it, then rename).
pub fn write_png(img: &DynamicImage, path: &Path) -> Result<()> {
    let mut buf = Vec::new();
    img.write_to(&mut Cursor::new(&mut buf), ImageFormat::Png)
        .map_err(|e| Error::bad_file(path, format!("PNG encoding failed: {e}")))?;
    write_atomic(path, &buf)
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name =
        path.file_name().ok_or_else(|| Error::InvalidArgument(format!("{} is not a file path", path.display())))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let res = std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}
