//! Masked convolutions (paper §3.4, §4): a 'same'-padded cross-correlation whose weight is the
//! checkpoint's weight times a causal mask. The mask is multiplied in once, at load time, so a
//! checkpoint that stores unmasked values still gives a causal network.
//!
//! A layer computes only its *open taps*: the kernel positions the mask leaves open (a 3×3 mask-B
//! kernel has 5 of 9, the 7×7 mask-A kernel 24 of 49). The whole-image pass works channels-last,
//! `(b, H, W, features)`: [`open_tap_columns`] lays the open taps' inputs side by side, one row per
//! position, and one matrix product with the open taps' weights gives every output. A 1×1 layer is
//! the matrix product alone. This file holds the layer as tensor operations, which every device
//! runs; on the CPU the whole-image pass is one kernel ([`crate::kernels::masked_conv`]) and the
//! product at one position another ([`crate::kernels::row_product`]).

use candle_core::{Module, Result, Shape, Tensor};
use candle_nn::VarBuilder;

pub use crate::kernels::masked_conv::Fused;
use crate::kernels::masked_conv::HostLayer;
pub use crate::kernels::open_tap_columns::open_tap_columns;
use crate::kernels::row_product::RowProduct;
use crate::mask::{gated_mask_values, MaskKind};

/// A convolution with an optional causal mask already applied to its weight.
#[derive(Debug, Clone)]
pub struct MaskedConv2d {
    /// `(out, in, kh, kw)`, masked.
    weight: Tensor,
    /// The weight as an `(in·kh·kw, out)` matrix and the bias as `(1, out)`: the layer at one
    /// position ([`MaskedConv2d::forward_at`]) is one matrix product, row by row (the same bits for
    /// an image whatever the other images of the batch).
    matrix: RowProduct,
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
    /// The weights as host matrices for the CPU kernel ([`crate::kernels::masked_conv`]); `None`
    /// off the CPU or for dtypes other than f32 and f64.
    host: Option<HostLayer>,
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
        let open_taps: Vec<(isize, isize)> = open
            .iter()
            .map(|&t| ((t / kw) as isize - (kh / 2) as isize, (t % kw) as isize - (kw / 2) as isize))
            .collect();
        let row_bias = bias.as_ref().map(|b| b.reshape((1, out_ch))).transpose()?;
        let host = HostLayer::new(&open_taps, &tap_matrix, row_bias.as_ref(), &runs)?;
        let blocks = runs
            .into_iter()
            .filter(|&(inputs, _, _)| inputs > 0 || (kh, kw) != (1, 1))
            .map(|(inputs, start, len)| {
                let weight = matrix.narrow(0, 0, inputs)?.narrow(1, start, len)?.contiguous()?;
                Ok(OutputBlock { inputs, start, len, weight_t: weight.t()?.contiguous()?, weight })
            })
            .collect::<Result<_>>()?;
        Ok(Self { weight, matrix: RowProduct::new(&matrix)?, row_bias, open_taps, tap_matrix, blocks, host })
    }

    /// A 1×1 layer from a channels-last map to a channels-first one: `(b, H, W, in)` →
    /// `(b, out, H, W)`, contiguous, written in that layout by the matrix products themselves (no
    /// transpose); ReLU on the input first if `relu_input`. For the output stack's last layer,
    /// whose logits are wanted channels-first.
    pub fn forward_1x1_to_channels_first(&self, x: &Tensor, relu_input: bool) -> Result<Tensor> {
        if self.weight.dims()[2..] != [1, 1] {
            candle_core::bail!(
                "forward_1x1_to_channels_first is for 1x1 layers, this one is {:?}",
                &self.weight.dims()[2..]
            );
        }
        if let Some(host) = self.host_for(x) {
            return host.forward_1x1_to_channels_first(x, relu_input);
        }
        let x = if relu_input { x.relu()? } else { x.clone() };
        self.forward_1x1_to_channels_first_generic(&x)
    }

    /// The host kernel's weights, if `x` can go through it (on the CPU, in the weights' dtype).
    fn host_for(&self, x: &Tensor) -> Option<&HostLayer> {
        self.host.as_ref().filter(|_| x.device().is_cpu() && x.dtype() == self.weight.dtype())
    }

    /// The host kernel's weights (for the kernel's tests).
    #[cfg(test)]
    pub(crate) fn host_layer(&self) -> Option<&HostLayer> {
        self.host.as_ref()
    }

    /// [`MaskedConv2d::forward_1x1_to_channels_first`] from tensor operations, for every device.
    pub(crate) fn forward_1x1_to_channels_first_generic(&self, x: &Tensor) -> Result<Tensor> {
        let (b, h, w, c) = x.dims4()?;
        let out = self.tap_matrix.dim(1)?;
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
        self.forward_fused(x, Fused::default())
    }

    /// The whole-image pass, channels-last, with what `fused` folds in:
    /// `relu?(residual + layer(relu?(x)))`. On the CPU one kernel ([`crate::kernels::masked_conv`]):
    /// the input laid out a chunk at a time (ReLU on the way) or, for a 1×1 layer without ReLU on
    /// its input, read as it is; the bias and the residual taken into the products, which write
    /// straight into the output; ReLU on the output while it is in the cache.
    pub fn forward_fused(&self, x: &Tensor, fused: Fused) -> Result<Tensor> {
        if let Some(host) = self.host_for(x) {
            return host.forward_fused(x, fused);
        }
        let x = if fused.relu_input { x.relu()? } else { x.clone() };
        let y = self.forward_channels_last_generic(&x)?;
        fused.relu_output_if_asked(match fused.residual {
            Some(r) => r + y,
            None => Ok(y),
        })
    }

    /// [`MaskedConv2d::forward_channels_last`] from tensor operations, for every device.
    pub(crate) fn forward_channels_last_generic(&self, x: &Tensor) -> Result<Tensor> {
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
        let y = self.matrix.forward(&window.reshape((b, ()))?)?;
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

/// Fetches `weight` `(out, in, kh, kw)` and `bias` `(out,)` under `vb` and masks the weight.
pub fn masked_conv2d(
    kind: MaskKind,
    in_ch: usize,
    out_ch: usize,
    kernel: (usize, usize),
    colours: usize,
    vb: VarBuilder,
) -> Result<MaskedConv2d> {
    gated_masked_conv2d(kind, in_ch, out_ch, kernel, colours, 1, vb)
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
pub(crate) mod tests {
    use super::*;
    use crate::kernels::max_diff;
    use candle_core::Device;

    /// Every kind of layer the models use, and a few more: (mask, in, out, kernel, gates).
    #[allow(clippy::type_complexity)]
    pub(crate) const LAYER_SHAPES: [(Option<(MaskKind, usize)>, usize, usize, (usize, usize), usize); 10] = [
        (Some((MaskKind::A, 3)), 3, 12, (7, 7), 1),
        (Some((MaskKind::A, 1)), 1, 8, (7, 7), 1),
        (Some((MaskKind::B, 3)), 6, 6, (3, 3), 1),
        (Some((MaskKind::B, 1)), 4, 8, (1, 3), 4),
        (Some((MaskKind::B, 3)), 6, 12, (1, 1), 1),
        (Some((MaskKind::B, 3)), 7, 10, (1, 1), 1),
        (Some((MaskKind::A, 3)), 6, 9, (1, 1), 1),
        (Some((MaskKind::B, 3)), 6, 12, (1, 1), 4),
        (Some((MaskKind::B, 1)), 6, 5, (1, 1), 1),
        (None, 5, 4, (3, 3), 1),
    ];

    /// Every kernel shape the models use, masked and not, against candle's own convolution of the
    /// masked weight (which computes every tap).
    #[test]
    fn the_open_taps_give_the_full_convolution() -> Result<()> {
        let dev = Device::Cpu;
        for (mask, in_ch, out_ch, (kh, kw), gates) in LAYER_SHAPES {
            let weight = Tensor::randn(0f64, 1.0, (out_ch, in_ch, kh, kw), &dev)?;
            let bias = Tensor::randn(0f64, 1.0, out_ch, &dev)?;
            let conv = MaskedConv2d::new_gated(weight, Some(bias.clone()), mask, gates)?;
            let x = Tensor::randn(0f64, 1.0, (2, in_ch, 6, 5), &dev)?;
            let padded = x.pad_with_zeros(2, kh / 2, kh / 2)?.pad_with_zeros(3, kw / 2, kw / 2)?;
            let want = padded.conv2d(conv.weight(), 0, 1, 1, 1)?.broadcast_add(&bias.reshape((1, out_ch, 1, 1))?)?;
            let got = conv.forward(&x)?;
            assert!(max_diff(&got, &want)? < 1e-12, "{mask:?} {kh}x{kw}");
            if (kh, kw) == (1, 1) {
                let channels_first = conv.forward_1x1_to_channels_first(&x.permute((0, 2, 3, 1))?, false)?;
                assert!(max_diff(&channels_first, &want)? < 1e-12, "{mask:?} 1x1 to channels-first");
                let blocks = match (mask, gates) {
                    (Some((MaskKind::B, 3)), 1) => 3,
                    // Mask A: the red outputs read nothing (their bias alone).
                    (Some((MaskKind::A, 3)), 1) => 2,
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
