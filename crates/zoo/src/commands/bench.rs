//! `zoo bench`: where sampling time goes, measured on this machine in one run.
//!
//! For each model: the median of `reps` forward passes of a batch; cached sampling of the batch on
//! one thread and on every core (timed whole); two naive baselines, estimated because a whole run
//! takes minutes to hours (the output says so): "full passes", the whole network once per value
//! (H·W·C forward passes of the batch), and "naive", the zoo's `--naive` path (the network per value
//! on what the value can see: the receptive-field window for the PixelCNN, rows 0..=r for the
//! recurrent models), from one step timed at the middle column of 5 rows spread over the image, the
//! cost of every row interpolated between them, times the values per row.

use std::time::Instant;

use anyhow::{bail, Result};
use candle_core::Tensor;
use pixel_ops::sampler::{sample, Method, SampleOptions};
use pixel_ops::stepper::{in_parallel, threads_on};
use pixel_zoo::Zoo;
use serde_json::json;

use crate::cli::{BenchArgs, DeviceArg, ModelArgs};
use crate::context::{given_or_local_models, load};

/// The seconds `f` takes, and what it returns.
fn seconds<T>(f: impl FnOnce() -> Result<T>) -> Result<(f64, T)> {
    let t = Instant::now();
    let out = f()?;
    Ok((t.elapsed().as_secs_f64(), out))
}

pub fn run(zoo: &Zoo, device: DeviceArg, args: BenchArgs) -> Result<()> {
    let BenchArgs { ids, batch, reps, forward_only, json: json_out } = args;
    if batch == 0 || reps == 0 {
        bail!("--batch and --reps must be at least 1");
    }
    let ids = given_or_local_models(zoo, ids);
    let mut rows = Vec::new();
    if !json_out && !forward_only {
        println!(
            "{:<30} {:>10} {:>12} {:>13} {:>12} {:>11} {:>15} {:>12} {:>13}",
            "model",
            "forward",
            "full passes",
            "naive (est.)",
            "cached 1 thr",
            "cached all",
            "cached/forward",
            "full/cached",
            "naive/cached1"
        );
    }
    for id in &ids {
        let m = load(zoo, &ModelArgs { id: id.clone(), weights: None }, device)?;
        let s = m.spec();
        let px: Vec<u8> = (0..(batch * s.dims()) as u64)
            .map(|k| (pixel_data::datasets::splitmix64(7, k) % s.head.values() as u64) as u8)
            .collect();
        let x = Tensor::from_vec(px, (batch, s.channels, s.height, s.width), m.device())?;
        // The forward pass uses the cores as sampling does: the batch split over them, each part
        // on one thread (zoo runs candle's products single-threaded here, see main).
        let part = batch.div_ceil(threads_on(m.device(), 0, batch));
        let forward_split = || -> Result<()> {
            let parts: Vec<usize> = (0..batch).step_by(part).collect();
            let forward = |start: usize| -> Result<()> {
                m.logits(&x.narrow(0, start, part.min(batch - start))?)?;
                Ok(())
            };
            in_parallel(parts, forward, |_, start| forward(start), || Err(anyhow::anyhow!("a thread panicked")))
                .into_iter()
                .collect::<Result<()>>()?;
            // A GPU runs the launches asynchronously: the pass is over when the device is idle.
            Ok(m.device().synchronize()?)
        };
        forward_split()?; // warm-up
        let mut forward = (0..reps).map(|_| Ok(seconds(forward_split)?.0)).collect::<Result<Vec<f64>>>()?;
        forward.sort_by(f64::total_cmp);
        let forward = forward[reps / 2];
        if forward_only {
            let threads = threads_on(m.device(), 0, batch);
            if !json_out {
                println!(
                    "{:<30} {:>8.1}ms   ({} threads, batch {batch}, median of {reps})",
                    id,
                    forward * 1e3,
                    threads
                );
            }
            rows.push(json!({ "id": id, "batch": batch, "forward_s": forward, "threads": threads }));
            continue;
        }
        // Naive: one step (median of 3) at rows spread over the image, interpolated over every row.
        let probes: Vec<usize> = (0..5).map(|i| i * (s.height - 1) / 4).collect();
        let mut probe_costs = Vec::new();
        for &row in &probes {
            let mut t = (0..3)
                .map(|_| {
                    let step = || {
                        m.step_logits(&x, row, s.width / 2, s.channels - 1)?;
                        Ok(m.device().synchronize()?)
                    };
                    Ok(seconds(step)?.0)
                })
                .collect::<Result<Vec<f64>>>()?;
            t.sort_by(f64::total_cmp);
            probe_costs.push(t[1]);
        }
        let per_row = |row: usize| {
            let i = probes.iter().rposition(|&p| p <= row).unwrap_or(0);
            if i + 1 == probes.len() {
                return probe_costs[i];
            }
            let f = (row - probes[i]) as f64 / (probes[i + 1] - probes[i]) as f64;
            probe_costs[i] * (1.0 - f) + probe_costs[i + 1] * f
        };
        let naive: f64 = (0..s.height).map(per_row).sum::<f64>() * (s.width * s.channels) as f64;
        let full_passes = forward * s.dims() as f64;
        let opts =
            |threads| SampleOptions { count: batch, seed: 0, method: Method::Cached, threads, ..Default::default() };
        let (cached_1, _) = seconds(|| Ok(sample(m.as_ref(), &opts(1), &mut |_, _| {})?))?;
        let (cached, _) = seconds(|| Ok(sample(m.as_ref(), &opts(0), &mut |_, _| {})?))?;
        let row = json!({
            "id": id, "batch": batch, "forward_s": forward, "full_passes_estimated_s": full_passes,
            "naive_estimated_s": naive, "full_passes_over_cached": full_passes / cached,
            "naive_over_cached_one_thread": naive / cached_1,
            "cached_one_thread_s": cached_1, "cached_s": cached,
            "cached_over_forward": cached / forward,
            "threads": threads_on(m.device(), 0, batch),
        });
        if !json_out {
            println!(
                "{:<30} {:>8.1}ms {:>11.0}s {:>12.1}s {:>11.2}s {:>10.2}s {:>14.2}x {:>11.0}x {:>12.0}x",
                id,
                forward * 1e3,
                full_passes,
                naive,
                cached_1,
                cached,
                cached / forward,
                full_passes / cached,
                naive / cached_1
            );
        }
        rows.push(row);
    }
    if json_out {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if !forward_only {
        println!(
            "batch {batch}; forward: median of {reps}, the batch split over the cores; cached: one run each \
             (1 thread, then the batch split over every core); full passes: H*W*C x forward (estimated); \
             naive: the --naive path on one thread, estimated from one step at 5 rows (middle column), interpolated over the rows, \
             compared with cached on one thread"
        );
    }
    Ok(())
}
