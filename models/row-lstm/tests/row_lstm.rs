//! Row LSTM checks: causality for both heads, normalisation on a tiny binary image, reference
//! logits from the PyTorch reference (`reference/pixelzoo_ref/fixtures.py`), the sampling step.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use pixel_ops::testing::{
    cached_and_naive_samples, causality_violations, compare_with_reference, step_mismatch, total_probability_binary,
    weights_with_config,
};
use row_lstm::{Config, RowLstm};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(name)
}

/// The random-weight reference model `name` (`rgb` or `binary`), optionally at another image size.
fn random_model(name: &str, size: Option<(usize, usize)>, dtype: DType) -> anyhow::Result<RowLstm> {
    let (mut cfg, bytes): (Config, _) = weights_with_config(&fixture(&format!("row-lstm-random-{name}.safetensors")))?;
    if let Some((h, w)) = size {
        (cfg.height, cfg.width) = (h, w);
    }
    Ok(RowLstm::new(&cfg, VarBuilder::from_buffered_safetensors(bytes, dtype, &Device::Cpu)?)?)
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
fn binary_probabilities_of_all_4x4_images_sum_to_one() -> anyhow::Result<()> {
    let total = total_probability_binary(&random_model("binary", Some((4, 4)), DType::F32)?)?;
    assert!((total - 1.0).abs() < 1e-5, "Σ p(x) over all 65,536 images = {total}");
    Ok(())
}

#[test]
fn logits_match_the_pytorch_reference() -> anyhow::Result<()> {
    for name in ["rgb", "binary"] {
        let fixture = fixture(&format!("row-lstm-random-{name}.logits.safetensors"));
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
    for (name, size) in [("rgb", (7, 6)), ("binary", (6, 5))] {
        // In float64 both paths compute the same values up to rounding far below the tolerance.
        let worst = step_mismatch(&random_model(name, Some(size), DType::F64)?, true)?;
        assert!(worst < 1e-9, "{name}: cached session vs full pass, max |Δlogit| = {worst}");
        // The sampler, in float32 as the zoo runs: the same images either way.
        let (cached, naive) = cached_and_naive_samples(&random_model(name, Some(size), DType::F32)?, 11)?;
        assert_eq!(cached, naive, "{name}: the cached sampler drew other images");
    }
    Ok(())
}

#[test]
fn the_images_do_not_depend_on_the_number_of_sampling_threads() -> anyhow::Result<()> {
    use pixel_ops::sampler::{sample, SampleOptions};
    let model = random_model("rgb", None, DType::F32)?;
    let draw = |threads| -> anyhow::Result<Vec<u8>> {
        let opts = SampleOptions { count: 5, seed: 3, threads, ..Default::default() };
        Ok(sample(&model, &opts, &mut |_, _| {})?.flatten_all()?.to_vec1::<u8>()?)
    };
    let one = draw(1)?;
    assert_eq!(one, draw(2)?, "2 threads");
    assert_eq!(one, draw(3)?, "3 threads");
    Ok(())
}
