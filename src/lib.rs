//! pixel-zoo: PixelRNN-family image models (van den Oord et al. 2016) on Candle, with pretrained
//! weights, loaded by id.
//!
//! ```no_run
//! use pixel_zoo::{Device, SampleOptions, Zoo};
//! # fn main() -> Result<(), pixel_zoo::ZooError> {
//! let zoo = Zoo::new()?;
//! let model = zoo.load("pixelcnn-mnist", &Device::Cpu)?;
//! let drawn = pixel_zoo::sample(model.as_ref(), &SampleOptions { count: 4, ..Default::default() }, &mut |_, _| {})?;
//! let images = drawn.images; // (4, 1, 28, 28) u8; drawn.classes: a class-conditional model's classes
//! let nats = model.nll(&images)?; // (4,) negative log-likelihood of each image in nats
//! # Ok(()) }
//! ```
//!
//! - [`Zoo`] reads the manifest (`weights-manifest.toml`, compiled in, or the file
//!   `$PIXEL_ZOO_MANIFEST` names) and resolves weights: an explicit path, then the repository's
//!   `weights/`, then the zoo's cache, then the Hugging Face cache, then a download from the hub
//!   (retried, and checked before it enters the cache; feature `hub`); the sha256 is checked every
//!   time.
//! - Third-party checkpoints are converted into the zoo's layout by [`import`] (`zoo import`).
//! - Every model implements [`PixelModel`]: logits, log-probabilities, NLL, a sampling step.
//! - [`compress`] codes images losslessly with a model (range coding, `zoo compress`; feature
//!   `compress`).
//! - [`upscale`] samples high-resolution images given a low-resolution one with a multi-scale model
//!   (its small image `x[::2, ::2]` kept exactly, `zoo upscale`); [`MultiScaleModel::nll_split`]
//!   splits such a model's NLL into the small image's and the upscaling's.
//! - [`data_fetch`] downloads MNIST and CIFAR-10 into the zoo's data cache (`zoo data fetch`;
//!   feature `hub`).
//!
//! Features (both default): `hub` (downloads: the hub client and cache, third-party checkpoints,
//! data sets) and `compress` (the range coder). With `default-features = false` the library loads
//! weights from files and the `weights/` folder only.

pub mod architecture;
pub mod checksum;
#[cfg(feature = "compress")]
pub mod compress;
#[cfg(feature = "hub")]
pub mod data_fetch;
#[cfg(feature = "hub")]
pub mod download;
pub mod error;
pub mod import;
pub mod manifest;
pub mod registry;
pub mod weights;

pub use architecture::ModelConfig;
pub use candle_core::{Device, Tensor};
pub use error::ZooError;
pub use manifest::{Manifest, ModelEntry};
pub use pixel_data as data;
pub use pixel_ops as ops;
pub use pixel_ops::sampler::{complete, sample, upscale, ClassChoice, SampleOptions, Sampled};
pub use pixel_ops::{ClassConditionalModel, Head, ImageSpec, MultiScaleModel, PixelModel};
pub use registry::{LoadedModel, Zoo};
pub use weights::{FetchedWeights, WeightsSource};

/// The pixels of a model's image files ([`data::files`]): its images' size and channels, binary
/// for a Bernoulli head.
pub fn pixel_format(spec: &ImageSpec) -> data::files::PixelFormat {
    data::files::PixelFormat {
        channels: spec.channels,
        height: spec.height,
        width: spec.width,
        binary: spec.head == Head::Bernoulli,
    }
}
