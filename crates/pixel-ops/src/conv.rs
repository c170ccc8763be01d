//! Masked convolutions (paper §3.4, §4): a 'same'-padded cross-correlation whose weight is the
//! checkpoint's weight times a causal mask. The mask is multiplied in once, at load time, so a
//! checkpoint that stores unmasked values still gives a causal network.
//!
//! A layer computes only its *open taps*: the kernel positions the mask leaves open (a 3×3 mask-B
//! kernel has 5 of 9, the 7×7 mask-A kernel 24 of 49). The whole-image pass works channels-last,
//! `(b, H, W, features)`: [`open_tap_columns`] lays the open taps' inputs side by side, one row per
//! position, and one matrix product with the open taps' weights gives every output. A 1×1 layer is
//! the matrix product alone.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Module, Result, Shape, Tensor, WithDType};
use candle_nn::VarBuilder;

use crate::mask::{gated_mask_values, MaskKind};

/// A convolution with an optional causal mask already applied to its weight.
#[derive(Debug, Clone)]
pub struct MaskedConv2d {
    /// `(out, in, kh, kw)`, masked.
    weight: Tensor,
    /// The weight as an `(in·kh·kw, out)` matrix and the bias as `(1, out)`: the layer at one
    /// position ([`MaskedConv2d::forward_at`]) is one matrix product.
    matrix: Tensor,
    row_bias: Option<Tensor>,
    /// The taps the mask leaves open, as `(dy, dx)` offsets from the centre, in kernel order.
    open_taps: Vec<(isize, isize)>,
    /// The open taps' weights as a `(taps·in, out)` matrix, tap-major (row `t·in + i` is input `i`
    /// at tap `t`): it multiplies [`open_tap_columns`].
    tap_matrix: Tensor,
    /// A 1×1 layer: its outputs in blocks that each read a prefix of the inputs (a colour mask's
    /// groups: outputs of colour j read input colours ≤ j), so each block is a smaller product.
    /// One block of every input and output when the mask has no such structure.
    blocks: Vec<OutputBlock>,
}

/// Outputs `start..start + len` of a 1×1 layer, which read inputs `0..inputs` only.
#[derive(Debug, Clone)]
struct OutputBlock {
    inputs: usize,
    start: usize,
    len: usize,
    /// `(inputs, len)` and its transpose `(len, inputs)`, contiguous.
    weight: Tensor,
    weight_t: Tensor,
}

/// The blocks of a 1×1 layer from its mask values `(out, in)`: runs of outputs that read the same
/// prefix of the inputs. `None` unless every output reads a prefix and there are at most `limit`
/// runs (more, smaller products would cost more than they save).
fn prefix_runs(values: &[f32], out_ch: usize, in_ch: usize, limit: usize) -> Option<Vec<(usize, usize, usize)>> {
    let mut runs: Vec<(usize, usize, usize)> = Vec::new(); // (inputs, start, len)
    for o in 0..out_ch {
        let row = &values[o * in_ch..(o + 1) * in_ch];
        let prefix = row.iter().take_while(|&&v| v != 0.0).count();
        if row[prefix..].iter().any(|&v| v != 0.0) {
            return None;
        }
        match runs.last_mut() {
            Some(run) if run.0 == prefix => run.2 += 1,
            _ => runs.push((prefix, o, 1)),
        }
    }
    (runs.len() <= limit).then_some(runs)
}

impl MaskedConv2d {
    /// A layer from tensors: `weight` `(out, in, kh, kw)` (odd kh and kw), `bias` `(out,)`.
    /// `mask`, if any, is `(kind, colours)`; it is multiplied into the weight here.
    pub fn new(weight: Tensor, bias: Option<Tensor>, mask: Option<(MaskKind, usize)>) -> Result<Self> {
        Self::new_gated(weight, bias, mask, 1)
    }

    /// As [`MaskedConv2d::new`] for a map of `gates` output blocks (an LSTM's input-to-state map,
    /// see [`crate::mask::gated_colour_group`]).
    pub fn new_gated(
        weight: Tensor,
        bias: Option<Tensor>,
        mask: Option<(MaskKind, usize)>,
        gates: usize,
    ) -> Result<Self> {
        let (out_ch, in_ch, kh, kw) = weight.dims4()?;
        if kh % 2 == 0 || kw % 2 == 0 {
            candle_core::bail!("masked convolution kernels must have odd sizes, got {kh}x{kw}");
        }
        if gates == 0 || !out_ch.is_multiple_of(gates) {
            candle_core::bail!("{out_ch} outputs cannot be split into {gates} gate blocks");
        }
        let everything = vec![(in_ch, 0, out_ch)];
        let (weight, open, runs) = match mask {
            Some((kind, colours)) => {
                let values = gated_mask_values(kind, out_ch, in_ch, (kh, kw), colours, gates);
                let per_tap = |tap: usize| (0..out_ch * in_ch).any(|oi| values[oi * kh * kw + tap] != 0.0);
                let open: Vec<usize> = (0..kh * kw).filter(|&tap| per_tap(tap)).collect();
                let runs = match (kh, kw) {
                    (1, 1) => prefix_runs(&values, out_ch, in_ch, colours).unwrap_or(everything),
                    _ => everything,
                };
                let m = Tensor::from_vec(values, (out_ch, in_ch, kh, kw), weight.device())?.to_dtype(weight.dtype())?;
                ((weight * m)?, open, runs)
            }
            None => (weight, (0..kh * kw).collect(), everything),
        };
        let matrix = weight.reshape((out_ch, in_ch * kh * kw))?.t()?.contiguous()?;
        let ids = Tensor::from_vec(open.iter().map(|&t| t as u32).collect::<Vec<_>>(), open.len(), weight.device())?;
        let tap_matrix = weight
            .permute((2, 3, 1, 0))?
            .reshape((kh * kw, in_ch, out_ch))?
            .index_select(&ids, 0)?
            .reshape((open.len() * in_ch, out_ch))?
            .contiguous()?;
        let open_taps = open
            .iter()
            .map(|&t| ((t / kw) as isize - (kh / 2) as isize, (t % kw) as isize - (kw / 2) as isize))
            .collect();
        let row_bias = bias.as_ref().map(|b| b.reshape((1, out_ch))).transpose()?;
        let blocks = runs
            .into_iter()
            .filter(|&(inputs, _, _)| inputs > 0 || (kh, kw) != (1, 1))
            .map(|(inputs, start, len)| {
                let weight = matrix.narrow(0, 0, inputs)?.narrow(1, start, len)?.contiguous()?;
                Ok(OutputBlock { inputs, start, len, weight_t: weight.t()?.contiguous()?, weight })
            })
            .collect::<Result<_>>()?;
        Ok(Self { weight, matrix, row_bias, open_taps, tap_matrix, blocks })
    }

    /// A 1×1 layer from a channels-last map to a channels-first one: `(b, H, W, in)` →
    /// `(b, out, H, W)`, contiguous, written in that layout by the matrix products themselves (no
    /// transpose). For the output stack's last layer, whose logits are wanted channels-first.
    pub fn forward_1x1_to_channels_first(&self, x: &Tensor) -> Result<Tensor> {
        let (b, h, w, c) = x.dims4()?;
        let out = self.tap_matrix.dim(1)?;
        if self.weight.dims()[2..] != [1, 1] {
            candle_core::bail!(
                "forward_1x1_to_channels_first is for 1x1 layers, this one is {:?}",
                &self.weight.dims()[2..]
            );
        }
        let rows = x.contiguous()?.reshape((b, h * w, c))?;
        let parts = self
            .blocks
            .iter()
            .map(|block| block.weight_t.broadcast_left(b)?.matmul(&rows.narrow(2, 0, block.inputs)?.transpose(1, 2)?))
            .collect::<Result<Vec<_>>>()?;
        let y = self.assemble(parts, 1, (b, out, h * w), x)?;
        let y = match &self.row_bias {
            Some(bias) => y.broadcast_add(&bias.reshape((1, out, 1))?)?,
            None => y,
        };
        y.reshape((b, out, h, w))
    }

    /// The blocks' outputs side by side along `dim`, zeros for outputs no block has (outputs that
    /// read nothing); `shape` is the whole output's.
    fn assemble(&self, parts: Vec<Tensor>, dim: usize, shape: impl Into<Shape>, like: &Tensor) -> Result<Tensor> {
        let shape: Shape = shape.into();
        let out = shape.dims()[dim];
        if parts.len() == 1 && self.blocks[0].len == out {
            return Ok(parts.into_iter().next().expect("one part"));
        }
        let mut pieces = Vec::with_capacity(2 * parts.len() + 1);
        let mut at = 0;
        let gap = |from: usize, to: usize| -> Result<Tensor> {
            let mut dims = shape.dims().to_vec();
            dims[dim] = to - from;
            Tensor::zeros(dims, like.dtype(), like.device())
        };
        for (block, part) in self.blocks.iter().zip(parts) {
            if block.start > at {
                pieces.push(gap(at, block.start)?);
            }
            pieces.push(part);
            at = block.start + block.len;
        }
        if at < out {
            pieces.push(gap(at, out)?);
        }
        Tensor::cat(&pieces, dim)
    }

    /// The whole-image pass, channels-last: `(b, H, W, in)` → `(b, H, W, out)` (contiguous).
    pub fn forward_channels_last(&self, x: &Tensor) -> Result<Tensor> {
        let (b, h, w, c) = x.dims4()?;
        let out = self.tap_matrix.dim(1)?;
        let y = if self.open_taps.is_empty() {
            Tensor::zeros((b * h * w, out), x.dtype(), x.device())?
        } else if self.open_taps == [(0, 0)] {
            let rows = x.contiguous()?.reshape((b * h * w, c))?;
            let parts = self
                .blocks
                .iter()
                .map(|block| rows.narrow(1, 0, block.inputs)?.matmul(&block.weight))
                .collect::<Result<Vec<_>>>()?;
            self.assemble(parts, 1, (b * h * w, out), x)?
        } else {
            open_tap_columns(x, &self.open_taps)?.reshape((b * h * w, ()))?.matmul(&self.tap_matrix)?
        };
        let y = match &self.row_bias {
            Some(bias) => y.broadcast_add(bias)?,
            None => y,
        };
        y.reshape((b, h, w, out))
    }

    /// The number of taps the mask leaves open (of kh·kw).
    pub fn open_tap_count(&self) -> usize {
        self.open_taps.len()
    }

    /// The layer at one position: `window` `(b, in, kh, kw)` is the input around it (zeros where
    /// the 'same' padding would be; `(b, in)` for a 1×1 layer) → `(b, out)`. Used by the cached
    /// samplers.
    pub fn forward_at(&self, window: &Tensor) -> Result<Tensor> {
        let b = window.dim(0)?;
        let y = window.reshape((b, ()))?.matmul(&self.matrix)?;
        match &self.row_bias {
            Some(bias) => y.broadcast_add(bias),
            None => Ok(y),
        }
    }

    /// The masked weight, `(out, in, kh, kw)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

impl Module for MaskedConv2d {
    /// `(b, in, h, w)` → `(b, out, h, w)`: [`MaskedConv2d::forward_channels_last`] between two
    /// transposes (the result is a transposed view).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_channels_last(&x.permute((0, 2, 3, 1))?)?.permute((0, 3, 1, 2))
    }
}

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

/// The CPU kernel of [`open_tap_columns`].
struct OpenTapColumns {
    taps: Vec<(isize, isize)>,
}

impl OpenTapColumns {
    fn columns<T: WithDType>(&self, x: &[T], (b, h, w, c): (usize, usize, usize, usize)) -> Vec<T> {
        let t = self.taps.len();
        let mut out = vec![T::zero(); b * h * w * t * c];
        for n in 0..b {
            for y in 0..h {
                for (k, &(dy, dx)) in self.taps.iter().enumerate() {
                    let yy = y as isize + dy;
                    if yy < 0 || yy >= h as isize {
                        continue;
                    }
                    let src_row = (n * h + yy as usize) * w;
                    // Output columns whose shifted input column lies inside the image.
                    let first = (-dx).max(0) as usize;
                    let end = (w as isize - dx).min(w as isize).max(0) as usize;
                    for col in first..end {
                        let src = (src_row + (col as isize + dx) as usize) * c;
                        let dst = (((n * h + y) * w + col) * t + k) * c;
                        out[dst..dst + c].copy_from_slice(&x[src..src + c]);
                    }
                }
            }
        }
        out
    }
}

impl CustomOp1 for OpenTapColumns {
    fn name(&self) -> &'static str {
        "open-tap-columns"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let dims = layout.shape().dims4()?;
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("open-tap-columns needs a contiguous input");
        };
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(self.columns(&v[start..end], dims)),
            CpuStorage::F64(v) => CpuStorage::F64(self.columns(&v[start..end], dims)),
            CpuStorage::BF16(v) => CpuStorage::BF16(self.columns(&v[start..end], dims)),
            CpuStorage::F16(v) => CpuStorage::F16(self.columns(&v[start..end], dims)),
            other => candle_core::bail!("open-tap-columns: unsupported dtype {:?}", other.dtype()),
        };
        let (b, h, w, c) = dims;
        Ok((out, Shape::from((b, h, w, self.taps.len() * c))))
    }
}

/// Fetches `weight` `(out, in, kh, kw)` and `bias` `(out,)` under `vb` and masks the weight.
pub fn masked_conv2d(
    kind: MaskKind,
    in_ch: usize,
    out_ch: usize,
    kernel: (usize, usize),
    colours: usize,
    vb: VarBuilder,
) -> Result<MaskedConv2d> {
    let weight = vb.get((out_ch, in_ch, kernel.0, kernel.1), "weight")?;
    let bias = vb.get(out_ch, "bias")?;
    MaskedConv2d::new(weight, Some(bias), Some((kind, colours)))
}

/// As [`masked_conv2d`] for a map of `gates` output blocks of `out_ch / gates` features each.
pub fn gated_masked_conv2d(
    kind: MaskKind,
    in_ch: usize,
    out_ch: usize,
    kernel: (usize, usize),
    colours: usize,
    gates: usize,
    vb: VarBuilder,
) -> Result<MaskedConv2d> {
    let weight = vb.get((out_ch, in_ch, kernel.0, kernel.1), "weight")?;
    let bias = vb.get(out_ch, "bias")?;
    MaskedConv2d::new_gated(weight, Some(bias), Some((kind, colours)), gates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, D};

    fn max_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
        (a - b)?.abs()?.flatten_all()?.max(D::Minus1)?.to_dtype(DType::F64)?.to_scalar::<f64>()
    }

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

    /// Every kernel shape the models use, masked and not, against candle's own convolution of the
    /// masked weight (which computes every tap).
    #[test]
    fn the_open_taps_give_the_full_convolution() -> Result<()> {
        let dev = Device::Cpu;
        let cases = [
            (Some((MaskKind::A, 3)), 3, 12, (7, 7), 1),
            (Some((MaskKind::A, 1)), 1, 8, (7, 7), 1),
            (Some((MaskKind::B, 3)), 6, 6, (3, 3), 1),
            (Some((MaskKind::B, 1)), 4, 8, (1, 3), 4),
            (Some((MaskKind::B, 3)), 6, 12, (1, 1), 1),
            (Some((MaskKind::B, 3)), 7, 10, (1, 1), 1),
            (Some((MaskKind::B, 3)), 6, 12, (1, 1), 4),
            (Some((MaskKind::B, 1)), 6, 5, (1, 1), 1),
            (None, 5, 4, (3, 3), 1),
        ];
        for (mask, in_ch, out_ch, (kh, kw), gates) in cases {
            let weight = Tensor::randn(0f64, 1.0, (out_ch, in_ch, kh, kw), &dev)?;
            let bias = Tensor::randn(0f64, 1.0, out_ch, &dev)?;
            let conv = MaskedConv2d::new_gated(weight, Some(bias.clone()), mask, gates)?;
            let x = Tensor::randn(0f64, 1.0, (2, in_ch, 6, 5), &dev)?;
            let padded = x.pad_with_zeros(2, kh / 2, kh / 2)?.pad_with_zeros(3, kw / 2, kw / 2)?;
            let want = padded.conv2d(conv.weight(), 0, 1, 1, 1)?.broadcast_add(&bias.reshape((1, out_ch, 1, 1))?)?;
            let got = conv.forward(&x)?;
            assert!(max_diff(&got, &want)? < 1e-12, "{mask:?} {kh}x{kw}");
            if (kh, kw) == (1, 1) {
                let channels_first = conv.forward_1x1_to_channels_first(&x.permute((0, 2, 3, 1))?)?;
                assert!(max_diff(&channels_first, &want)? < 1e-12, "{mask:?} 1x1 to channels-first");
                let blocks = match (mask, gates) {
                    (Some((MaskKind::B, 3)), 1) => 3,
                    _ => 1,
                };
                assert_eq!(conv.blocks.len(), blocks, "{mask:?} 1x1 output blocks");
            }
            let expected_open = match mask {
                Some((MaskKind::A, 1)) => kh / 2 * kw + kw / 2,
                Some(_) => kh / 2 * kw + kw / 2 + 1,
                None => kh * kw,
            };
            assert_eq!(conv.open_tap_count(), expected_open, "{mask:?} {kh}x{kw}");
        }
        Ok(())
    }
}
