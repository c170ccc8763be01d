//! `zoo eval`: a model's NLL on its data set's test images, in nats/image and bits/dim.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use pixel_data::datasets::Dataset;
use pixel_ops::head::bits_per_dim;
use pixel_zoo::Zoo;
use serde_json::json;

use crate::cli::{DeviceArg, EvalArgs};
use crate::context::{load, progress_bar, total_nll};

pub fn run(zoo: &Zoo, device: DeviceArg, args: EvalArgs) -> Result<()> {
    let EvalArgs { model, data_dir, limit, batch, json } = args;
    if batch == 0 {
        bail!("--batch must be at least 1");
    }
    if limit == Some(0) {
        bail!("--limit must be at least 1");
    }
    let entry = zoo.entry(&model.id)?;
    let dataset = Dataset::from_name(&entry.dataset).context("manifest data set")?;
    let data_dir = dataset.locate(data_dir.as_deref())?;
    let test_file = dataset.test_file(&data_dir);
    let test_file = test_file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    tracing::info!(data_dir = %data_dir.display(), %test_file, "test set");
    let mut images = dataset.load_test(&data_dir)?;
    if let Some(l) = limit {
        images.truncate(l);
    }
    let m = load(zoo, &model, device)?;
    let spec = m.spec();
    if (images.channels, images.height, images.width) != (spec.channels, spec.height, spec.width) {
        bail!(
            "{} test images are {}x{}x{} but the model takes {}x{}x{}",
            entry.dataset,
            images.channels,
            images.height,
            images.width,
            spec.channels,
            spec.height,
            spec.width
        );
    }
    let t = Instant::now();
    let bar = progress_bar(images.n as u64, "evaluating images");
    let total = total_nll(&m, &images.pixels, batch, &mut |b| bar.inc(b as u64))?;
    let d = spec.dims();
    bar.finish_and_clear();
    let nats = total / images.n as f64;
    let bpd = bits_per_dim(nats, d);
    let secs = t.elapsed().as_secs_f64();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "id": entry.id, "dataset": entry.dataset, "images": images.n, "test_file": test_file,
                "data_dir": data_dir,
                "nll_nats_per_image": nats, "bits_per_dim": bpd, "seconds": secs,
            }))?
        );
    } else if entry.dataset == "cifar10" {
        println!(
            "{}: {bpd:.4} bits/dim ({nats:.1} nats/image) on {} {} test images ({test_file}), {secs:.1} s",
            entry.id, images.n, entry.dataset
        );
    } else {
        println!(
            "{}: {nats:.3} nats/image ({bpd:.5} bits/dim) on {} {} test images ({test_file}), {secs:.1} s",
            entry.id, images.n, entry.dataset
        );
    }
    Ok(())
}
