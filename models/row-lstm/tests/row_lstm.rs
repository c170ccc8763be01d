//! Row LSTM checks ([`pixel_ops::model_tests!`]): causality for both heads, normalisation on a tiny
//! binary image, reference logits from the PyTorch reference (`reference/pixelzoo_ref/fixtures.py`),
//! the sampling step and the cached session.

use row_lstm::{Config, RowLstm};

// The fixtures `rgb` and `binary`: the suite's default checks of both.
pixel_ops::model_tests! {
    network: ("row-lstm", Config, RowLstm),
    naive_step: ("rgb", (9, 7)),
    sessions: [("rgb", (7, 6)), ("binary", (6, 5))],
}
