//! The LSTM gate and the state-to-state kernel (paper §3.1, §3.2): the one place where the gates
//! are computed, for the Row LSTM and the Diagonal BiLSTM alike.
//!
//! The `4h` pre-activations are, in this order, the gates o, f, i (sigmoid) and g (tanh):
//! `c = f ⊙ c_prev + i ⊙ g`, `h = o ⊙ tanh(c)`.
//!
//! A state-to-state kernel reads `k` neighbours of the previous step's state. It is computed as one
//! matrix product: the models lay the `k` neighbours' states side by side, one row per position
//! (zero outside the image), and [`tap_major`] lays the `(4h, h, k)` kernel out to match, so all
//! positions of a step (and all images of a batch) go through one product. [`lstm_cell`] then
//! updates the gates and the cell in one pass; a step of a whole-image scan and a step of a
//! sampling session are the same call on a different number of positions.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, WithDType};

use crate::vector_math::{exp_f32, with_avx2};

/// Number of gate blocks in an LSTM pre-activation map: o, f, i, g.
pub const GATES: usize = 4;

/// One LSTM cell update. `a`: pre-activations with the `4h` gate features along `dim`, in the
/// order o, f, i, g; `c_prev`: the previous cell state, with `h` features along `dim`.
/// Returns the new `(h, c)`.
pub fn lstm_update(a: &Tensor, c_prev: &Tensor, dim: usize) -> Result<(Tensor, Tensor)> {
    let h = a.dim(dim)? / GATES;
    let gate = |k: usize| a.narrow(dim, k * h, h);
    let o = candle_nn::ops::sigmoid(&gate(0)?)?;
    let f = candle_nn::ops::sigmoid(&gate(1)?)?;
    let i = candle_nn::ops::sigmoid(&gate(2)?)?;
    let g = tanh(&gate(3)?)?;
    let c = ((f * c_prev)? + (i * g)?)?;
    let h = (o * tanh(&c)?)?;
    Ok((h, c))
}

/// One LSTM cell update at `n` positions, position-major, with the pre-activations given as two
/// terms (the input-to-state and the state-to-state maps): `input` and `recurrent` `(n, 4h)`, each
/// row the gates o, f, i, g; `c_prev` `(n, h)`. Returns the new `(h, c)`, each `(n, h)`.
///
/// On the CPU one pass over memory (the sum, the gates, the cell and the output per position),
/// whose f32 sigmoid is vectorised ([`crate::vector_math::exp_f32`]; the new h and c within 1e-6 of candle's
/// ops, relative, as the tests check); in f64 it
/// gives the bits of [`lstm_update`], which the other devices run.
pub fn lstm_cell(input: &Tensor, recurrent: &Tensor, c_prev: &Tensor) -> Result<(Tensor, Tensor)> {
    let (n, four_h) = input.dims2()?;
    if recurrent.dims() != [n, four_h] || c_prev.dims() != [n, four_h / GATES] || four_h % GATES != 0 {
        candle_core::bail!(
            "lstm_cell: pre-activations {:?} and {:?} and cell {:?} do not fit (n, 4h), (n, 4h), (n, h)",
            input.dims(),
            recurrent.dims(),
            c_prev.dims()
        );
    }
    if !input.device().is_cpu() {
        return lstm_update(&(input + recurrent)?, c_prev, 1);
    }
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

/// The CPU kernel of [`lstm_cell`]: `(2, n, h)`, the new `h` then the new `c`.
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
        let range = |l: &Layout| match l.contiguous_offsets() {
            Some((start, end)) => Ok(start..end),
            None => Err(candle_core::Error::Msg("lstm-cell needs contiguous inputs".into())),
        };
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

/// tanh(x) = 2σ(2x) − 1: on the CPU candle's sigmoid is about 4× faster than its tanh (measured on
/// the gate blocks of the CIFAR-10 Diagonal BiLSTM: 0.34 → 0.09 ms), and the two agree to 2e-7.
fn tanh(x: &Tensor) -> Result<Tensor> {
    candle_nn::ops::sigmoid(&x.affine(2.0, 0.0)?)?.affine(2.0, -1.0)
}

/// A state-to-state kernel `(4h, h, k)` as the `(4h, k·h)` matrix whose transpose multiplies the
/// `k` neighbours' states side by side ([`crate::conv::open_tap_columns`], tap-major: column
/// `j·h + m` is feature `m` of neighbour `j`).
pub fn tap_major(kernel: &Tensor) -> Result<Tensor> {
    let (out, h, k) = kernel.dims3()?;
    kernel.permute((0, 2, 1))?.reshape((out, k * h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, D};

    #[test]
    fn gates_follow_the_order_o_f_i_g() -> Result<()> {
        // h = 1: a = [o, f, i, g]. Saturate o, f, i open and set g = atanh(0.5).
        let a = Tensor::new(&[[50f32], [50.], [50.], [0.5f32.atanh()]], &Device::Cpu)?;
        let c_prev = Tensor::new(&[[0.25f32]], &Device::Cpu)?;
        let (h, c) = lstm_update(&a, &c_prev, 0)?;
        let c = c.flatten_all()?.to_vec1::<f32>()?[0];
        assert!((c - 0.75).abs() < 1e-5, "c = f·c_prev + i·g = 0.25 + 0.5, got {c}");
        let h = h.flatten_all()?.to_vec1::<f32>()?[0];
        assert!((h - 0.75f32.tanh()).abs() < 1e-5);
        // Forget gate closed (f = σ(−50)), output gate closed: c = i·g, h = 0.
        let a = Tensor::new(&[[-50f32], [-50.], [50.], [0.5f32.atanh()]], &Device::Cpu)?;
        let (h, c) = lstm_update(&a, &c_prev, 0)?;
        assert!((c.flatten_all()?.to_vec1::<f32>()?[0] - 0.5).abs() < 1e-5);
        assert!(h.flatten_all()?.to_vec1::<f32>()?[0].abs() < 1e-5);
        Ok(())
    }

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

    #[test]
    fn neighbours_times_tap_major_is_the_1d_convolution() -> Result<()> {
        let dev = Device::Cpu;
        let (h, n, k) = (2usize, 5usize, 3usize);
        let x = Tensor::arange(0f32, (h * n) as f32, &dev)?.reshape((h, n))?;
        let w = Tensor::arange(0f32, (3 * h * k) as f32, &dev)?.affine(0.1, -0.5)?.reshape((3, h, k))?;
        // The n positions as one row of a channels-last map (1, 1, n, h), neighbours −1, 0, +1.
        let row = x.t()?.reshape((1, 1, n, h))?;
        let neighbours = crate::conv::open_tap_columns(&row, &[(0, -1), (0, 0), (0, 1)])?.reshape((n, k * h))?;
        let got = neighbours.matmul(&tap_major(&w)?.t()?)?.t()?;
        // conv1d with padding 1 (cross-correlation: out[p] = Σ_j w[.., j] · x[p + j − 1]).
        let want = x.unsqueeze(0)?.conv1d(&w, 1, 1, 1, 1)?.squeeze(0)?;
        let diff = (got - want)?.abs()?.max(D::Minus1)?.max(0)?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "{diff}");
        Ok(())
    }
}
