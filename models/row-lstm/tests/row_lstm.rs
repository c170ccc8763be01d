//! Row LSTM checks ([`pixel_ops::model_tests!`]): causality for both heads, normalisation on a tiny
//! binary image, reference logits from the PyTorch reference (`reference/pixelzoo_ref/fixtures.py`),
//! the sampling step and the cached session.

use candle_core::DType;
use row_lstm::{Config, RowLstm};

/// The random-weight reference model `name` (`rgb` or `binary`), optionally at another image size.
fn random_model(name: &str, size: Option<(usize, usize)>, dtype: DType) -> anyhow::Result<RowLstm> {
    Ok(pixel_ops::testing::random_model("row-lstm", name, size, dtype, |c: &mut Config| &mut c.image, RowLstm::new)?)
}

pixel_ops::model_tests! {
    model: random_model,
    fixtures: "row-lstm",
    causal: [("rgb", [1, 2, 3]), ("binary", [4, 5, 6])],
    normalised: ("binary", f32: (4, 4), f64: (3, 4)),
    reference: ["rgb", "binary"],
    naive_step: ("rgb", (9, 7)),
    sessions: [("rgb", (7, 6)), ("binary", (6, 5))],
}
