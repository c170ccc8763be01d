//! PixelCNN checks ([`pixel_ops::model_tests!`]): causality for both heads, normalisation on a tiny
//! binary image, reference logits from the PyTorch reference (`reference/pixelzoo_ref/fixtures.py`),
//! the windowed sampling step and the cached session; masks applied at load time.

use pixel_ops::testing::workspace_root;
use pixelcnn::{Config, PixelCnn};

// The fixtures `rgb` and `binary`: the suite's default checks of both.
pixel_ops::model_tests! {
    network: ("pixelcnn", Config, PixelCnn),
    // 16x16 is larger than the receptive window (radius 3 + 2 = 5), so the window is really cut.
    naive_step: ("rgb", (16, 16)),
    sessions: [("rgb", (9, 8)), ("binary", (6, 5))],
}

#[test]
fn fixture_weights_are_unmasked_so_the_causality_tests_check_masking_at_load() -> anyhow::Result<()> {
    // The random fixtures store unmasked weights: the input convolution's tap below the centre
    // (out 0, in 0, bottom row, middle column) is non-zero in the file. The causality tests above
    // pass only because the zoo multiplies the masks in when it loads them.
    let bytes = std::fs::read(workspace_root().join("tests/fixtures/pixelcnn-random-rgb.safetensors"))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let w = st.tensor("input_conv.weight")?;
    let vals: Vec<f32> = w.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let (bottom_row, middle_col) = (6, 3);
    assert_ne!(vals[bottom_row * 7 + middle_col], 0.0, "fixture should hold an unmasked value there");
    Ok(())
}
