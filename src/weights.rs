//! Where a model's weights come from, in order: an explicit path, the repository's `weights/`
//! folder, the zoo's local weights cache (converted third-party checkpoints), the Hugging Face
//! cache (`HF_HOME`), a download from the hub (`HF_ENDPOINT`) with `hf-hub` — or, for a
//! third-party model, a download of the original file, converted on the spot. Every file's sha256
//! is checked against the manifest before it is used.

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
    /// The zoo's local weights cache, where `zoo import` installs converted third-party weights:
    /// `$PIXEL_ZOO_CACHE`, else `$XDG_CACHE_HOME/pixel-zoo/weights`, else `~/.cache/pixel-zoo/weights`.
    pub zoo_cache: PathBuf,
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
        let zoo_cache = std::env::var_os("PIXEL_ZOO_CACHE").map(PathBuf::from).unwrap_or_else(|| {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_else(std::env::temp_dir);
            base.join("pixel-zoo").join("weights")
        });
        Self { weights_dir, zoo_cache, cache: Cache::from_env(), endpoint, offline, progress: false }
    }

    /// The hub repository of an entry published there.
    fn repo(entry: &ModelEntry) -> Option<Repo> {
        match (&entry.hf_repo, &entry.hf_revision) {
            (Some(repo), Some(rev)) => Some(Repo::with_revision(repo.clone(), RepoType::Model, rev.clone())),
            _ => None,
        }
    }

    /// Where the weights are without touching the network: the repository, then the cache.
    pub fn locate(&self, entry: &ModelEntry) -> Option<WeightsSource> {
        let local = self.weights_dir.join(&entry.weights);
        if local.is_file() {
            return Some(WeightsSource::Repository(local));
        }
        let imported = self.zoo_cache.join(&entry.weights);
        if imported.is_file() {
            return Some(WeightsSource::Cache(imported));
        }
        self.cache.repo(Self::repo(entry)?).get(&entry.weights).map(WeightsSource::Cache)
    }

    /// The URL the weights (or, for a third-party model, the original file) would be downloaded from.
    pub fn url(&self, entry: &ModelEntry) -> String {
        match (&entry.hf_repo, &entry.hf_revision, &entry.upstream) {
            (Some(repo), Some(rev), _) => format!("{}/{repo}/resolve/{rev}/{}", self.endpoint, entry.weights),
            (_, _, Some(upstream)) => upstream.url.clone(),
            _ => String::new(),
        }
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

    /// Downloads the weights into the Hugging Face cache with `hf-hub`; for a third-party model,
    /// downloads the original file and converts it into the zoo's cache ([`Resolver::import_from_url`]).
    pub fn download(&self, entry: &ModelEntry) -> Result<WeightsSource, ZooError> {
        let url = self.url(entry);
        match (&entry.upstream, self.offline) {
            (Some(upstream), false) => return self.import_from_url(entry, &upstream.url),
            (Some(upstream), true) => {
                return Err(ZooError::WeightsNotFound {
                    id: entry.id.clone(),
                    file: entry.weights.clone(),
                    hint: format!(
                        "it is converted from a third-party checkpoint ({}, licence: {}) that is not in the zoo's \
                         cache ({}), and HF_HUB_OFFLINE is set: download {url} (sha256 {}) and run \
                         `zoo import {} FILE`, or run `zoo fetch {}` with network access",
                        upstream.repository,
                        upstream.licence,
                        self.zoo_cache.display(),
                        upstream.sha256,
                        upstream.format,
                        entry.id
                    ),
                })
            }
            (None, _) => {}
        }
        let repo = Self::repo(entry).expect("a manifest entry is on the hub or has an upstream");
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
        let path = api.repo(repo).download(&entry.weights).map_err(|e| ZooError::Download {
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

impl Resolver {
    /// Downloads a third-party model's original file from `url` (the manifest's, or a mirror),
    /// checks and converts it ([`crate::import::convert`]) and installs the result in the zoo's cache.
    pub fn import_from_url(&self, entry: &ModelEntry, url: &str) -> Result<WeightsSource, ZooError> {
        let download = |msg: String| ZooError::Download { url: url.to_string(), msg };
        tracing::info!(%url, "downloading the third-party checkpoint");
        std::fs::create_dir_all(&self.zoo_cache)
            .map_err(|source| ZooError::Io { path: self.zoo_cache.clone(), source })?;
        let response = ureq::get(url).call().map_err(|e| {
            download(format!("{e}; check the network, or download the file yourself and run `zoo import`"))
        })?;
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut response.into_reader(), &mut body)
            .map_err(|e| download(format!("reading the body: {e}")))?;
        let tmp = tempfile::NamedTempFile::new_in(&self.zoo_cache)
            .map_err(|source| ZooError::Io { path: self.zoo_cache.clone(), source })?;
        std::fs::write(tmp.path(), &body).map_err(|source| ZooError::Io { path: tmp.path().to_path_buf(), source })?;
        let path = crate::import::install(entry, tmp.path(), &self.zoo_cache, None)?;
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
