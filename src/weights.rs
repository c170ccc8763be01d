//! Where a model's weights come from, in order: an explicit path, the repository's `weights/`
//! folder, the zoo's local weights cache (converted third-party checkpoints), the Hugging Face
//! cache (`HF_HOME`), a download from the hub (`HF_ENDPOINT`) by the zoo's own client (retried,
//! checked before it enters the cache; `hf-hub` only names the cache's layout) — or, for a
//! third-party model, a download of the original file, converted on the spot ([`crate::import`]).
//! Every file's sha256 is checked against the manifest before it is used.

use std::path::{Path, PathBuf};

#[cfg(feature = "hub")]
use hf_hub::{Cache, Repo, RepoType};

use crate::checksum::sha256_hex;
#[cfg(feature = "hub")]
use crate::download::{http_download, Get};
use crate::error::ZooError;
use crate::manifest::ModelEntry;

/// Where a weights file was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightsSource {
    /// Given by the caller (`--weights PATH`).
    Explicit(PathBuf),
    /// The repository's `weights/` folder.
    Repository(PathBuf),
    /// A cache: the zoo's own (converted third-party weights) or the Hugging Face cache.
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

/// Weights found and checked: where they came from, their bytes and their sha256.
#[derive(Debug, Clone)]
pub struct FetchedWeights {
    pub source: WeightsSource,
    pub bytes: Vec<u8>,
    /// Hex sha256 of `bytes` (the manifest's, unless an explicit file differs).
    pub sha256: String,
}

/// Finds, downloads and verifies weights files.
#[derive(Debug, Clone)]
pub struct Resolver {
    /// The repository's `weights/` folder.
    pub weights_dir: PathBuf,
    /// The zoo's local weights cache, where `zoo import` installs converted third-party weights
    /// ([`pixel_data::datasets::weights_cache_dir`]).
    pub zoo_cache: PathBuf,
    /// The Hugging Face cache (`$HF_HOME/hub`, default `~/.cache/huggingface/hub`; feature `hub`).
    #[cfg(feature = "hub")]
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
        let zoo_cache = pixel_data::datasets::weights_cache_dir();
        // hf-hub's Cache::from_env panics without a home directory; the same rule without it.
        #[cfg(feature = "hub")]
        let hf_cache = match std::env::var_os("HF_HOME") {
            Some(h) => PathBuf::from(h).join("hub"),
            None => std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache"))
                .unwrap_or_else(std::env::temp_dir)
                .join("huggingface")
                .join("hub"),
        };
        Self {
            weights_dir,
            zoo_cache,
            #[cfg(feature = "hub")]
            cache: Cache::new(hf_cache),
            endpoint,
            offline,
            progress: false,
        }
    }

    /// The hub repository of an entry published there (with a pinned revision).
    #[cfg(feature = "hub")]
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
        #[cfg(feature = "hub")]
        return self.cache.repo(Self::repo(entry)?).get(&entry.weights).map(WeightsSource::Cache);
        #[cfg(not(feature = "hub"))]
        None
    }

    /// The URL the weights (or, for a third-party model, the original file) would be downloaded from;
    /// for a hub repository not yet published (no pinned revision), the repository's page.
    pub fn url(&self, entry: &ModelEntry) -> String {
        match (&entry.hf_repo, &entry.hf_revision, &entry.upstream) {
            (Some(repo), Some(rev), _) => format!("{}/{repo}/resolve/{rev}/{}", self.endpoint, entry.weights),
            (Some(repo), None, _) => format!("{}/{repo} (not yet published)", self.endpoint),
            (_, _, Some(upstream)) => upstream.url.clone(),
            _ => String::new(),
        }
    }

    /// Finds the weights (downloading them if needed and allowed) and returns them with their
    /// bytes, sha256 verified. An explicit file whose sha256 differs from the manifest's is used
    /// with a warning (it may be your own fine-tuned weights); every other source must match.
    pub fn fetch(&self, entry: &ModelEntry, explicit: Option<&Path>) -> Result<FetchedWeights, ZooError> {
        if let Some(p) = explicit {
            let bytes = read(p)?;
            let sha256 = sha256_hex(&bytes);
            if sha256 != entry.sha256 {
                tracing::warn!(path = %p.display(), "sha256 {sha256} is not the manifest's for '{}': using these weights as given", entry.id);
            }
            return Ok(FetchedWeights { source: WeightsSource::Explicit(p.to_path_buf()), bytes, sha256 });
        }
        if let Some(source) = self.locate(entry) {
            let bytes = read(source.path())?;
            match verify(entry, source.path(), &bytes) {
                Ok(()) => return Ok(FetchedWeights { source, bytes, sha256: entry.sha256.clone() }),
                // A cached copy that fails its check is replaced by a fresh download, if allowed.
                Err(e) if matches!(source, WeightsSource::Cache(_)) && !self.offline => {
                    tracing::warn!("{e}; downloading a fresh copy");
                }
                Err(e) => return Err(e),
            }
        }
        let source = self.download(entry)?;
        let bytes = read(source.path())?;
        verify(entry, source.path(), &bytes)?;
        Ok(FetchedWeights { source, bytes, sha256: entry.sha256.clone() })
    }

    /// Without the `hub` feature there is nothing to download from: weights not found locally are
    /// an error that says so.
    #[cfg(not(feature = "hub"))]
    pub fn download(&self, entry: &ModelEntry) -> Result<WeightsSource, ZooError> {
        let get = match &entry.upstream {
            Some(u) => format!(
                "download {} (sha256 {}, licence: {}) and import it as {}",
                u.url, u.sha256, u.licence, u.format
            ),
            None => "give the weights file explicitly".into(),
        };
        Err(ZooError::WeightsNotFound {
            id: entry.id.clone(),
            file: entry.weights.clone(),
            hint: format!(
                "not in {} nor in {}, and this build of pixel-zoo has no downloads (feature `hub` off): {get}",
                self.weights_dir.display(),
                self.zoo_cache.display()
            ),
            upstream_format: entry.upstream.as_ref().map(|u| u.format.clone()),
        })
    }

    /// Downloads the weights into the Hugging Face cache (checked before they are cached, see
    /// [`Resolver::download_from_hub`]); for a third-party model,
    /// downloads the original file and converts it into the zoo's cache ([`Resolver::import_from_url`]).
    /// Feature `hub`.
    #[cfg(feature = "hub")]
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
                         cache ({}), and HF_HUB_OFFLINE is set: download {url} (sha256 {}) and import it as \
                         {}, or fetch '{}' with network access",
                        upstream.repository,
                        upstream.licence,
                        self.zoo_cache.display(),
                        upstream.sha256,
                        upstream.format,
                        entry.id
                    ),
                    upstream_format: Some(upstream.format.clone()),
                })
            }
            (None, _) => {}
        }
        if let (Some(repo), None) = (&entry.hf_repo, &entry.hf_revision) {
            return Err(ZooError::NotPublished {
                id: entry.id.clone(),
                file: entry.weights.clone(),
                repo: repo.clone(),
                weights_dir: self.weights_dir.clone(),
            });
        }
        let Some(repo) = Self::repo(entry) else {
            return Err(ZooError::WeightsNotFound {
                id: entry.id.clone(),
                file: entry.weights.clone(),
                hint: "the entry names neither hf_repo and hf_revision nor an upstream checkpoint to download; \
                       give the weights file explicitly"
                    .into(),
                upstream_format: None,
            });
        };
        if self.offline {
            return Err(ZooError::WeightsNotFound {
                id: entry.id.clone(),
                file: entry.weights.clone(),
                hint: format!(
                    "not in {} nor in the Hugging Face cache ({}), and HF_HUB_OFFLINE is set; download {url} \
                     with network access (fetch '{}'), or give the weights file explicitly",
                    self.weights_dir.display(),
                    self.cache.path().display(),
                    entry.id
                ),
                upstream_format: None,
            });
        }
        self.download_from_hub(entry, &repo, &url)
    }

    /// Downloads `url` into the Hugging Face cache layout (`blobs/<sha256>`,
    /// `snapshots/<commit>/<file>` → the blob, `refs/<revision>`): the body goes to a temporary
    /// file beside the blobs and is renamed into place only after its sha256 matched the
    /// manifest's, so a failed or wrong download leaves nothing in the cache. Feature `hub`.
    #[cfg(feature = "hub")]
    pub fn download_from_hub(&self, entry: &ModelEntry, repo: &Repo, url: &str) -> Result<WeightsSource, ZooError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ZooError::Io { path, source }
        };
        let repo_dir = self.cache.path().join(repo.folder_name());
        let blobs = repo_dir.join("blobs");
        std::fs::create_dir_all(&blobs).map_err(io(&blobs))?;
        let token = std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty()).or_else(|| self.cache.token());
        let get = Get {
            url,
            dir: &blobs,
            token: token.as_deref(),
            progress: self.progress,
            not_found_hint: "the file is not there: check the manifest's repository, revision and file name, and \
                             HF_ENDPOINT",
            gave_up_hint: "nothing was cached: check the network or HF_ENDPOINT and try again",
        };
        let got = match http_download(&get) {
            Ok(got) if got.sha256 == entry.sha256 => got,
            failed => {
                // Nothing of this download stays: the temporary file is gone; empty folders too.
                let _ = std::fs::remove_dir(&blobs);
                let _ = std::fs::remove_dir(&repo_dir);
                let got = failed.map_err(|e| match e {
                    ZooError::Download { url, msg } => {
                        ZooError::Download { url, msg: format!("{msg}; or give the weights file explicitly") }
                    }
                    other => other,
                })?;
                return Err(ZooError::Download {
                    url: url.to_string(),
                    msg: format!(
                        "the server sent {size} bytes with sha256 {actual}, but the manifest expects {} for '{}'; \
                     nothing was cached: check that HF_ENDPOINT is the hub or a faithful mirror, or give the \
                     weights file explicitly",
                        entry.sha256,
                        entry.id,
                        size = got.size,
                        actual = got.sha256
                    ),
                });
            }
        };
        let actual = got.sha256.clone();
        let revision = entry.hf_revision.clone().unwrap_or_else(|| "main".into());
        // The snapshot folder is the commit the server names; a commit-like revision otherwise.
        let commit = got
            .commit
            .filter(|c| c.len() >= 7 && c.bytes().all(|b| b.is_ascii_alphanumeric()))
            .unwrap_or_else(|| revision.replace('/', "--"));
        let blob = blobs.join(&actual);
        got.file.persist(&blob).map_err(|e| ZooError::Io { path: blob.clone(), source: e.error })?;
        let snapshot = repo_dir.join("snapshots").join(&commit);
        std::fs::create_dir_all(&snapshot).map_err(io(&snapshot))?;
        let pointer = snapshot.join(&entry.weights);
        link_atomic(&blob, &Path::new("../../blobs").join(&actual), &pointer).map_err(io(&pointer))?;
        let reference = repo_dir.join("refs").join(&revision);
        if let Some(dir) = reference.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        pixel_data::files::write_atomic(&reference, commit.as_bytes())?;
        tracing::info!(%url, path = %pointer.display(), "downloaded");
        Ok(WeightsSource::Downloaded(pointer))
    }
    /// Downloads a third-party model's original file from `url` (the manifest's, or a mirror),
    /// checks and converts it ([`crate::import::convert`]) and installs the result in the zoo's cache.
    /// Feature `hub`.
    #[cfg(feature = "hub")]
    pub fn import_from_url(&self, entry: &ModelEntry, url: &str) -> Result<WeightsSource, ZooError> {
        let download = |msg: String| ZooError::Download { url: url.to_string(), msg };
        tracing::info!(%url, "downloading the third-party checkpoint");
        std::fs::create_dir_all(&self.zoo_cache)
            .map_err(|source| ZooError::Io { path: self.zoo_cache.clone(), source })?;
        let get = Get {
            url,
            dir: &self.zoo_cache,
            token: None,
            progress: self.progress,
            not_found_hint: "the file is not there: check the URL (the manifest's upstream.url, or the mirror given)",
            gave_up_hint: "nothing was cached: check the network and try again",
        };
        let got = http_download(&get).map_err(|e| match e {
            ZooError::Download { msg, .. } => download(format!("{msg}; or download the file yourself and import it")),
            other => other,
        })?;
        let tmp = got.file;
        let path = crate::import::install(entry, tmp.path(), &self.zoo_cache, None)?;
        Ok(WeightsSource::Downloaded(path))
    }
}

/// Makes `link` point at `target` (relative path `rel`) atomically: a symlink made beside it and
/// renamed over it; a copy where symlinks are not available.
#[cfg(feature = "hub")]
fn link_atomic(target: &Path, rel: &Path, link: &Path) -> std::io::Result<()> {
    let dir = link.parent().unwrap_or(Path::new("."));
    let tmp =
        dir.join(format!(".{}.link-{}", link.file_name().unwrap_or_default().to_string_lossy(), std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let res = make_link(target, rel, &tmp).and_then(|_| std::fs::rename(&tmp, link));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// A symlink at `tmp` to `rel`.
#[cfg(all(feature = "hub", unix))]
fn make_link(_target: &Path, rel: &Path, tmp: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(rel, tmp)
}

/// A copy of `target` at `tmp`, where symlinks are not available.
#[cfg(all(feature = "hub", not(unix)))]
fn make_link(target: &Path, _rel: &Path, tmp: &Path) -> std::io::Result<()> {
    std::fs::copy(target, tmp).map(drop)
}

fn read(p: &Path) -> Result<Vec<u8>, ZooError> {
    std::fs::read(p).map_err(|source| ZooError::Io { path: p.to_path_buf(), source })
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
