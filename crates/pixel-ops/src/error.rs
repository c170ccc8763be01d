//! The error type of pixel-ops.

/// Errors from pixel-ops: tensor errors, arguments out of range and worker threads that panicked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// An argument is out of range (sample count, temperature, rows to keep, ...).
    #[error("{0}")]
    InvalidArgument(String),
    /// A worker thread panicked (a bug, not a problem with the arguments); names its work.
    #[error("a {0} thread panicked")]
    WorkerPanicked(&'static str),
}

pub type Result<T> = std::result::Result<T, Error>;
