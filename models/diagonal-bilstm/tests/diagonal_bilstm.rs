//! Diagonal BiLSTM checks: causality for both heads, normalisation on a tiny binary image, reference
//! logits from the PyTorch reference (also with the options of the third-party checkpoint) (`reference/pixelzoo_ref/fixtures.py`), the sampling step.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use diagonal_bilstm::{Config, DiagonalBiLstm};
use pixel_ops::testing::{
    cached_and_naive_samples, causality_violations, compare_with_reference, step_mismatch, total_probability_binary,
    weights_with_config,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(name)
}

/// The random-weight reference model `name` (`rgb` or `binary`), optionally at another image size.
fn random_model(name: &str, size: Option<(usize, usize)>, dtype: DType) -> anyhow::Result<DiagonalBiLstm> {
    let (mut cfg, bytes): (Config, _) =
        weights_with_config(&fixture(&format!("diagonal-bilstm-random-{name}.safetensors")))?;
    if let Some((h, w)) = size {
        (cfg.height, cfg.width) = (h, w);
    }
    Ok(DiagonalBiLstm::new(&cfg, VarBuilder::from_buffered_safetensors(bytes, dtype, &Device::Cpu)?)?)
}

#[test]
fn rgb_softmax_model_is_causal() -> anyhow::Result<()> {
    let v = causality_violations(&random_model("rgb", None, DType::F32)?, &[1, 2, 3])?;
    assert!(v.is_empty(), "{} violations, first: {:?}", v.len(), &v[..v.len().min(5)]);
    Ok(())
}

#[test]
fn binary_bernoulli_model_is_causal() -> anyhow::Result<()> {
    let v = causality_violations(&random_model("binary", None, DType::F32)?, &[4, 5, 6])?;
    assert!(v.is_empty(), "{} violations, first: {:?}", v.len(), &v[..v.len().min(5)]);
    Ok(())
}

#[test]
fn the_third_party_options_are_causal() -> anyhow::Result<()> {
    // No 1x1 after the LSTM, a scalar state bias, a projection before the output stack, inputs in [0, 1].
    let model = random_model("options", None, DType::F32)?;
    let cfg = model.config();
    assert!(!cfg.residual_conv && cfg.output_projection && cfg.state_bias == diagonal_bilstm::StateBias::Scalar);
    let v = causality_violations(&model, &[7, 8, 9])?;
    assert!(v.is_empty(), "{} violations, first: {:?}", v.len(), &v[..v.len().min(5)]);
    Ok(())
}

#[test]
fn binary_probabilities_of_all_4x4_images_sum_to_one() -> anyhow::Result<()> {
    let total = total_probability_binary(&random_model("binary", Some((4, 4)), DType::F32)?)?;
    assert!((total - 1.0).abs() < 1e-5, "Σ p(x) over all 65,536 images = {total}");
    Ok(())
}

#[test]
fn logits_match_the_pytorch_reference() -> anyhow::Result<()> {
    for name in ["rgb", "binary", "options"] {
        let fixture = fixture(&format!("diagonal-bilstm-random-{name}.logits.safetensors"));
        let d = compare_with_reference(&random_model(name, None, DType::F64)?, &fixture)?;
        assert!(d.max_abs_logit < 1e-4, "{name} f64: max |Δlogit| = {}", d.max_abs_logit);
        assert!(d.max_rel_nll < 1e-9, "{name} f64: max relative |ΔNLL| = {}", d.max_rel_nll);
        let d = compare_with_reference(&random_model(name, None, DType::F32)?, &fixture)?;
        assert!(d.max_rel_logit < 1e-5, "{name} f32: max |Δlogit| / scale = {}", d.max_rel_logit);
        assert!(d.max_rel_nll < 1e-5, "{name} f32: max relative |ΔNLL| = {}", d.max_rel_nll);
    }
    Ok(())
}

#[test]
fn the_sampling_step_equals_the_full_pass() -> anyhow::Result<()> {
    let worst = step_mismatch(&random_model("rgb", Some((9, 7)), DType::F64)?, false)?;
    assert!(worst < 1e-9, "step_logits vs full pass: max |Δlogit| = {worst}");
    Ok(())
}

#[test]
fn the_cached_session_equals_the_full_pass_and_samples_the_same_images() -> anyhow::Result<()> {
    for (name, size) in
        [("rgb", (7, 6)), ("binary", (6, 5)), ("options", (5, 7)), ("options", (12, 12)), ("binary", (12, 12))]
    {
        // In float64 both paths compute the same values up to rounding far below the tolerance.
        let worst = step_mismatch(&random_model(name, Some(size), DType::F64)?, true)?;
        assert!(worst < 1e-9, "{name}: cached session vs full pass, max |Δlogit| = {worst}");
        // The sampler, in float32 as the zoo runs: the same images either way.
        let (cached, naive) = cached_and_naive_samples(&random_model(name, Some(size), DType::F32)?, 11)?;
        assert_eq!(cached, naive, "{name}: the cached sampler drew other images");
    }
    Ok(())
}
