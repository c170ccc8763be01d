//! The small image of the multi-scale PixelRNN (paper §3.6): the pixels whose row and column are
//! multiples of the factor f, `x[::f, ::f]` as the PyTorch reference writes it
//! (`reference/pixelzoo_ref/multiscale.py`). Its sides are therefore rounded up, `⌈h / f⌉ × ⌈w / f⌉`
//! (a multi-scale model's sides are multiples of f, where that is `h / f × w / f`).
//!
//! Membership, extraction, placement and enlargement, for tensors `(b, c, h, w)` and for row-major
//! host images `(c, h, w)` (`u8` pixels, or any `Copy` value per pixel such as a drawing frame).

use candle_core::{Device, IndexOp, Result, Tensor};

use crate::kernels::place_small_logits::{place_small_logits_generic, PlaceSmallLogits};

/// The subset `x[::f, ::f]` of an image's pixels for a factor f ≥ 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subset {
    factor: usize,
}

impl Subset {
    /// The subset of factor `factor`, which must be ≥ 1 (a multi-scale model's is ≥ 2).
    pub fn new(factor: usize) -> Self {
        Self { factor }
    }

    /// f.
    pub fn factor(&self) -> usize {
        self.factor
    }

    /// Whether pixel `(row, col)` belongs to the small image.
    pub fn contains(&self, row: usize, col: usize) -> bool {
        row.is_multiple_of(self.factor) && col.is_multiple_of(self.factor)
    }

    /// The small image's size for an image of `height` × `width` pixels: `(⌈h / f⌉, ⌈w / f⌉)`.
    pub fn small_size(&self, height: usize, width: usize) -> (usize, usize) {
        (height.div_ceil(self.factor), width.div_ceil(self.factor))
    }

    /// Membership of every pixel of an `height` × `width` image as a `(h, w)` u8 tensor: 1 in the
    /// small image, 0 elsewhere.
    pub fn mask(&self, height: usize, width: usize, device: &Device) -> Result<Tensor> {
        let mask: Vec<u8> = (0..height * width).map(|k| u8::from(self.contains(k / width, k % width))).collect();
        Tensor::from_vec(mask, (height, width), device)
    }

    /// The small image of `x` `(b, c, h, w)`: `x[:, :, ::f, ::f]`, `(b, c, ⌈h / f⌉, ⌈w / f⌉)`.
    pub fn extract(&self, x: &Tensor) -> Result<Tensor> {
        let f = self.factor;
        let (b, c, h, w) = x.dims4()?;
        if h.is_multiple_of(f) && w.is_multiple_of(f) {
            // Each f×f block's corner: one copy of a strided view.
            return x.contiguous()?.reshape((b, c, h / f, f, w / f, f))?.i((.., .., .., 0, .., 0))?.contiguous();
        }
        let rows = Tensor::arange_step(0u32, h as u32, f as u32, x.device())?;
        let cols = Tensor::arange_step(0u32, w as u32, f as u32, x.device())?;
        x.index_select(&rows, 2)?.index_select(&cols, 3)
    }

    /// The small image of a host image `(c, h, w)` (row-major): `(c, ⌈h / f⌉, ⌈w / f⌉)`.
    pub fn extract_values<T: Copy>(&self, image: &[T], (c, h, w): (usize, usize, usize)) -> Vec<T> {
        let f = self.factor;
        let (sh, sw) = self.small_size(h, w);
        (0..c * sh * sw)
            .map(|k| (k / (sh * sw), k / sw % sh, k % sw))
            .map(|(ch, y, x)| image[(ch * h + y * f) * w + x * f])
            .collect()
    }

    /// Writes the small image `small` `(c, ⌈h / f⌉, ⌈w / f⌉)` into the host image `image` `(c, h, w)` at
    /// its pixels; the other pixels are left as they are.
    pub fn place_values<T: Copy>(&self, small: &[T], image: &mut [T], (c, h, w): (usize, usize, usize)) {
        let f = self.factor;
        let (sh, sw) = self.small_size(h, w);
        for ch in 0..c {
            for y in 0..sh {
                for x in 0..sw {
                    image[(ch * h + y * f) * w + x * f] = small[(ch * sh + y) * sw + x];
                }
            }
        }
    }

    /// The small image `small` `(c, ⌈h / f⌉, ⌈w / f⌉)` enlarged f× by repetition (nearest neighbour) to
    /// `(c, h, w)`: pixel `(y, x)` takes the value of its f×f block's corner.
    pub fn enlarge_values<T: Copy>(&self, small: &[T], (c, h, w): (usize, usize, usize)) -> Vec<T> {
        let f = self.factor;
        let (sh, sw) = self.small_size(h, w);
        (0..c * h * w)
            .map(|k| (k / (h * w), k / w % h, k % w))
            .map(|(ch, y, x)| small[(ch * sh + y / f) * sw + x / f])
            .collect()
    }

    /// The logits of a multi-scale model: the small image's `small` `(b, c, levels, ⌈h / f⌉, ⌈w / f⌉)`
    /// at its pixels, `big` `(b, c, levels, h, w)` elsewhere. On the CPU written over `big` in place
    /// ([`PlaceSmallLogits`]; `big` must then be shared with nothing, as a pass's own output is);
    /// elsewhere a selection.
    pub fn place_logits(&self, big: Tensor, small: &Tensor) -> Result<Tensor> {
        if big.device().is_cpu() && big.is_contiguous() && big.dtype() == small.dtype() {
            big.inplace_op2(&small.contiguous()?, &PlaceSmallLogits { factor: self.factor })?;
            return Ok(big);
        }
        let f = self.factor;
        let mask = self.mask(small.dim(3)? * f, small.dim(4)? * f, big.device())?;
        place_small_logits_generic(&big, small, f, &mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PyTorch reference's `x[::f, ::f]`, written out: rows and columns 0, f, 2f, … below the
    /// side, so a side that f does not divide is rounded up.
    #[test]
    fn the_small_image_is_every_fth_row_and_column_rounded_up() -> Result<()> {
        let dev = Device::Cpu;
        for (f, (h, w)) in [(2, (4, 6)), (2, (5, 7)), (3, (7, 6)), (1, (3, 2))] {
            let s = Subset::new(f);
            let image: Vec<u32> = (0..2 * h * w).map(|v| v as u32).collect();
            let want: Vec<u32> = (0..2)
                .flat_map(|ch| {
                    (0..h).step_by(f).flat_map(move |y| (0..w).step_by(f).map(move |x| ((ch * h + y) * w + x) as u32))
                })
                .collect();
            assert_eq!(s.small_size(h, w), (h.div_ceil(f), w.div_ceil(f)));
            assert_eq!(s.extract_values(&image, (2, h, w)), want, "f = {f}, {h}×{w}");
            let t = Tensor::from_vec(image.clone(), (1, 2, h, w), &dev)?;
            assert_eq!(s.extract(&t)?.flatten_all()?.to_vec1::<u32>()?, want, "tensor, f = {f}, {h}×{w}");
            let member: Vec<bool> = (0..h * w).map(|k| s.contains(k / w, k % w)).collect();
            let mask = s.mask(h, w, &dev)?.flatten_all()?.to_vec1::<u8>()?;
            assert_eq!(mask.iter().map(|&m| m == 1).collect::<Vec<_>>(), member);
            assert_eq!(member.iter().filter(|&&m| m).count(), want.len() / 2);
        }
        Ok(())
    }

    /// Placing a small image and extracting it again gives it back, and leaves the other pixels;
    /// enlarging gives every pixel its block corner's value.
    #[test]
    fn placement_and_enlargement_agree_with_extraction() {
        for (f, (h, w)) in [(2, (4, 6)), (3, (7, 5))] {
            let s = Subset::new(f);
            let (sh, sw) = s.small_size(h, w);
            let small: Vec<u8> = (0..3 * sh * sw).map(|v| v as u8 + 1).collect();
            let mut image = vec![0u8; 3 * h * w];
            s.place_values(&small, &mut image, (3, h, w));
            assert_eq!(s.extract_values(&image, (3, h, w)), small);
            assert_eq!(image.iter().filter(|&&v| v != 0).count(), small.len());
            let big = s.enlarge_values(&small, (3, h, w));
            for (k, &v) in big.iter().enumerate() {
                let (ch, y, x) = (k / (h * w), k / w % h, k % w);
                assert_eq!(v, image[(ch * h + y / f * f) * w + x / f * f], "f = {f} at ({ch}, {y}, {x})");
            }
        }
    }
}
