//! The discretized logistic mixture's 256 bins of one channel ([`crate::logistic_mixture`]): on the
//! CPU in f32 one fused pass per pixel, its exponentials and logarithms vectorised; elsewhere, and
//! in f64, the concept's tensor operations (`logistic_mixture::bins_generic`, the path this kernel
//! is tested against).

use candle_core::{DType, Result, Tensor};

use super::vector_math::{column_max_and_exp_sums, exp_f32, ln_f32, with_avx2};
use crate::logistic_mixture::{HALF_BIN, VALUES};

/// Whether [`mixture_bins`] takes tensors like `t`: f32 on the CPU.
pub fn applies(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

/// `(b, 256, h, w)`: the log-probabilities of a channel's 256 values under a mixture whose
/// components have means `mu`, inverse scales `inv_s` and unnormalised log-weights `weight`, each
/// `(b, K, h, w)` f32 on the CPU ([`applies`]). The same formulas as the tensor path: value 0 takes
/// log σ(z₁), value 255 −softplus(z₂₅₅), the others log σ(z_{v+1}) − softplus(z_v) + log(1 − e^{−2Δ/s}),
/// mixed by log-sum-exp over the components with the log-softmax of the weights.
pub fn mixture_bins(mu: &Tensor, inv_s: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let (b, k, h, w) = mu.dims4()?;
    for t in [inv_s, weight] {
        if t.dims() != mu.dims() {
            candle_core::bail!("mixture bins: {:?} beside means of {:?}", t.dims(), mu.dims());
        }
    }
    let read = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
    let (mu, inv_s, weight) = (read(mu)?, read(inv_s)?, read(weight)?);
    let out = with_avx2(|| bins(&mu, &inv_s, &weight, (b, k, h * w)));
    Tensor::from_vec(out, (b, VALUES, h, w), &candle_core::Device::Cpu)
}

/// The kernel on `(b, K, hw)` slices: per image and position, each component's 256 log-probabilities
/// plus its log posterior weight as one row, then the log-sum-exp of the rows value by value.
#[inline(always)]
fn bins(mu: &[f32], inv_s: &[f32], weight: &[f32], (b, k, hw): (usize, usize, usize)) -> Vec<f32> {
    let inner = VALUES - 1;
    let (step, start) = ((2.0 * HALF_BIN) as f32, (-1.0 - HALF_BIN) as f32);
    // The inner bin edges (2j − 1)/255 − 1, j = 1..=255.
    let edges: Vec<f32> = (1..VALUES).map(|j| j as f32 * step + start).collect();
    let mut out = vec![0f32; b * VALUES * hw];
    let mut rows = vec![0f32; k * VALUES];
    let (mut log_below, mut softplus) = (vec![0f32; inner], vec![0f32; inner]);
    let (mut max, mut sum) = (vec![0f32; VALUES], vec![0f32; VALUES]);
    for i in 0..b {
        for p in 0..hw {
            let at = |c: usize| (i * k + c) * hw + p;
            let max_weight = (0..k).map(|c| weight[at(c)]).fold(f32::NEG_INFINITY, f32::max);
            let log_total = (0..k).map(|c| (weight[at(c)] - max_weight).exp()).sum::<f32>().ln();
            for (c, row) in rows.chunks_exact_mut(VALUES).enumerate() {
                let (m, inv) = (mu[at(c)], inv_s[at(c)]);
                let posterior = weight[at(c)] - max_weight - log_total;
                // log(1 − e^{−a}), a = 2Δ/s, as 2t / (1 + t) with t = tanh(a / 2).
                let t = (inv * step * 0.5).tanh();
                let gap = (2.0 * t).ln() - (t + 1.0).ln();
                for ((e, below), plus) in edges.iter().zip(&mut log_below).zip(&mut softplus) {
                    let z = (e - m) * inv;
                    let tail = ln_f32(exp_f32(-z.abs()) + 1.0);
                    *below = z.min(0.0) - tail;
                    *plus = z.max(0.0) + tail;
                }
                row[0] = log_below[0] + posterior;
                for v in 1..inner {
                    row[v] = log_below[v] - softplus[v - 1] + gap + posterior;
                }
                row[inner] = posterior - softplus[inner - 1];
            }
            // The components are the rows, the values the columns.
            column_max_and_exp_sums(&rows, &mut max, &mut sum, |r, m| exp_f32(r - m));
            for (v, (&s, &m)) in sum.iter().zip(&max).enumerate() {
                out[(i * VALUES + v) * hw + p] = ln_f32(s) + m;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Result, Tensor};
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::logistic_mixture::{bins_generic, LOG_SCALE_MIN};

    /// Means, inverse scales (log-scales from the clamp at −7 to 2) and weights of `k` components
    /// at `(b, h, w)` in f64, drawn from `seed`.
    fn components(seed: u64, (b, k, h, w): (usize, usize, usize, usize)) -> Result<[Tensor; 3]> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n = b * k * h * w;
        let mut draw = |lo: f64, hi: f64| -> candle_core::Result<Tensor> {
            let v: Vec<f64> = (0..n).map(|_| rng.gen_range(lo..hi)).collect();
            Tensor::from_vec(v, (b, k, h, w), &Device::Cpu)
        };
        let (mu, log_s, weight) = (draw(-1.3, 1.3)?, draw(LOG_SCALE_MIN, 2.0)?, draw(-4.0, 4.0)?);
        Ok([mu, log_s.neg()?.exp()?, weight])
    }

    /// The kernel against the tensor path in f64, value by value, relative to the size of the
    /// log-probability (the far tails reach −10⁵, where f32 holds about 4 digits after the point).
    #[test]
    fn the_kernel_equals_the_tensor_path() -> Result<()> {
        for (seed, dims) in [(1, (3, 10, 2, 3)), (2, (2, 1, 1, 1)), (3, (1, 5, 4, 1))] {
            let [mu, inv_s, weight] = components(seed, dims)?;
            let want = bins_generic(&mu, &inv_s, &weight)?.flatten_all()?.to_vec1::<f64>()?;
            let f32s = |t: &Tensor| t.to_dtype(DType::F32);
            let got = mixture_bins(&f32s(&mu)?, &f32s(&inv_s)?, &f32s(&weight)?)?;
            assert_eq!(got.dims(), &[dims.0, VALUES, dims.2, dims.3]);
            for (i, (g, w)) in got.flatten_all()?.to_vec1::<f32>()?.iter().zip(&want).enumerate() {
                let err = (*g as f64 - w).abs();
                assert!(err <= 2e-5 * w.abs().max(1.0), "seed {seed}, value {i}: kernel {g}, tensors {w}");
            }
            // And each pixel's 256 values are a distribution.
            let total = got.exp()?.sum(1)?.flatten_all()?.to_vec1::<f32>()?;
            assert!(total.iter().all(|t| (t - 1.0).abs() < 1e-5), "{total:?}");
        }
        Ok(())
    }

    #[test]
    fn it_applies_to_f32_on_the_cpu_only() -> Result<()> {
        let t = Tensor::zeros((1, 1, 1, 1), DType::F32, &Device::Cpu)?;
        assert!(applies(&t) && !applies(&t.to_dtype(DType::F64)?));
        let bad = mixture_bins(&t, &Tensor::zeros((1, 2, 1, 1), DType::F32, &Device::Cpu)?, &t);
        assert!(bad.unwrap_err().to_string().contains("beside means"));
        Ok(())
    }
}
