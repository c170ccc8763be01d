//! `zoo logits`: the raw logits of images, with the images, to a safetensors file.

use anyhow::{Context, Result};
use candle_core::Device;
use pixel_data::files::write_atomic;
use pixel_zoo::Zoo;

use crate::cli::{DeviceArg, ImagesToFileArgs};
use crate::context::{check_output, load, read_images};

pub fn run(zoo: &Zoo, device: DeviceArg, args: ImagesToFileArgs) -> Result<()> {
    let ImagesToFileArgs { model, images, output } = args;
    let m = load(zoo, &model, device)?;
    check_output(&output)?;
    let x = read_images(&m, &images)?;
    let logits = m.logits(&x)?.to_device(&Device::Cpu)?;
    let x = x.to_device(&Device::Cpu)?;
    let bytes =
        safetensors::serialize([("logits", &logits), ("images", &x)], None).context("serialising the logits")?;
    write_atomic(&output, &bytes)?;
    eprintln!("wrote logits {:?} and images {:?} to {}", logits.dims(), x.dims(), output.display());
    Ok(())
}
