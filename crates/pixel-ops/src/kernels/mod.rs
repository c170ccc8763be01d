//! The CPU kernels: hand-written loops (and `gemm` calls) that do on the CPU what a concept's
//! tensor operations do on every device, faster or with the bits a batch split must not move.
//! The concepts live in the other modules and call these; each file here keeps the portable
//! candle path beside its kernel (or names the concept's function that is that path) and a test
//! that the two agree.
//!
//! - [`masked_conv`]: a masked convolution's whole-image pass, channels-last, the bias, a residual
//!   and the ReLUs folded into `gemm` products written in place ([`crate::conv`]);
//! - [`open_tap_columns`]: the open taps' inputs side by side ([`crate::conv`], the LSTMs'
//!   neighbours);
//! - [`row_product`]: matrix products row by row, each row's bits independent of the batch (the
//!   layers at one position, the LSTMs' state-to-state products);
//! - [`softmax_nll`]: the 256-way softmax's negative log-likelihood ([`crate::head`]);
//! - [`lstm_cell`]: the LSTM gates and cell update in one pass ([`crate::lstm`]);
//! - [`mixture_bins`]: the discretized logistic mixture's 256 bins of a channel
//!   ([`crate::logistic_mixture`]);
//! - [`place_small_logits`]: a multi-scale model's small-image logits written over the big stage's
//!   in place ([`crate::subset`]);
//! - [`vector_math`]: elementary functions that vectorise, for the kernels above.

use candle_core::{Layout, Result};

pub mod lstm_cell;
pub mod masked_conv;
pub mod mixture_bins;
pub mod open_tap_columns;
pub mod place_small_logits;
pub mod row_product;
pub mod softmax_nll;
pub mod vector_math;

/// The offsets of a CPU storage's contiguous slice, or an error naming the kernel `op`.
fn contiguous(layout: &Layout, op: &str) -> Result<(usize, usize)> {
    layout.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg(format!("{op} needs a contiguous input")))
}

/// The largest absolute difference between two tensors of one shape, in f64.
#[cfg(test)]
pub(crate) fn max_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> Result<f64> {
    use candle_core::{DType, D};
    (a - b)?.abs()?.flatten_all()?.max(D::Minus1)?.to_dtype(DType::F64)?.to_scalar::<f64>()
}
