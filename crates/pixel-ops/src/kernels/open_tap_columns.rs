//! The open taps' inputs side by side (the left side of a masked convolution's product, paper §3.4,
//! and the neighbours of a state-to-state product, §3.1): one pass of copies on the CPU, padded and
//! shifted views elsewhere.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, WithDType};

use super::contiguous;

/// The inputs of the open taps side by side: `x` `(b, H, W, c)` → `(b, H, W, taps·c)`, where
/// columns `t·c..(t+1)·c` at `(y, x)` hold `x` at `(y + dy_t, x + dx_t)`, zero outside the image.
/// On the CPU one pass of copies; on other devices the same from padded, shifted views.
pub fn open_tap_columns(x: &Tensor, taps: &[(isize, isize)]) -> Result<Tensor> {
    if x.device().is_cpu() {
        return x.contiguous()?.apply_op1_no_bwd(&OpenTapColumns { taps: taps.to_vec() });
    }
    open_tap_columns_generic(x, taps)
}

/// [`open_tap_columns`] from tensor operations, for every device.
fn open_tap_columns_generic(x: &Tensor, taps: &[(isize, isize)]) -> Result<Tensor> {
    let (_, h, w, _) = x.dims4()?;
    let reach = |pick: fn(&(isize, isize)) -> isize| {
        let lo = taps.iter().map(pick).min().unwrap_or(0).min(0).unsigned_abs();
        let hi = taps.iter().map(pick).max().unwrap_or(0).max(0) as usize;
        (lo, hi)
    };
    let ((top, bottom), (left, right)) = (reach(|t| t.0), reach(|t| t.1));
    let padded = x.pad_with_zeros(1, top, bottom)?.pad_with_zeros(2, left, right)?;
    let shifted = taps
        .iter()
        .map(|&(dy, dx)| {
            padded.narrow(1, (top as isize + dy) as usize, h)?.narrow(2, (left as isize + dx) as usize, w)?.contiguous()
        })
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&shifted, 3)
}

/// Calls `copy(position, tap, source, len)` for every tap `(dy, dx)` of `taps` and every run of
/// `len` positions of an image row of `b` images of `h`×`w` (positions numbered `(n·h + y)·w + x`)
/// whose shifted inputs lie inside the image: `source` is the position of the first one's input
/// (the run's are consecutive). The others are left alone (the 'same' padding: zeros).
fn for_each_tap_source(
    taps: &[(isize, isize)],
    (b, h, w): (usize, usize, usize),
    mut copy: impl FnMut(usize, usize, usize, usize),
) {
    for image_row in 0..b * h {
        let (n, y) = (image_row / h, image_row % h);
        for (t, &(dy, dx)) in taps.iter().enumerate() {
            let yy = y as isize + dy;
            // Output columns whose shifted input column lies inside the image.
            let first = ((-dx).max(0) as usize).min(w);
            let end = (w as isize - dx).clamp(first as isize, w as isize) as usize;
            if yy >= 0 && yy < h as isize && end > first {
                let src = (n * h + yy as usize) * w + (first as isize + dx) as usize;
                copy(image_row * w + first, t, src, end - first);
            }
        }
    }
}

/// The CPU kernel of [`open_tap_columns`].
struct OpenTapColumns {
    taps: Vec<(isize, isize)>,
}

impl OpenTapColumns {
    fn columns<T: WithDType>(&self, x: &[T], (b, h, w, c): (usize, usize, usize, usize)) -> Vec<T> {
        let t = self.taps.len();
        let mut out = vec![T::zero(); b * h * w * t * c];
        for_each_tap_source(&self.taps, (b, h, w), |at, k, src, len| {
            for i in 0..len {
                let dst = ((at + i) * t + k) * c;
                out[dst..dst + c].copy_from_slice(&x[(src + i) * c..(src + i + 1) * c]);
            }
        });
        out
    }
}

impl CustomOp1 for OpenTapColumns {
    fn name(&self) -> &'static str {
        "open-tap-columns"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let dims = layout.shape().dims4()?;
        let name = self.name();
        let (start, end) = contiguous(layout, name)?;
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(self.columns(&v[start..end], dims)),
            CpuStorage::F64(v) => CpuStorage::F64(self.columns(&v[start..end], dims)),
            CpuStorage::BF16(v) => CpuStorage::BF16(self.columns(&v[start..end], dims)),
            CpuStorage::F16(v) => CpuStorage::F16(self.columns(&v[start..end], dims)),
            other => candle_core::bail!("{name}: unsupported dtype {:?}", other.dtype()),
        };
        let (b, h, w, c) = dims;
        Ok((out, Shape::from((b, h, w, self.taps.len() * c))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::max_diff;
    use candle_core::Device;

    #[test]
    fn the_cpu_columns_equal_the_generic_ones() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 5, 6, 3), &dev)?;
        let taps = [(-3, -3), (-1, 2), (0, -1), (0, 0), (-2, 0), (0, 4)];
        let cpu = open_tap_columns(&x, &taps)?;
        assert_eq!(cpu.dims(), &[2, 5, 6, 18]);
        assert_eq!(max_diff(&cpu, &open_tap_columns_generic(&x, &taps)?)?, 0.0);
        Ok(())
    }
}
