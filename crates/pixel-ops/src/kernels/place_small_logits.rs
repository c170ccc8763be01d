//! The multi-scale model's logits (paper §3.6): the small image's logits written over the big
//! stage's at the small image's pixels ([`crate::subset::Subset::place_logits`] chooses the path).

use candle_core::{Result, Tensor};

/// The generic path, for every device: the big stage's logits `big` `(b, c, levels, h, w)` with the
/// small image's `small` `(b, c, levels, h/f, w/f)` at its pixels, a new tensor. Each small logit
/// is repeated over its f×f block, and `mask` `(h, w)` (u8: 1 at the small image's pixels, the
/// subset's membership) keeps it at the block's corner only.
pub fn place_small_logits_generic(big: &Tensor, small: &Tensor, f: usize, mask: &Tensor) -> Result<Tensor> {
    let (b, c, levels, sh, sw) = small.dims5()?;
    let placed = small
        .reshape((b * c * levels, sh, 1, sw, 1))?
        .broadcast_as((b * c * levels, sh, f, sw, f))?
        .reshape((b, c, levels, sh * f, sw * f))?;
    mask.broadcast_as(placed.shape())?.where_cond(&placed, big)
}

/// The CPU kernel: writes the small image's logits `(b, c, levels, h/f, w/f)` over the big stage's
/// `(b, c, levels, h, w)` at the pixels of the small image (rows and columns that are multiples of
/// f), in place; both contiguous, f32 or f64.
pub struct PlaceSmallLogits {
    /// f.
    pub factor: usize,
}

impl PlaceSmallLogits {
    fn place<T: Copy>(&self, big: &mut [T], small: &[T], (h, w): (usize, usize), (sh, sw): (usize, usize)) {
        let f = self.factor;
        for (plane, small) in big.chunks_exact_mut(h * w).zip(small.chunks_exact(sh * sw)) {
            for (r, small_row) in small.chunks_exact(sw).enumerate() {
                let row = &mut plane[r * f * w..(r * f + 1) * w];
                for (q, &v) in small_row.iter().enumerate() {
                    row[q * f] = v;
                }
            }
        }
    }
}

impl candle_core::InplaceOp2 for PlaceSmallLogits {
    fn name(&self) -> &'static str {
        "place-small-logits"
    }

    fn cpu_fwd(
        &self,
        big: &mut candle_core::CpuStorage,
        big_layout: &candle_core::Layout,
        small: &candle_core::CpuStorage,
        small_layout: &candle_core::Layout,
    ) -> Result<()> {
        use candle_core::CpuStorage as S;
        let (b, c, levels, h, w) = big_layout.shape().dims5()?;
        let (sb, sc, sl, sh, sw) = small_layout.shape().dims5()?;
        if (sb, sc, sl, sh * self.factor, sw * self.factor) != (b, c, levels, h, w) {
            candle_core::bail!("place-small-logits: {:?} does not fit {:?}", small_layout.shape(), big_layout.shape());
        }
        let (Some((b0, b1)), Some((s0, s1))) = (big_layout.contiguous_offsets(), small_layout.contiguous_offsets())
        else {
            candle_core::bail!("place-small-logits needs contiguous logits");
        };
        match (big, small) {
            (S::F32(big), S::F32(small)) => self.place(&mut big[b0..b1], &small[s0..s1], (h, w), (sh, sw)),
            (S::F64(big), S::F64(small)) => self.place(&mut big[b0..b1], &small[s0..s1], (h, w), (sh, sw)),
            _ => candle_core::bail!("place-small-logits: f32 or f64 logits of one dtype"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// The in-place CPU kernel and the generic path give the same logits.
    #[test]
    fn small_logits_are_placed_alike_by_the_kernel_and_the_generic_path() -> Result<()> {
        let dev = Device::Cpu;
        for (f, (h, w)) in [(2, (6, 8)), (3, (9, 6))] {
            let big = Tensor::randn(0f32, 1.0, (2, 3, 5, h, w), &dev)?;
            let small = Tensor::randn(0f32, 1.0, (2, 3, 5, h / f, w / f), &dev)?;
            // The subset's membership, written out: rows and columns that are multiples of f.
            let mask: Vec<u8> = (0..h * w).map(|k| u8::from((k / w) % f == 0 && (k % w) % f == 0)).collect();
            let mask = Tensor::from_vec(mask, (h, w), &dev)?;
            let want = place_small_logits_generic(&big, &small, f, &mask)?;
            let got = big.copy()?;
            got.inplace_op2(&small, &PlaceSmallLogits { factor: f })?;
            assert_eq!(got.flatten_all()?.to_vec1::<f32>()?, want.flatten_all()?.to_vec1::<f32>()?);
            // Exactly the small image's pixels changed.
            let changed = got.ne(&big)?.to_dtype(DType::F32)?.sum_all()?.to_scalar::<f32>()?;
            assert_eq!(changed as usize, 2 * 3 * 5 * (h / f) * (w / f), "f = {f}");
        }
        Ok(())
    }
}
