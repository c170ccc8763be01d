//! The error type of pixel-ops.

/// Errors from pixel-ops: tensor errors and arguments out of range.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// An argument is out of range (sample count, temperature, rows to keep, ...).
    #[error("{0}")]
    InvalidArgument(String),
}

pub type Result<T> = std::result::Result<T, Error>;
