//! The error type of pixel-data.
use std::path::PathBuf;

/// Data set or image files that are missing or malformed, and outputs that cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An output file could not be written (nothing is left behind).
    #[error("cannot write {path}: {source}; check that the directory exists and is writable, or choose another path")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A data or image file exists but is not what it should be.
    #[error("{path}: {msg}")]
    BadFile { path: PathBuf, msg: String },
    /// A data set file is missing from the data directory.
    #[error("{msg}")]
    MissingData { msg: String },
    /// No data directory was given and the zoo's data cache does not hold the data set.
    #[error(
        "no {dataset} data: no data directory given (PIXEL_ZOO_DATA is not set) and the zoo's data cache ({}) \
         does not hold it; fetch {dataset} into the cache, or name a directory holding {dataset}/",
        cache.display()
    )]
    NoData {
        /// `mnist` or `cifar10`.
        dataset: &'static str,
        cache: PathBuf,
    },
    /// An argument is out of range.
    #[error("{0}")]
    InvalidArgument(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub(crate) fn bad_file(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::BadFile { path: path.into(), msg: msg.into() }
    }
}
