//! `zoo bench`: where sampling time goes, measured on this machine in one run.
//!
//! For each model: the median of `reps` forward passes of a batch; cached sampling of the batch on
//! one thread and on every core (timed whole); naive sampling (the network per value) estimated:
//! a full naive run takes minutes to hours, so one step is timed at the middle column of rows spread
//! over the image, the cost of every row interpolated between them, and the total is that times the
//! values per row. The output says so.

use std::time::Instant;

use anyhow::{bail, Result};
use candle_core::Tensor;
use pixel_ops::sampler::{sample, Method, SampleOptions};
use pixel_zoo::Zoo;
use serde_json::json;

use crate::commands::load;
use crate::{DeviceArg, ModelArgs};

fn seconds<T>(f: impl FnOnce() -> Result<T>) -> Result<(f64, T)> {
    let t = Instant::now();
    let out = f()?;
    Ok((t.elapsed().as_secs_f64(), out))
}

pub fn run(zoo: &Zoo, ids: &[String], dev: DeviceArg, batch: usize, reps: usize, json_out: bool) -> Result<()> {
    if batch == 0 || reps == 0 {
        bail!("--batch and --reps must be at least 1");
    }
    let ids: Vec<String> = if ids.is_empty() {
        zoo.manifest.models.iter().filter(|e| zoo.resolver.locate(e).is_some()).map(|e| e.id.clone()).collect()
    } else {
        ids.to_vec()
    };
    let mut rows = Vec::new();
    if !json_out {
        println!(
            "{:<30} {:>11} {:>14} {:>13} {:>13} {:>15} {:>14}",
            "model", "forward", "naive (est.)", "cached 1 thr", "cached all", "cached/forward", "naive/cached"
        );
    }
    for id in &ids {
        let m = load(zoo, &ModelArgs { id: id.clone(), weights: None }, dev)?;
        let s = m.spec();
        let px: Vec<u8> = (0..(batch * s.dims()) as u64)
            .map(|k| (pixel_ops::data::splitmix64(7, k) % s.head.values() as u64) as u8)
            .collect();
        let x = Tensor::from_vec(px, (batch, s.channels, s.height, s.width), m.device())?;
        m.logits(&x)?; // warm-up
        let mut forward = (0..reps).map(|_| Ok(seconds(|| Ok(m.logits(&x)?))?.0)).collect::<Result<Vec<f64>>>()?;
        forward.sort_by(f64::total_cmp);
        let forward = forward[reps / 2];
        // Naive: one step at rows spread over the image, interpolated over every row.
        let probes: Vec<usize> = (0..5).map(|i| i * (s.height - 1) / 4).collect();
        let mut probe_costs = Vec::new();
        for &row in &probes {
            let (t, _) = seconds(|| Ok(m.step_logits(&x, row, s.width / 2, s.channels - 1)?))?;
            probe_costs.push(t);
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
        let opts =
            |threads| SampleOptions { count: batch, seed: 0, method: Method::Cached, threads, ..Default::default() };
        let (cached_1, _) = seconds(|| Ok(sample(m.as_ref(), &opts(1), &mut |_, _| {})?))?;
        let (cached, _) = seconds(|| Ok(sample(m.as_ref(), &opts(0), &mut |_, _| {})?))?;
        let row = json!({
            "id": id, "batch": batch, "forward_s": forward, "naive_estimated_s": naive,
            "cached_one_thread_s": cached_1, "cached_s": cached,
            "cached_over_forward": cached / forward, "naive_over_cached": naive / cached,
            "threads": std::thread::available_parallelism().map_or(1, |t| t.get()),
        });
        if !json_out {
            println!(
                "{:<30} {:>9.1}ms {:>13.1}s {:>12.2}s {:>12.2}s {:>14.1}x {:>13.0}x",
                id,
                forward * 1e3,
                naive,
                cached_1,
                cached,
                cached / forward,
                naive / cached
            );
        }
        rows.push(row);
    }
    if json_out {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "batch {batch}; forward: median of {reps}; cached: one run each; naive: estimated from one step at \
             5 rows (middle column), interpolated over the rows"
        );
    }
    Ok(())
}
