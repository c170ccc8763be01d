//! `zoo eval`: a model's NLL on its data set's test images, in nats/image and bits/dim; for a
//! multi-scale model also split exactly into the small image's NLL, −log p(x[::f, ::f]), and the
//! upscaling's, −log p(x | x[::f, ::f]), each in bits per its own values; for a class-conditional
//! model the marginal NLL −log Σ_c p(c) p(x | c) (the model's likelihood), and beside it the NLL
//! given each image's true class, −log p(x | label).

use std::time::Instant;

use anyhow::{Context, Result};
use pixel_data::datasets::Dataset;
use pixel_ops::head::bits_per_dim;
use pixel_zoo::{MultiScaleModel, Tensor, Zoo};
use serde_json::json;

use crate::cli::{DeviceArg, EvalArgs, TestSetArgs};
use crate::context::{check_test_images, class_log_likelihoods, class_names, load, per_batch, progress_bar, total_nll};

pub fn run(zoo: &Zoo, device: DeviceArg, args: EvalArgs) -> Result<()> {
    let EvalArgs { model, test_set, json } = args;
    test_set.check()?;
    let TestSetArgs { data_dir, limit, batch } = test_set;
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
    check_test_images(&entry.dataset, &images, &spec)?;
    let t = Instant::now();
    let bar = progress_bar(images.n as u64, "evaluating images");
    // A class-conditional model's test labels, if its classes are the data set's.
    let labels = match (m.class_conditional(), class_names(&m)) {
        (Some(_), Some(_)) => Some(dataset.load_test_labelled(&data_dir)?.1),
        (Some(conditional), None) => {
            tracing::warn!(
                "{} has {} classes, {} has {}: no NLL given the true class",
                entry.id,
                conditional.classes(),
                entry.dataset,
                dataset.class_names().len()
            );
            None
        }
        _ => None,
    };
    // Σ −log p(x | label) of a class-conditional model, in nats.
    let mut given_label = None;
    let (total, split) = match (m.multi_scale(), m.class_conditional()) {
        (Some(multi), _) => {
            let (small, up) = split_nll(multi, &images.pixels, batch, &mut |b| bar.inc(b as u64))?;
            (small + up, Some((small / images.n as f64, up / images.n as f64)))
        }
        (None, Some(conditional)) => {
            // One pass per class gives both: the marginal and the true class's term.
            let ll = class_log_likelihoods(conditional, &images.pixels, batch, &mut |b| bar.inc(b as u64))?;
            let log_classes = (conditional.classes() as f64).ln();
            let marginal: f64 = ll.iter().map(|l| log_classes - pixel_ops::class_conditional::log_sum_exp(l)).sum();
            given_label = labels.map(|labels| ll.iter().zip(labels).map(|(l, c)| -l[usize::from(c)]).sum::<f64>());
            (marginal, None)
        }
        (None, None) => (total_nll(&m, &images.pixels, batch, &mut |b| bar.inc(b as u64))?, None),
    };
    let given_label = given_label.map(|t| t / images.n as f64);
    let d = spec.dims();
    bar.finish_and_clear();
    let nats = total / images.n as f64;
    let bpd = bits_per_dim(nats, d);
    let secs = t.elapsed().as_secs_f64();
    // The split's figures: (nats/image, values/image, bits/dim) of the small image and the upscaling.
    let parts = split.zip(m.multi_scale()).map(|((small, up), multi)| {
        let (small_dims, up_dims) = multi.split_dims();
        ((small, small_dims, bits_per_dim(small, small_dims)), (up, up_dims, bits_per_dim(up, up_dims)))
    });
    if json {
        let mut v = json!({
            "id": entry.id, "dataset": entry.dataset, "images": images.n, "test_file": test_file,
            "data_dir": data_dir,
            "nll_nats_per_image": nats, "bits_per_dim": bpd, "seconds": secs,
        });
        if let Some((small, up)) = parts {
            let part = |(n, d, b): (f64, usize, f64)| json!({"nll_nats_per_image": n, "values": d, "bits_per_dim": b});
            v["small_image"] = part(small);
            v["upscaling"] = part(up);
        }
        if let Some(c) = given_label {
            v["given_true_class"] = json!({"nll_nats_per_image": c, "bits_per_dim": bits_per_dim(c, d)});
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
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
    if let (false, Some(c)) = (json, given_label) {
        println!(
            "  given the true class, −log p(x | c): {:.4} bits/dim ({c:.3} nats/image); the figure above is the \
             marginal over the uniform classes",
            bits_per_dim(c, d)
        );
    }
    if let (false, Some(((sn, sd, sb), (un, ud, ub)))) = (json, parts) {
        let f = m.multi_scale().map_or(2, |multi| multi.factor());
        println!("  small image x[::{f}, ::{f}]: {sb:.4} bits/dim ({sn:.2} nats/image over {sd} values)");
        println!("  upscaling p(x | x[::{f}, ::{f}]): {ub:.4} bits/dim ({un:.2} nats/image over {ud} values)");
    }
    Ok(())
}

/// Σ −log p(x[::f, ::f]) and Σ −log p(x | x[::f, ::f]) in nats over images `pixels` (whole images,
/// row-major), in batches of `batch`, one pass each; `done(b)` after each batch.
fn split_nll(m: &dyn MultiScaleModel, pixels: &[u8], batch: usize, done: &mut dyn FnMut(usize)) -> Result<(f64, f64)> {
    let sum = |t: &Tensor| -> Result<f64> {
        Ok(t.to_device(&candle_core::Device::Cpu)?.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()?.iter().sum())
    };
    let parts = per_batch(m, pixels, batch, done, &|x: &Tensor| {
        let (s, u) = m.nll_split(x)?;
        Ok((sum(&s)?, sum(&u)?))
    })?;
    Ok(parts.into_iter().fold((0.0, 0.0), |(a, b), (s, u)| (a + s, b + u)))
}
