//! `zoo score`: the NLL of each given image, in nats and bits/dim, as lines or JSON.

use anyhow::Result;
use pixel_ops::head::bits_per_dim;
use pixel_zoo::Zoo;
use serde_json::json;

use crate::cli::{DeviceArg, ScoreArgs};
use crate::context::{load, read_images};

pub fn run(zoo: &Zoo, device: DeviceArg, args: ScoreArgs) -> Result<()> {
    let ScoreArgs { model, images: paths, json } = args;
    let m = load(zoo, &model, device)?;
    let x = read_images(&m, &paths)?;
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
