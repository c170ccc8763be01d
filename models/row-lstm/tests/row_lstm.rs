//! Row LSTM checks ([`pixel_ops::model_tests!`]): causality for both heads, normalisation on a tiny
//! binary image, reference logits from the PyTorch reference (`reference/pixelzoo_ref/fixtures.py`),
//! the sampling step and the cached session.

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use pixel_ops::testing::random_fixture;
use row_lstm::{Config, RowLstm};

/// The random-weight reference model `name` (`rgb` or `binary`), optionally at another image size.
fn random_model(name: &str, size: Option<(usize, usize)>, dtype: DType) -> anyhow::Result<RowLstm> {
    let (mut cfg, bytes): (Config, _) = random_fixture("row-lstm", name)?;
    if let Some((h, w)) = size {
        (cfg.image.height, cfg.image.width) = (h, w);
    }
    Ok(RowLstm::new(&cfg, VarBuilder::from_buffered_safetensors(bytes, dtype, &Device::Cpu)?)?)
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
