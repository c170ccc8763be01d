//! `zoo list`: every model in the manifest with its architecture, data set, parameters, test NLL
//! and where its weights are, as a table or JSON (which also gives a class-conditional model's
//! number of classes, 0 for the others).

use std::path::Path;

use anyhow::Result;
use pixel_zoo::Zoo;
use serde_json::json;

use crate::cli::ListArgs;

pub fn run(zoo: &Zoo, args: ListArgs) -> Result<()> {
    let ListArgs { json } = args;
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
            "id": e.id, "architecture": e.architecture(), "dataset": e.dataset, "parameters": params,
            "classes": e.config.classes(),
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
            e.architecture(),
            e.dataset,
            params,
            nll,
            r["weights"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

/// Parameters in a safetensors file: the sum of its tensors' element counts.
fn parameter_count(path: &Path) -> Result<u64> {
    let bytes = std::fs::read(path)?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    Ok(st.tensors().iter().map(|(_, v)| v.shape().iter().product::<usize>() as u64).sum())
}
