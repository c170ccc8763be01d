//! `weights-manifest.toml`: every zoo model, its weights file and checksum, where it lives on the
//! Hugging Face hub, its configuration and its measured figures.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::architecture::{ModelConfig, ARCHITECTURES, FORMATS};
use crate::error::ZooError;

/// The environment variable naming a manifest file to use instead of the compiled-in one.
pub const MANIFEST_ENV: &str = "PIXEL_ZOO_MANIFEST";

/// The manifest shipped with the crate.
pub const EMBEDDED_MANIFEST: &str = include_str!("../weights-manifest.toml");

/// The whole manifest.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    #[serde(rename = "model")]
    pub models: Vec<ModelEntry>,
}

/// One model of the zoo.
#[derive(Debug, Clone, Serialize)]
pub struct ModelEntry {
    pub id: String,
    /// `mnist-binarized`, `mnist-thresholded` or `cifar10`.
    pub dataset: String,
    /// File name under `weights/` and in the hub repository.
    pub weights: String,
    /// Hex sha256 of the weights file.
    pub sha256: String,
    /// Hugging Face repository id and revision the weights are published under (none for a
    /// third-party checkpoint converted on the user's machine, see `upstream`). The revision is a
    /// commit, pinned as candle-examples pin theirs; none while the repository is not yet published.
    #[serde(default)]
    pub hf_repo: Option<String>,
    #[serde(default)]
    pub hf_revision: Option<String>,
    /// The third-party checkpoint the weights are converted from by `zoo import` / `zoo fetch`
    /// (neither it nor the converted file is part of the project).
    #[serde(default)]
    pub upstream: Option<Upstream>,
    /// The architecture and its configuration; must equal the config in the weights' metadata.
    pub config: ModelConfig,
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

impl ModelEntry {
    /// The architecture's manifest name: `pixelcnn`, `row-lstm`, `diagonal-bilstm` or `multiscale`.
    pub fn architecture(&self) -> &'static str {
        self.config.architecture()
    }
}

/// The manifest as written: configs still untyped, until [`Manifest::parse`] checks them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    #[serde(rename = "model", default)]
    models: Vec<EntryFile>,
}

/// One `[[model]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    id: String,
    architecture: String,
    dataset: String,
    weights: String,
    sha256: String,
    #[serde(default)]
    hf_repo: Option<String>,
    #[serde(default)]
    hf_revision: Option<String>,
    #[serde(default)]
    upstream: Option<Upstream>,
    config: toml::Table,
    #[serde(default)]
    paper: Option<String>,
    #[serde(default)]
    metrics: Option<Metrics>,
    #[serde(default)]
    training: Option<toml::Table>,
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
    /// −log p(x) per test image; for a class-conditional model the marginal over its classes,
    /// −log Σ_c p(c) p(x | c) with the uniform p(c).
    pub test_nll_nats: f64,
    pub test_bits_per_dim: f64,
    pub test_images: usize,
    /// A class-conditional model's −log p(x | c) given each test image's true class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_nll_nats_given_class: Option<f64>,
    pub measured_with: String,
}

/// A file name without directories: what a manifest's `weights` must be.
fn plain_file_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\']) && !s.contains('\0')
}

impl Manifest {
    /// Parses and validates a manifest (`origin` names it in errors).
    pub fn parse(text: &str, origin: &str) -> Result<Self, ZooError> {
        let err = |msg: String| ZooError::Manifest { path: origin.to_string(), msg };
        let file: ManifestFile = toml::from_str(text).map_err(|e| {
            // One line: where, then toml's message (its Display draws the line over several).
            let at = e.span().map(|s| {
                let before = text.get(..s.start).unwrap_or(text);
                let line = before.matches('\n').count() + 1;
                let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!("line {line}, column {col}: ")
            });
            err(format!("{}{}; fix the TOML", at.unwrap_or_default(), e.message().trim_end().replace('\n', "; ")))
        })?;
        let mut seen = HashSet::new();
        let mut models = Vec::with_capacity(file.models.len());
        for e in file.models {
            if e.id.is_empty() || e.id.contains(char::is_whitespace) {
                return Err(err(format!("model id '{}' must be non-empty and without spaces", e.id)));
            }
            if !seen.insert(e.id.clone()) {
                return Err(err(format!("model id '{}' appears twice; give each [[model]] its own id", e.id)));
            }
            if !plain_file_name(&e.weights) {
                return Err(err(format!(
                    "model '{}': weights = '{}' must be a plain file name (no directories), as in weights/ \
                     and the hub repository",
                    e.id, e.weights
                )));
            }
            if !ARCHITECTURES.contains(&e.architecture.as_str()) {
                return Err(err(format!(
                    "model '{}': unknown architecture '{}' (known: {})",
                    e.id,
                    e.architecture,
                    ARCHITECTURES.join(", ")
                )));
            }
            if pixel_data::datasets::Dataset::from_name(&e.dataset).is_none() {
                return Err(err(format!(
                    "model '{}': unknown dataset '{}' (known: mnist-binarized, mnist-thresholded, cifar10)",
                    e.id, e.dataset
                )));
            }
            let config = ModelConfig::from_toml(&e.architecture, &e.config).map_err(|msg| {
                err(format!("model '{}': [model.config] is not a valid {} config: {msg}", e.id, e.architecture))
            })?;
            let hex64 = |h: &str| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
            if !hex64(&e.sha256) {
                return Err(err(format!("model '{}': sha256 must be 64 hex digits", e.id)));
            }
            match (&e.hf_repo, &e.hf_revision, &e.upstream) {
                // No revision: a hub repository not yet published (nothing to pin yet).
                (Some(repo), rev, None) => {
                    let name =
                        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
                    if !repo.split_once('/').is_some_and(|(a, b)| name(a) && name(b) && a != ".." && b != "..") {
                        return Err(err(format!("model '{}': hf_repo = '{repo}' must be 'owner/name'", e.id)));
                    }
                    if rev.as_ref().is_some_and(|rev| rev.is_empty() || rev.split('/').any(|p| !name(p) || p == "..")) {
                        return Err(err(format!(
                            "model '{}': hf_revision = '{}' must be a branch, tag or commit name",
                            e.id,
                            rev.as_deref().unwrap_or_default()
                        )));
                    }
                }
                (None, None, Some(u)) => {
                    if !hex64(&u.sha256) {
                        return Err(err(format!("model '{}': upstream sha256 must be 64 hex digits", e.id)));
                    }
                    if !FORMATS.contains(&u.format.as_str()) {
                        return Err(err(format!(
                            "model '{}': unknown upstream format '{}' (known: {})",
                            e.id,
                            u.format,
                            FORMATS.join(", ")
                        )));
                    }
                }
                _ => {
                    return Err(err(format!(
                        "model '{}' needs either hf_repo (and, once published, hf_revision), or an [model.upstream] \
                         table",
                        e.id
                    )))
                }
            }
            models.push(ModelEntry {
                id: e.id,
                dataset: e.dataset,
                weights: e.weights,
                sha256: e.sha256,
                hf_repo: e.hf_repo,
                hf_revision: e.hf_revision,
                upstream: e.upstream,
                config,
                paper: e.paper,
                metrics: e.metrics,
                training: e.training,
            });
        }
        Ok(Manifest { models })
    }

    /// Reads and parses a manifest file (`$PIXEL_ZOO_MANIFEST`, or your own models' manifest).
    pub fn from_file(path: &std::path::Path) -> Result<Self, ZooError> {
        let err = |msg: String| ZooError::Manifest { path: path.display().to_string(), msg };
        let text = std::fs::read(path).map_err(|e| {
            err(format!(
                "cannot read it ({e}); point {MANIFEST_ENV} at a manifest file, or unset it for the built-in one"
            ))
        })?;
        let text = String::from_utf8(text).map_err(|e| {
            err(format!(
                "not UTF-8 text (invalid byte at offset {}); a manifest is a TOML file",
                e.utf8_error().valid_up_to()
            ))
        })?;
        Self::parse(&text, &path.display().to_string())
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
