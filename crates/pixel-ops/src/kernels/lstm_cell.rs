//! The LSTM cell's CPU kernel ([`crate::lstm::lstm_cell`], paper §3.1): the two pre-activation
//! terms summed, the gates o, f, i, g, the cell and the output in one pass over memory per
//! position, its f32 sigmoid vectorised ([`exp_f32`]). The generic path is the gates as tensor
//! operations, [`crate::lstm::lstm_update`]; the test below holds the two equal.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, WithDType};

use super::contiguous;
use super::vector_math::{exp_f32, with_avx2};

/// The cell update on the CPU: `input`, `recurrent` `(n, 4h)`, `c_prev` `(n, h)` (shapes checked
/// by [`crate::lstm::lstm_cell`]) → the new `(h, c)`, each `(n, h)`.
pub(crate) fn fused_cell(input: &Tensor, recurrent: &Tensor, c_prev: &Tensor) -> Result<(Tensor, Tensor)> {
    let both = input.contiguous()?.apply_op3_no_bwd(&recurrent.contiguous()?, &c_prev.contiguous()?, &LstmCell)?;
    Ok((both.get(0)?, both.get(1)?))
}

/// A float the fused cell computes in: its logistic sigmoid.
trait CellFloat: WithDType + num_traits::Float {
    /// σ(v) = 1 / (1 + e^−v).
    fn sigmoid(v: Self) -> Self;
}

impl CellFloat for f64 {
    /// candle_nn's sigmoid, operation for operation.
    #[inline(always)]
    fn sigmoid(v: f64) -> f64 {
        ((-v).exp() + 1.0).recip()
    }
}

impl CellFloat for f32 {
    #[inline(always)]
    fn sigmoid(v: f32) -> f32 {
        (exp_f32(-v) + 1.0).recip()
    }
}

/// The CPU kernel of [`crate::lstm::lstm_cell`]: `(2, n, h)`, the new `h` then the new `c`.
struct LstmCell;

impl LstmCell {
    /// [`LstmCell::cell`], built for AVX2 when the CPU has it ([`with_avx2`]: the same
    /// operations, so the same bits, as the baseline build).
    fn cell_dispatch<T: CellFloat>(input: &[T], recurrent: &[T], c_prev: &[T], h: usize) -> Vec<T> {
        with_avx2(|| Self::cell(input, recurrent, c_prev, h))
    }

    #[inline(always)]
    fn cell<T: CellFloat>(input: &[T], recurrent: &[T], c_prev: &[T], h: usize) -> Vec<T> {
        let n = c_prev.len() / h;
        let mut out = vec![T::zero(); 2 * n * h];
        let (hs, cs) = out.split_at_mut(n * h);
        // tanh(v) = 2σ(2v) − 1, as `lstm_update`'s tanh computes it.
        let (two, zero, minus_one) = (T::from_f64(2.0), T::from_f64(0.0), T::from_f64(-1.0));
        let tanh = |v: T| T::sigmoid(v * two + zero) * two + minus_one;
        for p in 0..n {
            let (a, r) = (&input[p * 4 * h..(p + 1) * 4 * h], &recurrent[p * 4 * h..(p + 1) * 4 * h]);
            // Equal-length slices, so that the loop below has no bounds checks and vectorises.
            let gate = |k: usize| (&a[k * h..(k + 1) * h], &r[k * h..(k + 1) * h]);
            let ((ao, ro), (af, rf), (ai, ri), (ag, rg)) = (gate(0), gate(1), gate(2), gate(3));
            let c_prev = &c_prev[p * h..(p + 1) * h];
            let (hs, cs) = (&mut hs[p * h..(p + 1) * h], &mut cs[p * h..(p + 1) * h]);
            for k in 0..h {
                let o = T::sigmoid(ao[k] + ro[k]);
                let f = T::sigmoid(af[k] + rf[k]);
                let i = T::sigmoid(ai[k] + ri[k]);
                let g = tanh(ag[k] + rg[k]);
                let c = f * c_prev[k] + i * g;
                cs[k] = c;
                hs[k] = o * tanh(c);
            }
        }
        out
    }
}

impl CustomOp3 for LstmCell {
    fn name(&self) -> &'static str {
        "lstm-cell"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, h) = l3.shape().dims2()?;
        let range = |l: &Layout| contiguous(l, self.name()).map(|(start, end)| start..end);
        let (r1, r2, r3) = (range(l1)?, range(l2)?, range(l3)?);
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(a), CpuStorage::F32(r), CpuStorage::F32(c)) => {
                CpuStorage::F32(Self::cell_dispatch(&a[r1], &r[r2], &c[r3], h))
            }
            (CpuStorage::F64(a), CpuStorage::F64(r), CpuStorage::F64(c)) => {
                CpuStorage::F64(Self::cell_dispatch(&a[r1], &r[r2], &c[r3], h))
            }
            _ => candle_core::bail!("lstm-cell: f32 or f64 inputs of one dtype, got {:?}", s1.dtype()),
        };
        Ok((out, Shape::from((2, n, h))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lstm::{lstm_cell, lstm_update};
    use candle_core::{DType, Device};

    /// The fused kernel equals the generic path on values from tiny to saturating: in f32 to
    /// within its vectorised sigmoid's rounding, in f64 to the bit.
    #[test]
    fn the_fused_cell_equals_the_generic_update() -> Result<()> {
        let dev = Device::Cpu;
        let (n, h) = (37usize, 21usize);
        let scale =
            Tensor::new(&[0.01f32, 1.0, 4.0, 30.0, 100.0], &dev)?.repeat(n * 4 * h / 5 + 1)?.narrow(0, 0, n * 4 * h)?;
        let input = (Tensor::randn(0f32, 1.0, n * 4 * h, &dev)? * &scale)?.reshape((n, 4 * h))?;
        let recurrent = Tensor::randn(0f32, 2.0, (n, 4 * h), &dev)?;
        let c_prev = Tensor::randn(0f32, 3.0, (n, h), &dev)?;
        let (h1, c1) = lstm_cell(&input, &recurrent, &c_prev)?;
        let (h2, c2) = lstm_update(&(&input + &recurrent)?, &c_prev, 1)?;
        for (got, want, what) in [(&h1, &h2, "h"), (&c1, &c2, "c")] {
            let (got, want) = (got.flatten_all()?.to_vec1::<f32>()?, want.flatten_all()?.to_vec1::<f32>()?);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{what}: {g} against {w}");
            }
        }
        // f64: the same bits (the normalisation tests run in f64).
        let (input, recurrent, c_prev) =
            (input.to_dtype(DType::F64)?, recurrent.to_dtype(DType::F64)?, c_prev.to_dtype(DType::F64)?);
        let (h1, c1) = lstm_cell(&input, &recurrent, &c_prev)?;
        let (h2, c2) = lstm_update(&(&input + &recurrent)?, &c_prev, 1)?;
        assert_eq!(h1.to_vec2::<f64>()?, h2.to_vec2::<f64>()?);
        assert_eq!(c1.to_vec2::<f64>()?, c2.to_vec2::<f64>()?);
        Ok(())
    }

    #[test]
    fn the_f32_sigmoid_saturates() {
        assert_eq!(<f32 as CellFloat>::sigmoid(200.0), 1.0);
        assert!(<f32 as CellFloat>::sigmoid(-200.0) < 1e-37);
        assert!((<f32 as CellFloat>::sigmoid(0.0) - 0.5).abs() < 1e-7);
    }
}
