//! PixelCNN checks: causality for both heads, normalisation on a tiny binary image, reference
//! logits from the PyTorch reference (`reference/pixelzoo_ref/fixtures.py`), masks at load time.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use pixel_ops::testing::{
    cached_and_naive_samples, causality_violations, compare_with_reference, step_mismatch, total_probability_binary,
};
use pixelcnn::{Config, PixelCnn};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(name)
}

/// The random-weight reference model `name` (`rgb` or `binary`), optionally at another image size.
fn random_model(name: &str, size: Option<(usize, usize)>) -> anyhow::Result<PixelCnn> {
    random_model_as(name, size, DType::F32)
}

fn random_model_as(name: &str, size: Option<(usize, usize)>, dtype: DType) -> anyhow::Result<PixelCnn> {
    let path = fixture(&format!("pixelcnn-random-{name}.safetensors"));
    let bytes = std::fs::read(&path)?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)?;
    let json = meta.metadata().as_ref().and_then(|m| m.get("config").cloned()).expect("config metadata");
    let mut cfg: Config = serde_json::from_str(&json)?;
    if let Some((h, w)) = size {
        (cfg.height, cfg.width) = (h, w);
    }
    let vb = VarBuilder::from_buffered_safetensors(bytes, dtype, &Device::Cpu)?;
    Ok(PixelCnn::new(&cfg, vb)?)
}

#[test]
fn rgb_softmax_model_is_causal() -> anyhow::Result<()> {
    let model = random_model("rgb", None)?;
    let v = causality_violations(&model, &[1, 2, 3])?;
    assert!(v.is_empty(), "{} violations, first: {:?}", v.len(), &v[..v.len().min(5)]);
    Ok(())
}

#[test]
fn binary_bernoulli_model_is_causal() -> anyhow::Result<()> {
    let model = random_model("binary", None)?;
    let v = causality_violations(&model, &[4, 5, 6])?;
    assert!(v.is_empty(), "{} violations, first: {:?}", v.len(), &v[..v.len().min(5)]);
    Ok(())
}

#[test]
fn binary_probabilities_of_all_4x4_images_sum_to_one() -> anyhow::Result<()> {
    let model = random_model("binary", Some((4, 4)))?;
    let total = total_probability_binary(&model)?;
    assert!((total - 1.0).abs() < 1e-5, "Σ p(x) over all 65,536 images = {total}");
    Ok(())
}

#[test]
fn logits_match_the_pytorch_reference() -> anyhow::Result<()> {
    for name in ["rgb", "binary"] {
        let fixture = fixture(&format!("pixelcnn-random-{name}.logits.safetensors"));
        // In float64 both implementations compute the exact values of the same weights.
        let d = compare_with_reference(&random_model_as(name, None, DType::F64)?, &fixture)?;
        assert!(d.max_abs_logit < 1e-4, "{name} f64: max |Δlogit| = {}", d.max_abs_logit);
        assert!(d.max_rel_nll < 1e-9, "{name} f64: max relative |ΔNLL| = {}", d.max_rel_nll);
        // In float32 (what the zoo runs) rounding alone separates them.
        let d = compare_with_reference(&random_model(name, None)?, &fixture)?;
        assert!(d.max_abs_logit < 1e-4, "{name} f32: max |Δlogit| = {}", d.max_abs_logit);
        assert!(d.max_rel_nll < 1e-5, "{name} f32: max relative |ΔNLL| = {}", d.max_rel_nll);
    }
    Ok(())
}

#[test]
fn fixture_weights_are_unmasked_so_the_causality_tests_check_masking_at_load() -> anyhow::Result<()> {
    // The random fixtures store unmasked weights: the input convolution's tap below the centre
    // (out 0, in 0, bottom row, middle column) is non-zero in the file. The causality tests above
    // pass only because the zoo multiplies the masks in when it loads them.
    let bytes = std::fs::read(fixture("pixelcnn-random-rgb.safetensors"))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let w = st.tensor("input_conv.weight")?;
    let vals: Vec<f32> = w.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let (bottom_row, middle_col) = (6, 3);
    assert_ne!(vals[bottom_row * 7 + middle_col], 0.0, "fixture should hold an unmasked value there");
    Ok(())
}

#[test]
fn the_windowed_sampling_step_equals_the_full_pass() -> anyhow::Result<()> {
    // 16x16 is larger than the receptive window (radius 3 + 2 = 5), so the window is really cut.
    let worst = step_mismatch(&random_model_as("rgb", Some((16, 16)), DType::F64)?, false)?;
    assert!(worst < 1e-9, "step_logits vs full pass: max |Δlogit| = {worst}");
    Ok(())
}

#[test]
fn the_cached_session_equals_the_full_pass_and_samples_the_same_images() -> anyhow::Result<()> {
    for (name, size) in [("rgb", (9, 8)), ("binary", (6, 5))] {
        // In float64 both paths compute the same values up to rounding far below the tolerance.
        let worst = step_mismatch(&random_model_as(name, Some(size), DType::F64)?, true)?;
        assert!(worst < 1e-9, "{name}: cached session vs full pass, max |Δlogit| = {worst}");
        // The sampler, in float32 as the zoo runs: the same images either way.
        let (cached, naive) = cached_and_naive_samples(&random_model_as(name, Some(size), DType::F32)?, 11)?;
        assert_eq!(cached, naive, "{name}: the cached sampler drew other images");
    }
    Ok(())
}
