//! Where a model's weights come from, in order: an explicit path, the repository's `weights/`
//! folder, the Hugging Face cache (`HF_HOME`), a download from the hub (`HF_ENDPOINT`) with
//! `hf-hub`. Every file's sha256 is checked against the manifest before it is used.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};
use sha2::{Digest, Sha256};

use crate::error::ZooError;
use crate::manifest::ModelEntry;

/// Where a weights file was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightsSource {
    /// Given by the caller (`--weights PATH`).
    Explicit(PathBuf),
    /// The repository's `weights/` folder.
    Repository(PathBuf),
    /// The Hugging Face cache.
    Cache(PathBuf),
    /// Downloaded from the hub just now (now in the cache).
    Downloaded(PathBuf),
}

impl WeightsSource {
    pub fn path(&self) -> &Path {
        match self {
            Self::Explicit(p) | Self::Repository(p) | Self::Cache(p) | Self::Downloaded(p) => p,
        }
    }
    /// A short word for listings: `explicit`, `local`, `cache`, `downloaded`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Explicit(_) => "explicit",
            Self::Repository(_) => "local",
            Self::Cache(_) => "cache",
            Self::Downloaded(_) => "downloaded",
        }
    }
}

/// Finds, downloads and verifies weights files.
#[derive(Debug, Clone)]
pub struct Resolver {
    /// The repository's `weights/` folder.
    pub weights_dir: PathBuf,
    /// The Hugging Face cache (`$HF_HOME/hub`, default `~/.cache/huggingface/hub`).
    pub cache: Cache,
    /// The hub endpoint (`$HF_ENDPOINT`, default `https://huggingface.co`).
    pub endpoint: String,
    /// Never download (`HF_HUB_OFFLINE=1`).
    pub offline: bool,
    /// Show a download progress bar.
    pub progress: bool,
}

impl Resolver {
    /// Settings from the environment; `weights_dir` is this repository's `weights/`, or
    /// `$PIXEL_ZOO_WEIGHTS_DIR`.
    pub fn from_env() -> Self {
        let weights_dir = std::env::var_os("PIXEL_ZOO_WEIGHTS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("weights"));
        let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".to_string());
        let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        Self { weights_dir, cache: Cache::from_env(), endpoint, offline, progress: false }
    }

    fn repo(entry: &ModelEntry) -> Repo {
        Repo::with_revision(entry.hf_repo.clone(), RepoType::Model, entry.hf_revision.clone())
    }

    /// Where the weights are without touching the network: the repository, then the cache.
    pub fn locate(&self, entry: &ModelEntry) -> Option<WeightsSource> {
        let local = self.weights_dir.join(&entry.weights);
        if local.is_file() {
            return Some(WeightsSource::Repository(local));
        }
        self.cache.repo(Self::repo(entry)).get(&entry.weights).map(WeightsSource::Cache)
    }

    /// The URL the weights would be downloaded from.
    pub fn url(&self, entry: &ModelEntry) -> String {
        format!("{}/{}/resolve/{}/{}", self.endpoint, entry.hf_repo, entry.hf_revision, entry.weights)
    }

    /// Finds the weights (downloading them if needed and allowed) and returns them with their
    /// bytes, sha256 verified. An explicit file whose sha256 differs from the manifest's is used
    /// with a warning (it may be your own fine-tuned weights); every other source must match.
    pub fn fetch(&self, entry: &ModelEntry, explicit: Option<&Path>) -> Result<(WeightsSource, Vec<u8>), ZooError> {
        if let Some(p) = explicit {
            let bytes = read(p)?;
            let actual = sha256_hex(&bytes);
            if actual != entry.sha256 {
                tracing::warn!(path = %p.display(), "sha256 {actual} is not the manifest's for '{}': using these weights as given", entry.id);
            }
            return Ok((WeightsSource::Explicit(p.to_path_buf()), bytes));
        }
        let source = match self.locate(entry) {
            Some(s) => s,
            None => self.download(entry)?,
        };
        let bytes = read(source.path())?;
        if let Err(e) = verify(entry, source.path(), &bytes) {
            if let WeightsSource::Downloaded(p) = &source {
                remove_cached(p);
            }
            return Err(e);
        }
        Ok((source, bytes))
    }

    /// Downloads the weights into the Hugging Face cache with `hf-hub`.
    pub fn download(&self, entry: &ModelEntry) -> Result<WeightsSource, ZooError> {
        let url = self.url(entry);
        if self.offline {
            return Err(ZooError::WeightsNotFound {
                id: entry.id.clone(),
                file: entry.weights.clone(),
                hint: format!(
                    "not in {} nor in the Hugging Face cache ({}), and HF_HUB_OFFLINE is set; download {url} \
                     with network access (`zoo fetch {}`), or pass the file with --weights",
                    self.weights_dir.display(),
                    self.cache.path().display(),
                    entry.id
                ),
            });
        }
        tracing::info!(%url, "downloading weights");
        let api = ApiBuilder::from_cache(self.cache.clone())
            .with_endpoint(self.endpoint.clone())
            .with_progress(self.progress)
            .with_retries(2)
            .build()
            .map_err(|e| ZooError::Download { url: url.clone(), msg: e.to_string() })?;
        let path = api.repo(Self::repo(entry)).download(&entry.weights).map_err(|e| ZooError::Download {
            url: url.clone(),
            msg: format!(
                "{e}; the weights are not in {} nor in the cache ({}): check the network or HF_ENDPOINT, \
                 or pass the file with --weights",
                self.weights_dir.display(),
                self.cache.path().display()
            ),
        })?;
        Ok(WeightsSource::Downloaded(path))
    }
}

fn read(p: &Path) -> Result<Vec<u8>, ZooError> {
    std::fs::read(p).map_err(|source| ZooError::Io { path: p.to_path_buf(), source })
}

/// Removes a cached file that failed its check: the snapshot entry and the blob it points to.
fn remove_cached(p: &Path) {
    if let Ok(target) = std::fs::canonicalize(p) {
        let _ = std::fs::remove_file(target);
    }
    let _ = std::fs::remove_file(p);
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks `bytes` (read from `path`) against the manifest's sha256.
pub fn verify(entry: &ModelEntry, path: &Path, bytes: &[u8]) -> Result<(), ZooError> {
    let actual = sha256_hex(bytes);
    if actual != entry.sha256 {
        return Err(ZooError::ChecksumMismatch {
            id: entry.id.clone(),
            path: path.to_path_buf(),
            expected: entry.sha256.clone(),
            actual,
        });
    }
    Ok(())
}
