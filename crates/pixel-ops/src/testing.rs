//! Property checks every architecture's tests run (causality, normalisation, reference logits).
//! They live here, once, and take any [`PixelModel`].

use std::path::Path;

use candle_core::{DType, Device, IndexOp, Tensor};

use crate::head::Head;
use crate::model::PixelModel;

/// The order of a value in the factorisation: raster order of pixels, then R, G, B.
fn order(row: usize, col: usize, ch: usize, w: usize, c: usize) -> usize {
    (row * w + col) * c + ch
}

/// Checks causality on a random `(1, c, h, w)` input drawn from `seed`: for each input value, it is
/// changed and the logits recomputed. Any logit that changes must come after that value in the
/// factorisation order (later pixel, or same pixel and later channel); every logit but the first
/// must change for some earlier input; and every input but the last must change some logit.
/// Returns a description of every violation (empty: causal).
pub fn causality_violations(model: &dyn PixelModel, seed: u64) -> candle_core::Result<Vec<String>> {
    let s = model.spec();
    let (c, h, w) = (s.channels, s.height, s.width);
    let n = c * h * w;
    let values = s.head.values() as u64;
    // A fixed pseudo-random image (SplitMix64, so no RNG dependency is needed here).
    let base: Vec<u8> = (0..n as u64).map(|k| (crate::data::splitmix64(seed, k) % values) as u8).collect();
    let logits_of = |px: &[u8]| -> candle_core::Result<Vec<f32>> {
        let x = Tensor::from_slice(px, (1, c, h, w), model.device())?;
        // (1, c, levels, h, w) → per (ch, level, row, col)
        model.logits(&x)?.to_dtype(DType::F32)?.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()
    };
    let reference = logits_of(&base)?;
    let levels = s.head.levels();
    let mut depends_on_something = vec![false; n];
    let mut violations = Vec::new();
    for ch_in in 0..c {
        for r_in in 0..h {
            for c_in in 0..w {
                let mut px = base.clone();
                let k = (ch_in * h + r_in) * w + c_in;
                px[k] = ((px[k] as u64 + values / 2) % values) as u8;
                let changed = logits_of(&px)?;
                let mut affects_any = false;
                for ch_out in 0..c {
                    for r_out in 0..h {
                        for c_out in 0..w {
                            let moved = (0..levels).any(|l| {
                                let i = ((ch_out * levels + l) * h + r_out) * w + c_out;
                                reference[i] != changed[i]
                            });
                            if !moved {
                                continue;
                            }
                            affects_any = true;
                            let (src, dst) = (order(r_in, c_in, ch_in, w, c), order(r_out, c_out, ch_out, w, c));
                            if src >= dst {
                                violations.push(format!(
                                    "logit of channel {ch_out} at ({r_out},{c_out}) depends on channel {ch_in} at ({r_in},{c_in})"
                                ));
                            } else {
                                depends_on_something[dst] = true;
                            }
                        }
                    }
                }
                if !affects_any && order(r_in, c_in, ch_in, w, c) != n - 1 {
                    violations.push(format!("changing channel {ch_in} at ({r_in},{c_in}) changes no logit"));
                }
            }
        }
    }
    for (dst, &dep) in depends_on_something.iter().enumerate().skip(1) {
        if !dep {
            let (pixel, ch) = (dst / c, dst % c);
            violations.push(format!(
                "logit of channel {ch} at ({},{}) depends on no earlier input",
                pixel / w,
                pixel % w
            ));
        }
    }
    Ok(violations)
}

/// Σ over every possible binary image of p(x): must be 1. Only for Bernoulli models of at most
/// 20 pixels (2^20 images, scored in batches of 4096).
pub fn total_probability_binary(model: &dyn PixelModel) -> candle_core::Result<f64> {
    let s = model.spec();
    assert_eq!(s.head, Head::Bernoulli, "normalisation by enumeration needs a binary model");
    let n = s.dims();
    assert!(n <= 20, "{n} binary values: too many images to enumerate");
    let count = 1usize << n;
    let mut total = 0f64;
    for start in (0..count).step_by(4096) {
        let b = 4096.min(count - start);
        let px: Vec<u8> = (start..start + b).flat_map(|img| (0..n).map(move |k| ((img >> k) & 1) as u8)).collect();
        let x = Tensor::from_vec(px, (b, s.channels, s.height, s.width), model.device())?;
        let nll = model.nll(&x)?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        total += nll.iter().map(|v| (-v).exp()).sum::<f64>();
    }
    Ok(total)
}

/// Compares a model with reference logits from the PyTorch reference: the fixture file holds
/// `input` (n, c, h, w) u8, `logits` (m, c, levels, r, w) for the first m images and rows, and
/// `nll` (n,) nats. Returns (max |Δlogit|, max relative |Δnll|).
pub fn compare_with_reference(model: &dyn PixelModel, fixture: &Path) -> candle_core::Result<(f32, f64)> {
    let t = candle_core::safetensors::load(fixture, &Device::Cpu)?;
    let get = |k: &str| {
        t.get(k).cloned().ok_or_else(|| candle_core::Error::Msg(format!("{}: no tensor '{k}'", fixture.display())))
    };
    let (input, want_logits, want_nll) = (get("input")?, get("logits")?, get("nll")?);
    let x = input.to_device(model.device())?;
    let logits = model.logits(&x)?.to_device(&Device::Cpu)?;
    let (m, _, _, rows, _) = want_logits.dims5()?;
    let got = logits.i((0..m, .., .., 0..rows, ..))?;
    let max_logit = (got - &want_logits)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    let nll = model.nll(&x)?.to_dtype(DType::F64)?.to_device(&Device::Cpu)?.to_vec1::<f64>()?;
    let want = want_nll.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    let max_rel = nll.iter().zip(&want).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0f64, f64::max);
    Ok((max_logit, max_rel))
}
