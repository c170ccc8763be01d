//! `zoo classify`: a class-conditional model as a generative classifier. Each image's class is
//! argmax_c p(x | c), which under the uniform prior is also the most probable class given the
//! image, p(c | x) ∝ p(x | c); given images, or the data set's test images with the accuracy.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use pixel_data::datasets::Dataset;
use pixel_ops::class_conditional::class_log_posterior;
use pixel_zoo::Zoo;
use serde_json::json;

use crate::cli::{ClassifyArgs, DeviceArg, TestSetArgs};
use crate::context::{
    check_test_images, class_conditional, class_label, class_log_likelihoods, class_names, load, progress_bar,
    read_images,
};

/// The extensions of the files `--images DIR` takes from a directory.
const IMAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "bmp", "gif", "webp"];

pub fn run(zoo: &Zoo, device: DeviceArg, args: ClassifyArgs) -> Result<()> {
    let ClassifyArgs { model, images, test, test_set, json } = args;
    test_set.check()?;
    let TestSetArgs { data_dir, limit, batch } = test_set;
    if limit.is_some() && !test {
        bail!("--limit is for --test (the first N test images); with --images, name the images to classify");
    }
    let m = load(zoo, &model, device)?;
    let conditional = class_conditional(&m, "classify", "`zoo list` shows each model's architecture")?;
    let spec = m.spec();
    // The images as whole images, row-major, what each is called, and the test set's labels.
    let (pixels, names, labels) = if test {
        let dataset = Dataset::from_name(&m.entry.dataset).context("manifest data set")?;
        if class_names(&m).is_none() {
            bail!(
                "{} has {} classes but {} has {}: --test compares with the data set's labels, which needs a model of \
                 its classes; classify images with --images instead",
                m.entry.id,
                conditional.classes(),
                dataset.name(),
                dataset.class_names().len()
            );
        }
        let data_dir = dataset.locate(data_dir.as_deref())?;
        let (mut images, mut labels) = dataset.load_test_labelled(&data_dir)?;
        if let Some(l) = limit {
            images.truncate(l);
            labels.truncate(l);
        }
        check_test_images(dataset.name(), &images, &spec)?;
        let names: Vec<String> = (0..images.n).map(|i| format!("test image {i}")).collect();
        (images.pixels, names, Some(labels))
    } else {
        let paths = image_files(&images)?;
        let x = read_images(&m, &paths)?;
        let names = paths.iter().map(|p| p.display().to_string()).collect();
        (x.to_device(&candle_core::Device::Cpu)?.flatten_all()?.to_vec1::<u8>()?, names, None)
    };
    let t = Instant::now();
    let n = pixels.len() / spec.dims();
    let bar = progress_bar(n as u64, "classifying images");
    let ll = class_log_likelihoods(conditional, &pixels, batch, &mut |b| bar.inc(b as u64))?;
    bar.finish_and_clear();
    let secs = t.elapsed().as_secs_f64();
    let predicted: Vec<usize> =
        ll.iter().map(|l| l.iter().enumerate().fold(0, |best, (c, &v)| if v > l[best] { c } else { best })).collect();
    let per_image: Vec<_> = names
        .iter()
        .zip(&ll)
        .zip(&predicted)
        .enumerate()
        .map(|(i, ((name, l), &c))| {
            let posterior: Vec<f64> = class_log_posterior(l).iter().map(|p| p.exp()).collect();
            let mut v = json!({
                "image": name, "class": c, "class_name": class_names(&m).map(|names| names[c]),
                "log_likelihood_nats": l, "posterior": posterior,
            });
            if let Some(labels) = &labels {
                v["label"] = json!(labels[i]);
            }
            v
        })
        .collect();
    match &labels {
        Some(labels) => {
            let correct = predicted.iter().zip(labels).filter(|(&p, &l)| p == usize::from(l)).count();
            let accuracy = correct as f64 / n as f64;
            if json {
                let v = json!({
                    "id": m.entry.id, "dataset": m.entry.dataset, "images": n, "correct": correct,
                    "accuracy": accuracy, "seconds": secs, "per_image": per_image,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "{}: accuracy {accuracy:.4} ({correct} of {n} {} test images), classes by argmax_c p(x | c), {secs:.1} s",
                    m.entry.id, m.entry.dataset
                );
            }
        }
        None if json => println!("{}", serde_json::to_string_pretty(&per_image)?),
        None => {
            for ((name, l), &c) in names.iter().zip(&ll).zip(&predicted) {
                let p = class_log_posterior(l)[c].exp();
                println!("{name}\t{}\tp(c | x) = {p:.4}\tlog p(x | c) = {:.3} nats", class_label(&m, c), l[c]);
            }
        }
    }
    Ok(())
}

/// The image files `--images` names: each file as given, each directory's image files
/// ([`IMAGE_EXTENSIONS`]) in name order; an error for a directory without any.
fn image_files(given: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in given {
        if !path.is_dir() {
            out.push(path.clone());
            continue;
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot read the directory {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            })
            .collect();
        if files.is_empty() {
            bail!(
                "{} holds no images ({} files); name image files or a directory of them",
                path.display(),
                IMAGE_EXTENSIONS.join(", ")
            );
        }
        files.sort();
        out.extend(files);
    }
    Ok(out)
}
