//! The subcommands: each parses its inputs, calls the library, writes its output atomically.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use pixel_ops::data::Dataset;
use pixel_ops::head::bits_per_dim;
use pixel_ops::image_io::{grid, read_image, write_atomic, write_png};
use pixel_ops::sampler::{complete, sample, Method, SampleOptions};
use pixel_zoo::{LoadedModel, Zoo};
use serde_json::json;

use crate::cli::{
    BenchArgs, BenchCompressArgs, Cli, Command, CompleteArgs, CompressArgs, DecompressArgs, DeviceArg, EvalArgs,
    FetchArgs, ImportArgs, ImportFormat, ListArgs, LogitsArgs, ModelArgs, SampleArgs, ScoreArgs,
};

pub fn run(cli: Cli) -> Result<()> {
    let mut zoo = Zoo::new()?;
    zoo.resolver.progress = true;
    match cli.command {
        Command::List(ListArgs { json }) => list(&zoo, json),
        Command::Fetch(FetchArgs { id, url }) => fetch(&zoo, &id, url.as_deref()),
        Command::Bench(BenchArgs { ids, batch, reps, json }) => {
            crate::bench::run(&zoo, &ids, cli.device, batch, reps, json)
        }
        Command::Import(ImportArgs { format, file, id, output }) => {
            import(&zoo, format, &file, id.as_deref(), output.as_deref())
        }
        Command::Compress(CompressArgs { model, images, output }) => {
            crate::compress::compress_files(&zoo, &model, cli.device, &images, &output)
        }
        Command::Decompress(DecompressArgs { file, output, weights }) => {
            crate::compress::decompress_file(&zoo, &file, weights, cli.device, &output)
        }
        Command::BenchCompress(BenchCompressArgs { ids, data_dir, limit, json }) => {
            crate::compress::bench(&zoo, &ids, cli.device, data_dir, limit, json)
        }
        Command::Sample(SampleArgs { model, count, seed, temperature, naive, output }) => {
            let m = load(&zoo, &model, cli.device)?;
            let opts = SampleOptions { count, seed, temperature, method: method(naive), ..Default::default() };
            check_output(&output)?;
            let t = Instant::now();
            let bar = bar(m.spec().height as u64, "sampling rows");
            let images = sample(m.as_ref(), &opts, &mut |done, _| bar.set_position(done as u64))?;
            bar.finish_and_clear();
            let spec = m.spec();
            let pixels = images.flatten_all()?.to_vec1::<u8>()?;
            let cols = (count as f64).sqrt().ceil() as usize;
            let what = match multiscale_factor(&m) {
                // Each sample beside its small image (the first stage's output), enlarged to the same size.
                Some(f) => {
                    write_png(
                        &grid(&with_small_images(&pixels, count, &spec, f), 2 * count, &spec, 2 * cols, 2),
                        &output,
                    )?;
                    "samples (each beside its small image, enlarged)"
                }
                None => {
                    write_png(&grid(&pixels, count, &spec, cols, 2), &output)?;
                    "samples"
                }
            };
            eprintln!(
                "wrote {count} {what} of {} to {} in {:.1} s",
                m.entry.id,
                output.display(),
                t.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Eval(EvalArgs { model, data_dir, limit, batch, json }) => {
            eval(&zoo, &model, cli.device, data_dir, limit, batch, json)
        }
        Command::Score(ScoreArgs { model, images, json }) => score(&zoo, &model, cli.device, &images, json),
        Command::Logits(LogitsArgs { model, images, output }) => {
            let m = load(&zoo, &model, cli.device)?;
            check_output(&output)?;
            let x = read_images(&m, &images)?;
            let logits = m.logits(&x)?.to_device(&Device::Cpu)?;
            let x = x.to_device(&Device::Cpu)?;
            let bytes = safetensors::serialize([("logits", &logits), ("images", &x)], None)
                .context("serialising the logits")?;
            write_atomic(&output, &bytes)?;
            eprintln!("wrote logits {:?} and images {:?} to {}", logits.dims(), x.dims(), output.display());
            Ok(())
        }
        Command::Complete(CompleteArgs { model, image, keep_rows, count, seed, temperature, naive, output }) => {
            let m = load(&zoo, &model, cli.device)?;
            check_output(&output)?;
            let spec = m.spec();
            let given = read_images(&m, std::slice::from_ref(&image))?;
            let opts = SampleOptions { count, seed, temperature, method: method(naive), ..Default::default() };
            let bar = bar(spec.height.saturating_sub(keep_rows) as u64, "completing rows");
            let done = complete(m.as_ref(), &given, keep_rows, &opts, &mut |d, _| bar.set_position(d as u64))?;
            bar.finish_and_clear();
            // One row: the original, the occluded input (dropped rows grey), the completions.
            let original = given.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<u8>()?;
            let mut occluded = original.clone();
            let (h, w) = (spec.height, spec.width);
            let grey = if spec.head == pixel_zoo::Head::Bernoulli { 0 } else { 128 };
            for ch in 0..spec.channels {
                for y in keep_rows..h {
                    occluded[(ch * h + y) * w..(ch * h + y + 1) * w].fill(grey);
                }
            }
            let mut all = original;
            all.extend(occluded);
            all.extend(done.flatten_all()?.to_vec1::<u8>()?);
            write_png(&grid(&all, count + 2, &spec, count + 2, 2), &output)?;
            eprintln!("wrote the original, the occluded image and {count} completions to {}", output.display());
            Ok(())
        }
    }
}

fn device(arg: DeviceArg) -> Result<Device> {
    Ok(match arg {
        DeviceArg::Cpu => Device::Cpu,
        DeviceArg::Cuda => Device::new_cuda(0)
            .context("--device cuda: build with `--features cuda` on a machine with an NVIDIA GPU")?,
        DeviceArg::Metal => Device::new_metal(0).context("--device metal: build with `--features metal` on a Mac")?,
        DeviceArg::Auto => {
            if candle_core::utils::cuda_is_available() {
                Device::new_cuda(0)?
            } else if candle_core::utils::metal_is_available() {
                Device::new_metal(0)?
            } else {
                Device::Cpu
            }
        }
    })
}

pub(crate) fn load(zoo: &Zoo, args: &ModelArgs, dev: DeviceArg) -> Result<LoadedModel> {
    let device = device(dev)?;
    let m = zoo.load_with(&args.id, &device, args.weights.as_deref())?;
    tracing::info!(id = %args.id, weights = %m.source.path().display(), source = m.source.kind(), "model loaded");
    Ok(m)
}

fn method(naive: bool) -> Method {
    if naive {
        Method::Naive
    } else {
        Method::Cached
    }
}

/// Fails early, before any work, if `path` cannot be written.
pub(crate) fn check_output(path: &Path) -> Result<()> {
    Ok(pixel_ops::image_io::check_writable(path)?)
}

/// The factor of a multi-scale model (its small image is every f-th pixel of every f-th row).
fn multiscale_factor(m: &LoadedModel) -> Option<usize> {
    if m.entry.architecture != "multiscale" {
        return None;
    }
    m.entry.config.get("factor").and_then(|f| f.as_integer()).map(|f| f as usize)
}

/// Images `(n, c, h, w)` → `2n` images: each image's small image (pixels at multiples of `f`)
/// enlarged f× by repetition, then the image.
fn with_small_images(pixels: &[u8], n: usize, spec: &pixel_zoo::ImageSpec, f: usize) -> Vec<u8> {
    let (c, h, w) = (spec.channels, spec.height, spec.width);
    let mut out = Vec::with_capacity(2 * pixels.len());
    for img in pixels.chunks(c * h * w).take(n) {
        for ch in 0..c {
            for y in 0..h {
                out.extend((0..w).map(|x| img[(ch * h + y / f * f) * w + x / f * f]));
            }
        }
        out.extend_from_slice(img);
    }
    out
}

/// Σ −log p(x) in nats over images `pixels` (whole images of the model's size, row-major), in
/// batches of `batch`; `done(b)` after each batch.
pub(crate) fn total_nll(m: &LoadedModel, pixels: &[u8], batch: usize, done: &mut dyn FnMut(usize)) -> Result<f64> {
    let spec = m.spec();
    let mut total = 0f64;
    for chunk in pixels.chunks(batch * spec.dims()) {
        let b = chunk.len() / spec.dims();
        let x = Tensor::from_slice(chunk, (b, spec.channels, spec.height, spec.width), m.device())?;
        total += m.nll(&x)?.to_vec1::<f32>()?.iter().map(|&v| v as f64).sum::<f64>();
        done(b);
    }
    Ok(total)
}

pub(crate) fn bar(len: u64, msg: &'static str) -> ProgressBar {
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} [{elapsed_precise}<{eta_precise}]")
            .expect("valid template"),
    );
    b.set_message(msg);
    b
}

fn read_images(m: &LoadedModel, paths: &[PathBuf]) -> Result<Tensor> {
    let spec = m.spec();
    let mut pixels = Vec::with_capacity(paths.len() * spec.dims());
    for p in paths {
        pixels.extend(read_image(p, &spec)?);
    }
    Ok(Tensor::from_vec(pixels, (paths.len(), spec.channels, spec.height, spec.width), m.device())?)
}

fn list(zoo: &Zoo, json: bool) -> Result<()> {
    let mut rows = Vec::new();
    for e in &zoo.manifest.models {
        let source = zoo.resolver.locate(e);
        let params = source.as_ref().and_then(|s| parameter_count(s.path()).ok());
        let where_ = match &source {
            Some(s) => format!("{} ({})", s.kind(), s.path().display()),
            None if e.upstream.is_some() => {
                format!("not imported: `zoo fetch {}`, or `zoo import` of {}", e.id, zoo.resolver.url(e))
            }
            None => format!("hub ({})", zoo.resolver.url(e)),
        };
        rows.push(json!({
            "id": e.id, "architecture": e.architecture, "dataset": e.dataset, "parameters": params,
            "test_nll_nats": e.metrics.as_ref().map(|m| m.test_nll_nats),
            "test_bits_per_dim": e.metrics.as_ref().map(|m| m.test_bits_per_dim),
            "test_images": e.metrics.as_ref().map(|m| m.test_images),
            "paper": e.paper, "weights": where_,
            "third_party": e.upstream.as_ref().map(|u| format!("{} (licence: {})", u.repository, u.licence)),
        }));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("{:<30} {:<16} {:<18} {:>10} {:>22}  weights", "id", "arch", "dataset", "params", "test NLL");
    for (e, r) in zoo.manifest.models.iter().zip(&rows) {
        let nll = match &e.metrics {
            Some(m) if e.dataset == "cifar10" => format!("{:.3} bits/dim", m.test_bits_per_dim),
            Some(m) => format!("{:.2} nats/image", m.test_nll_nats),
            None => "not measured".into(),
        };
        let params = r["parameters"].as_u64().map_or("?".to_string(), |p| p.to_string());
        println!(
            "{:<30} {:<16} {:<18} {:>10} {:>22}  {}",
            e.id,
            e.architecture,
            e.dataset,
            params,
            nll,
            r["weights"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

fn parameter_count(path: &Path) -> Result<u64> {
    let bytes = std::fs::read(path)?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    Ok(st.tensors().iter().map(|(_, v)| v.shape().iter().product::<usize>() as u64).sum())
}

fn fetch(zoo: &Zoo, id: &str, url: Option<&str>) -> Result<()> {
    let entry = zoo.entry(id)?;
    let source = match url {
        Some(_) if entry.upstream.is_none() => {
            bail!("--url is for third-party models (a mirror of the original checkpoint); '{id}' is on the hub")
        }
        Some(url) => zoo.resolver.import_from_url(entry, url)?,
        None => zoo.resolver.fetch(entry, None)?.0,
    };
    eprintln!("{id}: {} ({}), sha256 verified", source.path().display(), source.kind());
    Ok(())
}

fn import(zoo: &Zoo, format: ImportFormat, file: &Path, id: Option<&str>, output: Option<&Path>) -> Result<()> {
    let of_format = |e: &&pixel_zoo::ModelEntry| e.upstream.as_ref().is_some_and(|u| u.format == format.name());
    let entry = match id {
        Some(id) => {
            let e = zoo.entry(id)?;
            if !of_format(&e) {
                bail!("'{id}' is not a third-party model in the {} format", format.name());
            }
            e
        }
        None => {
            let found: Vec<_> = zoo.manifest.models.iter().filter(of_format).collect();
            match found.as_slice() {
                [one] => *one,
                [] => bail!("no model in the manifest is imported from {}", format.name()),
                many => bail!(
                    "several models are imported from {}: pick one with --id ({})",
                    format.name(),
                    many.iter().map(|e| e.id.as_str()).collect::<Vec<_>>().join(", ")
                ),
            }
        }
    };
    if let Some(out) = output {
        check_output(out)?;
    }
    let dest = pixel_zoo::import::install(entry, file, &zoo.resolver.zoo_cache, output)?;
    eprintln!("{}: converted {} → {} (sha256 verified)", entry.id, file.display(), dest.display());
    Ok(())
}

fn eval(
    zoo: &Zoo,
    args: &ModelArgs,
    dev: DeviceArg,
    data_dir: Option<PathBuf>,
    limit: Option<usize>,
    batch: usize,
    json: bool,
) -> Result<()> {
    let data_dir = data_dir.context(
        "no data directory: pass --data-dir DIR or set PIXEL_ZOO_DATA to a directory holding mnist/ and cifar10/",
    )?;
    if batch == 0 {
        bail!("--batch must be at least 1");
    }
    if limit == Some(0) {
        bail!("--limit must be at least 1");
    }
    let entry = zoo.entry(&args.id)?;
    let dataset = Dataset::from_name(&entry.dataset).context("manifest data set")?;
    let mut images = dataset.load_test(&data_dir)?;
    if let Some(l) = limit {
        images.truncate(l);
    }
    let m = load(zoo, args, dev)?;
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
    let bar = bar(images.n as u64, "evaluating images");
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
                "id": entry.id, "dataset": entry.dataset, "images": images.n,
                "nll_nats_per_image": nats, "bits_per_dim": bpd, "seconds": secs,
            }))?
        );
    } else if entry.dataset == "cifar10" {
        println!(
            "{}: {bpd:.4} bits/dim ({nats:.1} nats/image) on {} {} test images, {secs:.1} s",
            entry.id, images.n, entry.dataset
        );
    } else {
        println!(
            "{}: {nats:.3} nats/image ({bpd:.5} bits/dim) on {} {} test images, {secs:.1} s",
            entry.id, images.n, entry.dataset
        );
    }
    Ok(())
}

fn score(zoo: &Zoo, args: &ModelArgs, dev: DeviceArg, paths: &[PathBuf], json: bool) -> Result<()> {
    let m = load(zoo, args, dev)?;
    let x = read_images(&m, paths)?;
    let nats = m.nll(&x)?.to_vec1::<f32>()?;
    let d = m.spec().dims();
    let rows: Vec<_> = paths
        .iter()
        .zip(&nats)
        .map(|(p, &n)| {
            json!({
                "image": p.display().to_string(), "nll_nats": n as f64, "bits_per_dim": bits_per_dim(n as f64, d),
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for (p, &n) in paths.iter().zip(&nats) {
            println!("{}\t{:.3} nats\t{:.4} bits/dim", p.display(), n, bits_per_dim(n as f64, d));
        }
    }
    Ok(())
}
