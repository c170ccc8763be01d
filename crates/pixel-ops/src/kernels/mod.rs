//! CPU kernels: each a candle custom op with its generic path (tensor operations, every device)
//! and a test that the two agree, beside it.

pub mod place_small_logits;
