//! Errors of the zoo library: each says what is wrong and what to do.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ZooError {
    #[error("unknown model id '{id}'{}; the manifest lists every id", suggest(.suggestions))]
    UnknownModel { id: String, suggestions: Vec<String> },
    #[error("weights manifest {path}: {msg}")]
    Manifest { path: String, msg: String },
    #[error("weights for '{id}' ({file}) not found: {hint}")]
    WeightsNotFound {
        id: String,
        file: String,
        hint: String,
        /// The format of the third-party checkpoint the weights are converted from, if they are.
        upstream_format: Option<String>,
    },
    /// The weights are not here, and their hub repository has no pinned revision yet.
    #[error("weights for '{id}' ({file}) not found in {}, and the hub repository {repo} is not yet published (the manifest pins no revision of it): the weights ship in the zoo's weights/ folder (set PIXEL_ZOO_WEIGHTS_DIR to it), or give the weights file explicitly", weights_dir.display())]
    NotPublished { id: String, file: String, repo: String, weights_dir: PathBuf },
    #[error("{path}: sha256 is {actual} but the manifest expects {expected} for '{id}': the file is corrupt or not these weights; delete it and fetch '{id}' again, or give the right file explicitly")]
    ChecksumMismatch { id: String, path: PathBuf, expected: String, actual: String },
    #[error("{path}: not usable weights for '{id}': {msg}; use the weights made for '{id}' (fetching '{id}' gets the manifest's file)")]
    BadWeights { id: String, path: PathBuf, msg: String },
    #[error("{path}: cannot import as {format}: {msg}")]
    Import { path: PathBuf, format: String, msg: String },
    #[error("downloading {url}: {msg}")]
    Download { url: String, msg: String },
    /// A data set could not be fetched into the data cache (nothing of it was kept).
    #[error("fetching {dataset}: {msg}")]
    DataFetch { dataset: String, msg: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Ops(#[from] pixel_ops::Error),
    #[error(transparent)]
    Data(#[from] pixel_data::Error),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

fn suggest(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", s.iter().map(|x| format!("'{x}'")).collect::<Vec<_>>().join(" or "))
    }
}
