//! `zoo decompress`: decode a file written by `zoo compress` into PNGs under their original names,
//! with the model named in the file.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use pixel_data::files::{grid, write_png};
use pixel_zoo::compress::{decompress, read_header};
use pixel_zoo::pixel_format;
use pixel_zoo::Zoo;

use crate::cli::{DecompressArgs, DeviceArg, ModelArgs};
use crate::context::{load, png_name, progress_bar};

pub fn run(zoo: &Zoo, device: DeviceArg, args: DecompressArgs) -> Result<()> {
    let DecompressArgs { file, output: dir, weights } = args;
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let (header, _) = read_header(&bytes).with_context(|| file.display().to_string())?;
    let m = load(zoo, &ModelArgs { id: header.model_id.clone(), weights }, device)
        .with_context(|| format!("{} was coded with '{}'", file.display(), header.model_id))?;
    let outputs: Vec<PathBuf> = header.names.iter().map(|n| dir.join(png_name(n))).collect();
    let t = Instant::now();
    let bar = progress_bar(header.names.len() as u64, "decompressing images");
    let images = decompress(&m, &bytes, &|n| bar.inc(n as u64)).with_context(|| file.display().to_string())?;
    bar.finish_and_clear();
    // Everything decoded and checked: only now create the directory and write the images.
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let spec = m.spec();
    for (img, path) in images.iter().zip(&outputs) {
        write_png(&grid(&img.pixels, 1, &pixel_format(&spec), 1, 0), path)?;
    }
    eprintln!(
        "decoded {} images of {} into {} in {:.1} s",
        images.len(),
        m.entry.id,
        dir.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
