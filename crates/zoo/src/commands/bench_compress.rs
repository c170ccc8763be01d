//! `zoo bench-compress`: the compression benchmark. Per model, on its data set's first test
//! images: the coded size in bits/dim beside the model's NLL, PNG and lossless WebP, and encode /
//! decode images per second.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::codecs::webp::WebPEncoder;
use image::{DynamicImage, ImageEncoder};
use pixel_data::datasets::Dataset;
use pixel_data::files::grid;
use pixel_ops::head::bits_per_dim;
use pixel_zoo::compress::{compress, decompress, read_header, NamedImage};
use pixel_zoo::pixel_format;
use pixel_zoo::{ImageSpec, Zoo};
use serde_json::json;

use crate::cli::{BenchCompressArgs, DeviceArg, ModelArgs};
use crate::context::{given_or_local_models, load, total_nll, CODING_THREADS};

/// The compression benchmark: per model, on its data set's first `limit` test images, the coded
/// size in bits/dim beside the model's NLL, PNG and WebP, and encode / decode images per second.
pub fn run(zoo: &Zoo, device: DeviceArg, args: BenchCompressArgs) -> Result<()> {
    let BenchCompressArgs { ids, data_dir, limit, json: json_out } = args;
    if limit == 0 {
        bail!("--limit must be at least 1");
    }
    let ids = given_or_local_models(zoo, ids);
    for id in &ids {
        zoo.entry(id)?; // every id known before the first (long) measurement
    }
    let mut rows = Vec::new();
    for id in &ids {
        let entry = zoo.entry(id)?;
        let dataset = Dataset::from_name(&entry.dataset).context("manifest data set")?;
        let mut data = dataset.load_test(&dataset.locate(data_dir.as_deref())?)?;
        data.truncate(limit);
        let m = load(zoo, &ModelArgs { id: id.clone(), weights: None }, device)?;
        let spec = m.spec();
        let d = spec.dims();
        let images: Vec<NamedImage> = (0..data.n)
            .map(|i| NamedImage { name: format!("{i:04}.png"), pixels: data.pixels[i * d..(i + 1) * d].to_vec() })
            .collect();
        let t = Instant::now();
        let file = compress(&m, &images, CODING_THREADS, &|_| {})?;
        let encode_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let back = decompress(&m, &file, &|_| {})?;
        let decode_s = t.elapsed().as_secs_f64();
        if back != images {
            bail!("{id}: the decoded images differ from the originals");
        }
        let (header, payload_at) = read_header(&file)?;
        let streams = header.streams.len();
        let nats = total_nll(&m, &data.pixels[..data.n * d], 50, &mut |_| {})?;
        let (mut png, mut webp) = (0usize, 0usize);
        for img in &images {
            let (p, w) = png_and_webp_bytes(&img.pixels, &spec)?;
            png += p;
            webp += w;
        }
        let dims = (data.n * d) as f64;
        let nll_bpd = bits_per_dim(nats / data.n as f64, d);
        let file_bpd = file.len() as f64 * 8.0 / dims;
        let payload_bpd = (file.len() - payload_at) as f64 * 8.0 / dims;
        let row = json!({
            "id": id, "dataset": entry.dataset, "images": data.n,
            "nll_bits_per_dim": nll_bpd, "file_bits_per_dim": file_bpd, "payload_bits_per_dim": payload_bpd,
            "overhead_percent": (file_bpd / nll_bpd - 1.0) * 100.0,
            "png_bits_per_dim": png as f64 * 8.0 / dims, "webp_bits_per_dim": webp as f64 * 8.0 / dims,
            "file_bytes": file.len(), "header_bytes": payload_at, "png_bytes": png, "webp_bytes": webp,
            "encode_images_per_s": data.n as f64 / encode_s, "decode_images_per_s": data.n as f64 / decode_s,
            "streams": streams,
        });
        tracing::info!(%row, "measured");
        if !json_out {
            eprintln!("{id}: done");
        }
        rows.push(row);
    }
    if json_out {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "| model | images | NLL bits/dim | file bits/dim | overhead | PNG (best) | WebP lossless | encode img/s | decode img/s |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        for r in &rows {
            println!(
                "| {} | {} | {:.4} | {:.4} | {:+.2}% | {:.3} | {:.3} | {:.1} | {:.1} |",
                r["id"].as_str().unwrap_or(""),
                r["images"],
                r["nll_bits_per_dim"].as_f64().unwrap_or(f64::NAN),
                r["file_bits_per_dim"].as_f64().unwrap_or(f64::NAN),
                r["overhead_percent"].as_f64().unwrap_or(f64::NAN),
                r["png_bits_per_dim"].as_f64().unwrap_or(f64::NAN),
                r["webp_bits_per_dim"].as_f64().unwrap_or(f64::NAN),
                r["encode_images_per_s"].as_f64().unwrap_or(f64::NAN),
                r["decode_images_per_s"].as_f64().unwrap_or(f64::NAN),
            );
        }
    }
    Ok(())
}

/// Bytes of one image as a PNG at maximum compression and as a lossless WebP (both by the
/// `image` crate: its PNG encoder with `CompressionType::Best` and adaptive filters, and its
/// lossless `WebPEncoder`), 8-bit grey or RGB; binary images as 0/255 grey.
fn png_and_webp_bytes(pixels: &[u8], spec: &ImageSpec) -> Result<(usize, usize)> {
    let img = grid(pixels, 1, &pixel_format(spec), 1, 0);
    let (w, h) = (spec.width as u32, spec.height as u32);
    let (raw, colour) = match &img {
        DynamicImage::ImageLuma8(i) => (i.as_raw().clone(), image::ExtendedColorType::L8),
        DynamicImage::ImageRgb8(i) => (i.as_raw().clone(), image::ExtendedColorType::Rgb8),
        _ => bail!("unexpected image type"),
    };
    let mut png = Vec::new();
    PngEncoder::new_with_quality(&mut png, CompressionType::Best, FilterType::Adaptive)
        .write_image(&raw, w, h, colour)?;
    let mut webp = Vec::new();
    WebPEncoder::new_lossless(&mut webp).write_image(&raw, w, h, colour)?;
    Ok((png.len(), webp.len()))
}
