//! `weights-manifest.toml`: every zoo model, its weights file and checksum, where it lives on the
//! Hugging Face hub, its configuration and its measured figures.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::error::ZooError;

/// The manifest shipped with the crate.
pub const EMBEDDED_MANIFEST: &str = include_str!("../weights-manifest.toml");

/// The whole manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(rename = "model", default)]
    pub models: Vec<ModelEntry>,
}

/// One model of the zoo.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub id: String,
    /// `pixelcnn` (later: `row-lstm`, `diagonal-bilstm`, `multiscale`).
    pub architecture: String,
    /// `mnist-binarized`, `mnist-thresholded` or `cifar10`.
    pub dataset: String,
    /// File name under `weights/` and in the hub repository.
    pub weights: String,
    /// Hex sha256 of the weights file.
    pub sha256: String,
    /// Hugging Face repository id and revision the weights are published under (none for a
    /// third-party checkpoint converted on the user's machine, see `upstream`).
    #[serde(default)]
    pub hf_repo: Option<String>,
    #[serde(default)]
    pub hf_revision: Option<String>,
    /// The third-party checkpoint the weights are converted from by `zoo import` / `zoo fetch`
    /// (neither it nor the converted file is part of the project).
    #[serde(default)]
    pub upstream: Option<Upstream>,
    /// The architecture's configuration; must equal the config in the weights' metadata.
    pub config: toml::Table,
    /// The paper's figure for the same architecture and data, for comparison.
    #[serde(default)]
    pub paper: Option<String>,
    /// Figures measured by `zoo eval` (Candle).
    #[serde(default)]
    pub metrics: Option<Metrics>,
    /// How the weights were trained.
    #[serde(default)]
    pub training: Option<toml::Table>,
}

/// A third-party checkpoint: where it is published and how to read it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// Download URL of the original file.
    pub url: String,
    /// Hex sha256 of the original file.
    pub sha256: String,
    /// Its format, which names the converter: `lasagne-npz`.
    pub format: String,
    /// Public repository, commit and path of the file.
    pub repository: String,
    pub commit: String,
    pub path: String,
    pub licence: String,
}

/// Test figures measured by the zoo's own eval.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    pub test_nll_nats: f64,
    pub test_bits_per_dim: f64,
    pub test_images: usize,
    pub measured_with: String,
}

impl Manifest {
    /// Parses and validates a manifest (`origin` names it in errors).
    pub fn parse(text: &str, origin: &str) -> Result<Self, ZooError> {
        let err = |msg: String| ZooError::Manifest { path: origin.to_string(), msg };
        let m: Manifest = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let mut seen = HashSet::new();
        for e in &m.models {
            if !seen.insert(e.id.as_str()) {
                return Err(err(format!("model id '{}' appears twice", e.id)));
            }
            if !crate::registry::ARCHITECTURES.contains(&e.architecture.as_str()) {
                return Err(err(format!(
                    "model '{}': unknown architecture '{}' (known: {})",
                    e.id,
                    e.architecture,
                    crate::registry::ARCHITECTURES.join(", ")
                )));
            }
            if pixel_ops::data::Dataset::from_name(&e.dataset).is_none() {
                return Err(err(format!(
                    "model '{}': unknown dataset '{}' (known: mnist-binarized, mnist-thresholded, cifar10)",
                    e.id, e.dataset
                )));
            }
            let hex64 = |h: &str| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
            if !hex64(&e.sha256) {
                return Err(err(format!("model '{}': sha256 must be 64 hex digits", e.id)));
            }
            match (&e.hf_repo, &e.hf_revision, &e.upstream) {
                (Some(_), Some(_), None) => {}
                (None, None, Some(u)) => {
                    if !hex64(&u.sha256) {
                        return Err(err(format!("model '{}': upstream sha256 must be 64 hex digits", e.id)));
                    }
                    if !crate::import::FORMATS.contains(&u.format.as_str()) {
                        return Err(err(format!(
                            "model '{}': unknown upstream format '{}' (known: {})",
                            e.id,
                            u.format,
                            crate::import::FORMATS.join(", ")
                        )));
                    }
                }
                _ => {
                    return Err(err(format!(
                        "model '{}' needs either hf_repo and hf_revision, or an [model.upstream] table",
                        e.id
                    )))
                }
            }
        }
        Ok(m)
    }

    /// The manifest compiled into the library.
    pub fn embedded() -> Result<Self, ZooError> {
        Self::parse(EMBEDDED_MANIFEST, "weights-manifest.toml (embedded)")
    }

    /// The entry for `id`, or an error suggesting the nearest ids.
    pub fn get(&self, id: &str) -> Result<&ModelEntry, ZooError> {
        self.models.iter().find(|e| e.id == id).ok_or_else(|| {
            let mut scored: Vec<(f64, &str)> = self
                .models
                .iter()
                .map(|e| (strsim::normalized_damerau_levenshtein(id, &e.id), e.id.as_str()))
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            let suggestions = scored.iter().filter(|(s, _)| *s >= 0.4).take(2).map(|(_, i)| i.to_string()).collect();
            ZooError::UnknownModel { id: id.to_string(), suggestions }
        })
    }
}
