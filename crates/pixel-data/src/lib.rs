//! The data and files of the pixel-zoo, apart from the models (it does not depend on `pixel-ops`):
//! - [`datasets`]: MNIST IDX and CIFAR-10 readers (gz or raw), binarized and thresholded MNIST;
//! - [`files`]: PNG in and out (images to score and complete, sample grids), and atomic writes
//!   that never leave a half-written file.

mod cache_dirs;
pub mod datasets;
pub mod error;
pub mod files;

pub use error::{Error, Result};
