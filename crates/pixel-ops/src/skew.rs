//! Skew, unskew, mirror and the one-row shift of the Diagonal BiLSTM (paper §3.2): the one place
//! where the diagonal geometry lives.
//!
//! Skewing offsets row `r` by `r` positions, so an `H×W` map becomes `H×(W+H−1)` and each column of
//! the skewed map is one diagonal of the image: the state at skewed `(r, t)` is image pixel
//! `(r, t − r)`, its skewed neighbours `(r−1, t−1)` and `(r, t−1)` are the pixels above and to the left.
//! The right-to-left direction runs on the [`mirror`]ed map; its output, mirrored back, is
//! [`shift_down`]ed one row so that no position reads its own row from that direction.
//!
//! Maps are channels-last, `(n, H, W, c)`, as the models' whole-image passes are.

use candle_core::{Result, Tensor};

/// `(n, H, W, c)` → `(n, H, W+H−1, c)`: row `r` moved right by `r`, zeros elsewhere.
pub fn skew(z: &Tensor) -> Result<Tensor> {
    let (n, h, w, c) = z.dims4()?;
    // Pad each row to W+H, read the buffer in rows of W+H−1: row r then starts r places later.
    let flat = z.pad_with_zeros(2, 0, h)?.reshape((n, h * (w + h) * c))?;
    flat.narrow(1, 0, h * (w + h - 1) * c)?.reshape((n, h, w + h - 1, c))
}

/// The inverse of [`skew`]: `(n, H, W+H−1, c)` → `(n, H, W, c)`; output `(r, j)` is skewed `(r, r+j)`.
pub fn unskew(s: &Tensor, width: usize) -> Result<Tensor> {
    let (n, h, t, c) = s.dims4()?;
    if t != width + h - 1 {
        candle_core::bail!("unskew: a skewed map of {h} rows has {} columns for width {width}, got {t}", width + h - 1);
    }
    let flat = s.reshape((n, h * t * c))?.pad_with_zeros(1, 0, h * c)?;
    flat.reshape((n, h, t + 1, c))?.narrow(2, 0, width)
}

/// The map with its width axis reversed (dimension 2 of `(n, H, W, c)`).
pub fn mirror(x: &Tensor) -> Result<Tensor> {
    let w = x.dim(2)?;
    let reversed: Vec<u32> = (0..w as u32).rev().collect();
    x.contiguous()?.index_select(&Tensor::new(reversed.as_slice(), x.device())?, 2)
}

/// Row `r` takes row `r−1` (dimension 1 of `(n, H, W, c)`); row 0 becomes zeros; the last row is
/// dropped.
pub fn shift_down(x: &Tensor) -> Result<Tensor> {
    let h = x.dim(1)?;
    x.pad_with_zeros(1, 1, 0)?.narrow(1, 0, h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn map(h: usize, w: usize) -> Result<Tensor> {
        Tensor::arange(1f32, (h * w + 1) as f32, &Device::Cpu)?.reshape((1, h, w, 1))
    }

    /// `(1, H, W, 1)` → its `H×W` values.
    fn grid(x: &Tensor) -> Result<Vec<Vec<f32>>> {
        x.squeeze(3)?.squeeze(0)?.to_vec2::<f32>()
    }

    #[test]
    fn skew_moves_row_r_right_by_r() -> Result<()> {
        assert_eq!(grid(&skew(&map(3, 2)?)?)?, [[1., 2., 0., 0.], [0., 3., 4., 0.], [0., 0., 5., 6.]]);
        Ok(())
    }

    #[test]
    fn skew_moves_every_feature_with_its_position() -> Result<()> {
        // Two features: the second is the first plus 100; skewing keeps them together.
        let x = map(2, 3)?;
        let both = Tensor::cat(&[&x, &(&x + 100.0)?], 3)?;
        let s = skew(&both)?;
        assert_eq!(grid(&s.narrow(3, 0, 1)?)?, grid(&skew(&x)?)?);
        assert_eq!(grid(&s.narrow(3, 1, 1)?)?, [[101., 102., 103., 0.], [0., 104., 105., 106.]]);
        let back = unskew(&s, 3)?;
        assert_eq!(back.flatten_all()?.to_vec1::<f32>()?, both.flatten_all()?.to_vec1::<f32>()?);
        Ok(())
    }

    #[test]
    fn unskew_inverts_skew_for_any_shape() -> Result<()> {
        for (h, w) in [(1, 1), (3, 2), (2, 5), (4, 4)] {
            let x = map(h, w)?;
            let back = unskew(&skew(&x)?, w)?;
            assert_eq!(back.flatten_all()?.to_vec1::<f32>()?, x.flatten_all()?.to_vec1::<f32>()?, "{h}x{w}");
        }
        Ok(())
    }

    #[test]
    fn mirror_and_shift_down_by_hand() -> Result<()> {
        let x = map(2, 3)?;
        assert_eq!(grid(&mirror(&x)?)?, [[3., 2., 1.], [6., 5., 4.]]);
        assert_eq!(grid(&shift_down(&x)?)?, [[0., 0., 0.], [1., 2., 3.]]);
        Ok(())
    }
}
