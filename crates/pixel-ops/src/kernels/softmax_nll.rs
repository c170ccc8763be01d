//! The 256-way softmax's negative log-likelihood (paper §2.3, [`crate::head::Head::nll_per_value`]):
//! on the CPU one pass per colour plane; elsewhere candle's log-softmax and gather.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor, WithDType};

use super::contiguous;
use super::vector_math::{column_max_and_exp_sums, exp_f32, with_avx2};

/// Negative log-likelihood in nats of each value under a softmax over `levels`: `logits`
/// `(b, c, levels, h, w)`, `x` `(b, c, h, w)` pixel values → `(b, c, h, w)`, in the logits' dtype.
/// On the CPU the kernel [`SoftmaxNll`]; on other devices [`softmax_nll_generic`].
pub fn softmax_nll(logits: &Tensor, x: &Tensor) -> Result<Tensor> {
    if logits.device().is_cpu() {
        let x = x.to_dtype(DType::U32)?.contiguous()?;
        return logits.contiguous()?.apply_op2_no_bwd(&x, &SoftmaxNll);
    }
    softmax_nll_generic(logits, x)
}

/// [`softmax_nll`] from tensor operations, for every device: −log_softmax(logits)[x].
fn softmax_nll_generic(logits: &Tensor, x: &Tensor) -> Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, 2)?;
    let idx = x.to_dtype(DType::U32)?.unsqueeze(2)?;
    logp.gather(&idx, 2)?.squeeze(2)?.neg()
}

/// The CPU kernel of [`softmax_nll`]: logits `(b, c, levels, h, w)`
/// and pixel values `(b, c, h, w)` (u32) → `(b, c, h, w)`. One pass per colour plane: the running
/// maximum and the sum of exponentials of every position together (the levels are `h·w` apart in
/// memory), in f64; for f32 logits, each exponential in f32 ([`exp_f32`], vectorised, within 1
/// ulp) and their sum in f64.
struct SoftmaxNll;

/// A float the softmax NLL kernel reads: e^(v − max) for a logit `v` at or below the maximum.
trait SoftmaxFloat: WithDType + num_traits::Float {
    fn exp_below_max(v: Self, max: Self) -> f64;
}

impl SoftmaxFloat for f64 {
    #[inline(always)]
    fn exp_below_max(v: f64, max: f64) -> f64 {
        (v - max).exp()
    }
}

impl SoftmaxFloat for f32 {
    /// In f32 ([`exp_f32`], vectorised), summed in f64.
    #[inline(always)]
    fn exp_below_max(v: f32, max: f32) -> f64 {
        exp_f32(v - max) as f64
    }
}

impl SoftmaxNll {
    /// The maxima in the logits' type (exact), the sums and the rest in f64; built for AVX2 when
    /// the CPU has it ([`with_avx2`]).
    fn nll<T: SoftmaxFloat>(z: &[T], x: &[u32], (planes, levels, hw): (usize, usize, usize)) -> Result<Vec<T>> {
        with_avx2(|| {
            let mut out = Vec::with_capacity(planes * hw);
            let (mut max, mut sum) = (vec![T::zero(); hw], vec![0f64; hw]);
            for k in 0..planes {
                let plane = &z[k * levels * hw..(k + 1) * levels * hw];
                // The levels are the rows, the positions the columns.
                column_max_and_exp_sums(plane, &mut max, &mut sum, T::exp_below_max);
                for (p, &value) in x[k * hw..(k + 1) * hw].iter().enumerate() {
                    if value as usize >= levels {
                        candle_core::bail!("pixel value {value} is not one of the {levels} levels");
                    }
                    let nll = sum[p].ln() + max[p].to_f64() - plane[value as usize * hw + p].to_f64();
                    out.push(<T as WithDType>::from_f64(nll));
                }
            }
            Ok(out)
        })
    }
}

impl CustomOp2 for SoftmaxNll {
    fn name(&self) -> &'static str {
        "softmax-nll"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let dims = l1.shape().dims();
        let [b, c, levels, h, w] = dims else {
            candle_core::bail!("softmax-nll: logits (b, c, levels, h, w), got {dims:?}")
        };
        if l2.shape().dims() != [*b, *c, *h, *w] {
            candle_core::bail!("softmax-nll: pixel values {:?} do not fit logits {dims:?}", l2.shape().dims());
        }
        let ((s, e), (xs, xe)) = (contiguous(l1, self.name())?, contiguous(l2, self.name())?);
        let CpuStorage::U32(x) = s2 else { candle_core::bail!("softmax-nll: u32 pixel values, got {:?}", s2.dtype()) };
        let shape = (b * c, *levels, h * w);
        let out = match s1 {
            CpuStorage::F32(z) => CpuStorage::F32(Self::nll(&z[s..e], &x[xs..xe], shape)?),
            CpuStorage::F64(z) => CpuStorage::F64(Self::nll(&z[s..e], &x[xs..xe], shape)?),
            other => candle_core::bail!("softmax-nll: f32 or f64 logits, got {:?}", other.dtype()),
        };
        Ok((out, Shape::from((*b, *c, *h, *w))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The kernel on f32 logits from tiny to large equals the generic path run in f64, to within
    /// the f32 exponentials' rounding; a value beyond the levels is an error.
    #[test]
    fn the_cpu_softmax_nll_equals_log_softmax_and_gather() -> Result<()> {
        let dev = Device::Cpu;
        let (b, c, h, w) = (3, 3, 4, 5);
        let z = (Tensor::randn(0f32, 1.0, (b, c, 256, h, w), &dev)? * 20.0)?;
        let x = Tensor::rand(0f32, 256.0, (b, c, h, w), &dev)?.floor()?.to_dtype(DType::U8)?;
        let fused = softmax_nll(&z, &x)?;
        assert_eq!(fused.dims(), &[b, c, h, w]);
        let want = softmax_nll_generic(&z.to_dtype(DType::F64)?, &x)?;
        for (got, want) in fused.flatten_all()?.to_vec1::<f32>()?.iter().zip(want.flatten_all()?.to_vec1::<f64>()?) {
            assert!((*got as f64 - want).abs() < 2e-6 * want.abs().max(1.0), "{got} vs {want}");
        }
        let bad = Tensor::zeros((b, c, 1, h, w), DType::F32, &dev)?;
        assert!(softmax_nll(&bad, &x).is_err(), "a value beyond the levels is an error");
        Ok(())
    }
}
