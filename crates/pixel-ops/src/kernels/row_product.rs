//! Matrix products whose rows are computed each on its own: row `i` of `x · W` depends on row `i`
//! of `x` alone, to the bit, however many rows `x` has.
//!
//! The cached samplers step one position of every image of a part at once, and the sampler splits
//! a batch into parts ([`crate::sampler`]); a seed must draw the same images whatever that split.
//! `gemm` (under candle's CPU matrix product) picks its kernels and blocking by the number of rows,
//! so a row can round differently in a batch of another size, and one draw in many thousands falls
//! on a boundary that the last bit moves. The layers' products at one position
//! ([`crate::conv::MaskedConv2d::forward_at`]) and the LSTMs' state-to-state products go through
//! [`RowProduct`] instead.
//!
//! On the CPU (f32, f64) every output is one chain of fused multiply-adds over `k` in order, from
//! zero, in every code path (register blocks of 4 or 2 rows × 32 columns, the rows left over one at
//! a time, the last columns in a block padded with zeros), so neither the blocking nor the vector
//! width changes a bit; on x86-64 the kernel is also compiled for AVX-512 and for AVX2 + FMA and
//! picks a build at run time. Elsewhere (GPUs, other dtypes) it is candle's matrix product.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};

/// A right-hand matrix `(k, n)` for products row by row.
#[derive(Debug, Clone)]
pub struct RowProduct {
    /// `(k, n)`, contiguous.
    matrix: Tensor,
    host: Option<HostWeights>,
}

/// The matrix in panels of [`PANEL`] columns, each `(k, PANEL)` row-major, the last padded with
/// zeros: the kernel streams one panel for a block of rows.
#[derive(Debug, Clone)]
enum HostWeights {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

/// Columns per panel (and per register block).
const PANEL: usize = 32;

/// `w` `(k, n)` row-major in panels of [`PANEL`] columns.
fn panels<T: Copy + Default>(w: &[T], k: usize, n: usize) -> Vec<T> {
    let count = n.div_ceil(PANEL);
    let mut out = vec![T::default(); count * k * PANEL];
    for (p, panel) in out.chunks_exact_mut((k * PANEL).max(1)).enumerate().take(count) {
        for (kk, row) in panel.chunks_exact_mut(PANEL).enumerate() {
            let cols = (n - p * PANEL).min(PANEL);
            row[..cols].copy_from_slice(&w[kk * n + p * PANEL..][..cols]);
        }
    }
    out
}

impl RowProduct {
    /// From `matrix` `(k, n)`.
    pub fn new(matrix: &Tensor) -> Result<Self> {
        let matrix = matrix.contiguous()?;
        let (k, n) = matrix.dims2()?;
        let host = match (matrix.device().is_cpu(), matrix.dtype()) {
            (true, DType::F32) => Some(HostWeights::F32(panels(&matrix.flatten_all()?.to_vec1()?, k, n))),
            (true, DType::F64) => Some(HostWeights::F64(panels(&matrix.flatten_all()?.to_vec1()?, k, n))),
            _ => None,
        };
        Ok(Self { matrix, host })
    }

    /// The matrix `(k, n)`.
    pub fn matrix(&self) -> &Tensor {
        &self.matrix
    }

    /// `x` `(m, k)` → `x · W` `(m, n)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.host {
            Some(weights) if x.device().is_cpu() && x.dtype() == self.matrix.dtype() => {
                let (k, n) = self.matrix.dims2()?;
                x.contiguous()?.apply_op1_no_bwd(&RowPass { weights, k, n })
            }
            _ => x.matmul(&self.matrix),
        }
    }
}

/// The CPU op: `(m, k)` contiguous → `(m, n)`.
struct RowPass<'a> {
    weights: &'a HostWeights,
    k: usize,
    n: usize,
}

impl CustomOp1 for RowPass<'_> {
    fn name(&self) -> &'static str {
        "row-product"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (m, k) = layout.shape().dims2()?;
        if k != self.k {
            candle_core::bail!("row product: the input has {k} columns, the matrix {} rows", self.k);
        }
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("row product: the input is not contiguous");
        };
        let out = match (storage, self.weights) {
            (CpuStorage::F32(x), HostWeights::F32(w)) => CpuStorage::F32(product(&x[start..end], w, m, k, self.n)),
            (CpuStorage::F64(x), HostWeights::F64(w)) => CpuStorage::F64(product(&x[start..end], w, m, k, self.n)),
            _ => candle_core::bail!("row product: the input's dtype is not the matrix's"),
        };
        Ok((out, Shape::from((m, self.n))))
    }
}

/// A float with a fused multiply-add.
trait Fma: Copy + Default {
    /// `self · b + c`, rounded once.
    fn fma(self, b: Self, c: Self) -> Self;
}

impl Fma for f32 {
    #[inline(always)]
    fn fma(self, b: Self, c: Self) -> Self {
        self.mul_add(b, c)
    }
}

impl Fma for f64 {
    #[inline(always)]
    fn fma(self, b: Self, c: Self) -> Self {
        self.mul_add(b, c)
    }
}

/// `x` `(m, k)` · the panels of `(k, n)`: in the AVX-512 build (blocks of 4 rows) or the AVX2 +
/// FMA build (blocks of 2 rows) where the CPU has it, otherwise the target's own.
fn product<T: Fma>(x: &[T], w: &[T], m: usize, k: usize, n: usize) -> Vec<T> {
    #[cfg(target_arch = "x86_64")]
    {
        /// # Safety
        /// The CPU must have AVX-512F and FMA.
        #[target_feature(enable = "avx512f,fma")]
        unsafe fn avx512<T: Fma>(x: &[T], w: &[T], m: usize, k: usize, n: usize) -> Vec<T> {
            product_in_order::<T, 4>(x, w, m, k, n)
        }
        /// # Safety
        /// The CPU must have AVX2 and FMA.
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<T: Fma>(x: &[T], w: &[T], m: usize, k: usize, n: usize) -> Vec<T> {
            product_in_order::<T, 2>(x, w, m, k, n)
        }
        let fma = std::arch::is_x86_feature_detected!("fma");
        if fma && std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F and FMA.
            return unsafe { avx512(x, w, m, k, n) };
        }
        if fma && std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { avx2(x, w, m, k, n) };
        }
    }
    product_in_order::<T, 2>(x, w, m, k, n)
}

/// The product, each output the chain `fma(x[i,k-1], w[k-1,j], … fma(x[i,0], w[0,j], 0))`: blocks
/// of `R` rows, then the rows left one at a time, each against every panel.
#[inline(always)]
fn product_in_order<T: Fma, const R: usize>(x: &[T], w: &[T], m: usize, k: usize, n: usize) -> Vec<T> {
    let count = n.div_ceil(PANEL);
    assert!(x.len() == m * k && w.len() == count * k * PANEL, "row product: (m, k) · (k, n) with m={m}, k={k}, n={n}");
    let mut out = vec![T::default(); m * n];
    if k == 0 {
        return out;
    }
    let mut block = vec![[T::default(); R]; k];
    let mut i = 0;
    while i + R <= m {
        rows_times_panels::<T, R>(&x[i * k..(i + R) * k], w, k, n, &mut block, &mut out[i * n..(i + R) * n]);
        i += R;
    }
    let mut single = vec![[T::default(); 1]; k];
    for i in i..m {
        rows_times_panels::<T, 1>(&x[i * k..(i + 1) * k], w, k, n, &mut single, &mut out[i * n..(i + 1) * n]);
    }
    out
}

/// `R` rows of `x` (`(R, k)`) times every panel, into `out` `(R, n)`; `rows_by_k` (`k` long) is
/// scratch for the rows laid out k-major (column kk of the R rows side by side).
#[inline(always)]
fn rows_times_panels<T: Fma, const R: usize>(
    x: &[T],
    w: &[T],
    k: usize,
    n: usize,
    rows_by_k: &mut [[T; R]],
    out: &mut [T],
) {
    for (kk, r) in rows_by_k.iter_mut().enumerate() {
        *r = std::array::from_fn(|q| x[q * k + kk]);
    }
    for (p, panel) in w.chunks_exact(k * PANEL).enumerate() {
        let mut acc = [[T::default(); PANEL]; R];
        for (w_row, a) in panel.chunks_exact(PANEL).zip(rows_by_k.iter()) {
            let w_row: &[T; PANEL] = w_row.try_into().expect("a panel row");
            for (acc_row, &a) in acc.iter_mut().zip(a) {
                for (v, &b) in acc_row.iter_mut().zip(w_row) {
                    *v = a.fma(b, *v);
                }
            }
        }
        let cols = (n - p * PANEL).min(PANEL);
        for (q, acc_row) in acc.iter().enumerate() {
            out[q * n + p * PANEL..][..cols].copy_from_slice(&acc_row[..cols]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, D};

    fn matrix(rows: usize, cols: usize, seed: u64, dtype: DType) -> Result<Tensor> {
        let values: Vec<f64> = (0..rows * cols)
            .map(|i| {
                let h = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed.wrapping_mul(0xBF58_476D_1CE4_E5B9);
                (h >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
            })
            .collect();
        Tensor::from_vec(values, (rows, cols), &Device::Cpu)?.to_dtype(dtype)
    }

    /// Every row of a product of m rows is, to the bit, that row's product alone, for row counts
    /// on both sides of the register block and column counts with and without leftovers.
    #[test]
    fn a_row_is_the_same_bits_in_a_product_of_any_number_of_rows() -> Result<()> {
        for dtype in [DType::F32, DType::F64] {
            for (k, n) in [(240, 48), (48, 96), (192, 768), (7, 5), (33, 17), (1, 16)] {
                let w = RowProduct::new(&matrix(k, n, 1, dtype)?)?;
                let x = matrix(13, k, 2, dtype)?;
                let each: Vec<Tensor> = (0..13).map(|i| w.forward(&x.narrow(0, i, 1)?)).collect::<Result<_>>()?;
                for m in 1..=13 {
                    let y = w.forward(&x.narrow(0, 0, m)?)?;
                    for (i, alone) in each.iter().enumerate().take(m) {
                        let a = alone.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
                        let b = y.narrow(0, i, 1)?.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
                        assert!(
                            a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()),
                            "{dtype:?} k={k} n={n}: row {i} of {m} rows differs from the row alone"
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// The product is the matrix product (to rounding), against candle's in f64.
    #[test]
    fn the_row_product_is_the_matrix_product() -> Result<()> {
        for dtype in [DType::F32, DType::F64] {
            for (m, k, n) in [(1, 240, 48), (9, 48, 96), (4, 192, 768), (6, 7, 5), (0, 3, 4), (3, 0, 4)] {
                let (x, w) = (matrix(m, k, 3, dtype)?, matrix(k, n, 4, dtype)?);
                let got = RowProduct::new(&w)?.forward(&x)?.to_dtype(DType::F64)?;
                let want = x.to_dtype(DType::F64)?.matmul(&w.to_dtype(DType::F64)?)?;
                assert_eq!(got.dims(), [m, n]);
                if m * n > 0 {
                    let diff = (got - want)?.abs()?.flatten_all()?.max(D::Minus1)?.to_scalar::<f64>()?;
                    let tol = if dtype == DType::F32 { 1e-5 * k as f64 } else { 1e-12 * k as f64 };
                    assert!(diff <= tol, "{dtype:?} ({m}, {k}, {n}): {diff}");
                }
            }
        }
        Ok(())
    }
}
