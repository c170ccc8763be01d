//! The operations every PixelRNN-family model shares (van den Oord et al. 2016, arXiv:1601.06759).
//!
//! The modules, by paper concept (each written as tensor operations, which every device runs):
//! - [`mask`]: the causal masks A and B over space and the R→G→B colour groups (§3.4);
//! - [`conv`]: masked convolutions, masks multiplied into the weights at load time;
//! - [`input`]: the input stack: the input encoding and the 7×7 mask-A convolution (§4), also at
//!   one position for a sampling session;
//! - [`head`]: the output stack (two ReLU + 1×1 mask-B convolutions, §4), the Bernoulli and 256-way
//!   softmax distributions, and the log-likelihood in nats and bits/dim;
//! - [`logistic_mixture`]: the discretized logistic mixture head of PixelCNN++ (Salimans et al.
//!   2017), as each channel's 256 log-probabilities and as a direct log-likelihood;
//! - [`lstm`]: the LSTM gates (o, f, i, g) and state-to-state kernels as one matrix product (§3.1–3.2);
//! - [`recurrent`]: an LSTM stepped on explicit state and the row caches of a sampling session,
//!   shared by the Row LSTM and the Diagonal BiLSTM;
//! - [`network`]: input stack → layers → output stack, the network that the PixelCNN, the Row LSTM
//!   and the Diagonal BiLSTM are, as a [`PixelModel`] and a [`ConditionalModel`];
//! - [`gate`]: the gated unit tanh ⊙ σ of the Gated PixelCNN;
//! - [`class_conditional`]: class conditioning (the per-class bias of the Gated PixelCNN), a
//!   conditional model given one class per image, and the marginal over classes (likelihood,
//!   conditionals, session);
//! - [`conditioning`]: the 1×1 map of a conditioning map into LSTM pre-activations (§3.6);
//! - [`skew`]: skew, unskew, mirror and the one-row shift of the Diagonal BiLSTM (§3.2);
//! - [`model`]: the [`PixelModel`] trait every architecture implements;
//! - [`stepper`]: running any [`PixelModel`] value by value in its order (cached session or naive
//!   step), and splitting a batch over threads;
//! - [`sampler`]: sampling and completion for any [`PixelModel`];
//! - [`subset`]: the multi-scale model's small image `x[::f, ::f]` (§3.6);
//! - [`weights_config`]: the config a weights file carries in its metadata.
//!
//! The CPU kernels that the concepts call on the CPU are apart, in [`kernels`], each beside the
//! portable path it replaces and a test that the two agree; [`row_product`] is one of them
//! (re-exported here, where the architecture crates name it).
//!
//! Data sets and image files are the `pixel-data` crate's.

pub mod class_conditional;
pub mod conditioning;
pub mod conv;
pub mod error;
pub mod gate;
pub mod head;
pub mod input;
pub mod kernels;
pub mod logistic_mixture;
pub mod lstm;
pub mod mask;
pub mod model;
pub mod network;
pub mod recurrent;
pub mod sampler;
pub mod skew;
pub mod stepper;
pub mod subset;
#[cfg(feature = "testing")]
pub mod testing;
pub mod weights_config;

pub use error::{Error, Result};
pub use head::{Head, InputEncoding};
pub use input::InputStack;
pub use kernels::row_product;
pub use mask::MaskKind;
pub use model::{ClassConditionalModel, ConditionalModel, ImageSpec, MultiScaleModel, PixelModel, SamplingSession};
