//! Multi-scale checks: causality in the multi-scale order (the conditioning path included),
//! normalisation on a 4×4 binary image (so the likelihood is exact), reference logits from the
//! PyTorch reference (`reference/pixelzoo_ref/fixtures.py`), the sampling step and the cached
//! session, with every inner architecture as a stage.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use multiscale::{Config, MultiScale};
use pixel_ops::testing::{
    cached_and_naive_samples, causality_violations, compare_with_reference, random_images, step_mismatch,
    total_probability_binary, weights_with_config,
};
use pixel_ops::PixelModel;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(name)
}

/// The random-weight reference model `name`: `rgb` (Row LSTM small stage, Diagonal BiLSTM big
/// stage, 6×6 RGB), `binary` (Diagonal BiLSTM → Row LSTM, 4×4), `pixelcnn` (PixelCNN → Diagonal
/// BiLSTM, 6×6 binary).
fn random_model(name: &str, dtype: DType) -> anyhow::Result<MultiScale> {
    let (cfg, bytes): (Config, _) = weights_with_config(&fixture(&format!("multiscale-random-{name}.safetensors")))?;
    Ok(MultiScale::new(&cfg, VarBuilder::from_buffered_safetensors(bytes, dtype, &Device::Cpu)?)?)
}

const ALL: [&str; 3] = ["rgb", "binary", "pixelcnn"];

#[test]
fn the_order_is_the_small_image_first_then_the_rest_in_raster_order() -> anyhow::Result<()> {
    let order = random_model("binary", DType::F32)?.pixel_order();
    let want = [(0, 0), (0, 2), (2, 0), (2, 2), (0, 1), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3), (2, 1), (2, 3)];
    assert_eq!(&order[..12], &want);
    assert_eq!(order.len(), 16);
    Ok(())
}

#[test]
fn every_stage_combination_is_causal_in_the_multiscale_order() -> anyhow::Result<()> {
    for name in ALL {
        let v = causality_violations(&random_model(name, DType::F32)?, &[1, 2])?;
        assert!(v.is_empty(), "{name}: {} violations, first: {:?}", v.len(), &v[..v.len().min(5)]);
    }
    Ok(())
}

/// The big network sees the small image through the conditioning path, including its pixels
/// *after* the predicted one in raster order, which the big network's own masked path cannot see:
/// the upsampler's 3×3 convolution gives position (r, q) the small-image pixel at
/// (⌈r/2⌉·2, ⌈q/2⌉·2), so changing that pixel must change the logits at (r, q) whenever it lies
/// after (r, q) (causality, checked above, says nothing else may leak).
#[test]
fn the_conditioning_path_reaches_small_image_pixels_ahead() -> anyhow::Result<()> {
    for name in ALL {
        let model = random_model(name, DType::F64)?;
        let s = model.spec();
        let (h, w, c) = (s.height, s.width, s.channels);
        let x = random_images(&model, 1, 7)?.to_dtype(DType::U8)?;
        let base = model.logits(&x)?;
        let values = s.head.values() as u16;
        let mut checked = 0;
        for r in 0..h {
            for q in 0..w {
                let ahead = (r.div_ceil(2) * 2, q.div_ceil(2) * 2);
                if model.in_small_image(r, q) || ahead.0 >= h || ahead.1 >= w {
                    continue;
                }
                let mut px = x.flatten_all()?.to_vec1::<u8>()?;
                for ch in 0..c {
                    let k = (ch * h + ahead.0) * w + ahead.1;
                    px[k] = ((px[k] as u16 + values / 2) % values) as u8;
                }
                let changed = model.logits(&Tensor::from_vec(px, (1, c, h, w), &Device::Cpu)?)?;
                let d = (base.i((.., .., .., r, q))? - changed.i((.., .., .., r, q))?)?.abs()?.flatten_all()?.max(0)?;
                let d = d.to_scalar::<f64>()?;
                assert!(d > 0.0, "{name}: the logits at ({r},{q}) do not see the small image's pixel {ahead:?}");
                checked += 1;
            }
        }
        assert_eq!(checked, (h - 1) * (w - 1) - (h / 2) * (w / 2), "{name}: pixels checked");
    }
    Ok(())
}

#[test]
fn binary_probabilities_of_all_4x4_images_sum_to_one() -> anyhow::Result<()> {
    let total = total_probability_binary(&random_model("binary", DType::F64)?)?;
    assert!((total - 1.0).abs() < 1e-9, "Σ p(x) over all 65,536 images = {total}");
    let total = total_probability_binary(&random_model("binary", DType::F32)?)?;
    assert!((total - 1.0).abs() < 1e-5, "float32: Σ p(x) over all 65,536 images = {total}");
    Ok(())
}

#[test]
fn logits_match_the_pytorch_reference() -> anyhow::Result<()> {
    for name in ALL {
        let fixture = fixture(&format!("multiscale-random-{name}.logits.safetensors"));
        let d = compare_with_reference(&random_model(name, DType::F64)?, &fixture)?;
        assert!(d.max_abs_logit < 1e-4, "{name} f64: max |Δlogit| = {}", d.max_abs_logit);
        assert!(d.max_rel_nll < 1e-9, "{name} f64: max relative |ΔNLL| = {}", d.max_rel_nll);
        let d = compare_with_reference(&random_model(name, DType::F32)?, &fixture)?;
        assert!(d.max_rel_logit < 1e-5, "{name} f32: max |Δlogit| / scale = {}", d.max_rel_logit);
        assert!(d.max_rel_nll < 1e-5, "{name} f32: max relative |ΔNLL| = {}", d.max_rel_nll);
    }
    Ok(())
}

#[test]
fn the_cached_session_equals_the_full_pass_and_samples_the_same_images() -> anyhow::Result<()> {
    for name in ALL {
        let worst = step_mismatch(&random_model(name, DType::F64)?, true)?;
        assert!(worst < 1e-9, "{name}: cached session vs full pass, max |Δlogit| = {worst}");
        let (cached, naive) = cached_and_naive_samples(&random_model(name, DType::F32)?, 11)?;
        assert_eq!(cached, naive, "{name}: the cached sampler drew other images");
    }
    Ok(())
}

#[test]
fn steps_out_of_order_are_an_error() -> anyhow::Result<()> {
    let model = random_model("binary", DType::F32)?;
    let x = random_images(&model, 1, 1)?;
    let mut session = model.session(1)?.expect("a session");
    // (0, 1) is outside the small image: asking it first skips the small stage's pixels (0, 2), …
    session.step(&x, 0, 0, 0)?;
    session.step(&x, 0, 1, 0)?;
    assert!(session.step(&x, 0, 2, 0).is_err(), "a small-image pixel after the big stage began");
    Ok(())
}
