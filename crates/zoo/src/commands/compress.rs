//! `zoo compress`: code images losslessly with a model ([`pixel_zoo::compress`]) into one file.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use pixel_data::files::{read_image, write_atomic};
use pixel_zoo::compress::{compress, NamedImage};
use pixel_zoo::pixel_format;
use pixel_zoo::Zoo;

use crate::cli::{DeviceArg, ImagesToFileArgs};
use crate::context::{check_output, load, png_name, progress_bar, CODING_THREADS};

pub fn run(zoo: &Zoo, device: DeviceArg, args: ImagesToFileArgs) -> Result<()> {
    let ImagesToFileArgs { model, images, output } = args;
    check_output(&output)?;
    let m = load(zoo, &model, device)?;
    let spec = m.spec();
    let mut named = Vec::with_capacity(images.len());
    let mut outputs = std::collections::HashMap::new();
    for p in &images {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{}: not a file name the container can store (UTF-8)", p.display()))?;
        if let Some(other) = outputs.insert(png_name(name), p) {
            bail!("{} and {} would both decompress to {}: rename one", other.display(), p.display(), png_name(name));
        }
        named.push(NamedImage { name: name.to_string(), pixels: read_image(p, &pixel_format(&spec))? });
    }
    let t = Instant::now();
    let bar = progress_bar(named.len() as u64, "compressing images");
    let bytes = compress(&m, &named, CODING_THREADS, &|n| bar.inc(n as u64))?;
    bar.finish_and_clear();
    write_atomic(&output, &bytes)?;
    let bpd = bytes.len() as f64 * 8.0 / (named.len() * spec.dims()) as f64;
    eprintln!(
        "wrote {} images to {} with {}: {} bytes, {bpd:.4} bits/dim, in {:.1} s",
        named.len(),
        output.display(),
        m.entry.id,
        bytes.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
