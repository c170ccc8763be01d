//! Diagonal BiLSTM checks ([`pixel_ops::model_tests!`]): causality for both heads and the options
//! of the third-party checkpoint, normalisation on a tiny binary image, reference logits from the
//! PyTorch reference (`reference/pixelzoo_ref/fixtures.py`), the sampling step and the cached
//! session. (That the causality check catches a wrongly shifted right-to-left direction is a unit
//! test in `src/lib.rs`.)

use candle_core::DType;
use diagonal_bilstm::{Config, DiagonalBiLstm};

// The fixtures `rgb`, `binary` and `options` (the third-party checkpoint's options).
pixel_ops::model_tests! {
    network: ("diagonal-bilstm", Config, DiagonalBiLstm),
    causal: [("rgb", [1, 2, 3]), ("binary", [4, 5, 6]), ("options", [7, 8, 9])],
    normalised: ("binary", f32: (4, 4), f64: (3, 4)),
    reference: ["rgb", "binary", "options"],
    naive_step: ("rgb", (9, 7)),
    sessions: [("rgb", (7, 6)), ("binary", (6, 5)), ("options", (5, 7)), ("options", (12, 12)), ("binary", (12, 12))],
}

#[test]
fn the_options_fixture_has_the_third_party_options() -> anyhow::Result<()> {
    // No 1x1 after the LSTM, a scalar state bias, a projection before the output stack, inputs in [0, 1].
    let model = random_model("options", None, DType::F32)?;
    let cfg = model.config();
    assert!(!cfg.residual_conv && cfg.output_projection && cfg.state_bias == diagonal_bilstm::StateBias::Scalar);
    assert_eq!(cfg.input_encoding, pixel_ops::InputEncoding::Unit);
    Ok(())
}
