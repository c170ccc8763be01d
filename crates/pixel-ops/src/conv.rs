//! Masked convolutions (paper §3.4, §4): a 'same'-padded cross-correlation whose weight is the
//! checkpoint's weight times a causal mask. The mask is multiplied in once, at load time, so a
//! checkpoint that stores unmasked values still gives a causal network.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::mask::{mask_tensor, MaskKind};

/// A convolution with an optional causal mask already applied to its weight.
#[derive(Debug, Clone)]
pub struct MaskedConv2d {
    /// `(out, in, kh, kw)`, masked.
    weight: Tensor,
    /// `(1, out, 1, 1)`, if the layer has a bias.
    bias: Option<Tensor>,
    kernel: (usize, usize),
    /// The weight as an `(in·kh·kw, out)` matrix and the bias as `(1, out)`: the layer at one
    /// position ([`MaskedConv2d::forward_at`]) is one matrix product.
    matrix: Tensor,
    row_bias: Option<Tensor>,
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
        let weight = match mask {
            Some((kind, colours)) => {
                let m = mask_tensor(kind, out_ch, in_ch, (kh, kw), colours, gates, weight.device(), weight.dtype())?;
                (weight * m)?
            }
            None => weight,
        };
        let matrix = weight.reshape((out_ch, in_ch * kh * kw))?.t()?.contiguous()?;
        let row_bias = bias.as_ref().map(|b| b.reshape((1, out_ch))).transpose()?;
        let bias = bias.map(|b| b.reshape((1, out_ch, 1, 1))).transpose()?;
        Ok(Self { weight, bias, kernel: (kh, kw), matrix, row_bias })
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
    /// `(b, in, h, w)` → `(b, out, h, w)`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (kh, kw) = self.kernel;
        let y = if (kh, kw) == (1, 1) {
            // A 1×1 layer is a matrix product over the positions (faster than candle's conv2d).
            let (b, c, h, w) = x.dims4()?;
            let rows = x.permute((0, 2, 3, 1))?.reshape((b * h * w, c))?;
            let out = self.matrix.dim(1)?;
            rows.matmul(&self.matrix)?.reshape((b, h, w, out))?.permute((0, 3, 1, 2))?
        } else if kh == kw {
            x.conv2d(&self.weight, kh / 2, 1, 1, 1)?
        } else {
            let x = x.pad_with_zeros(2, kh / 2, kh / 2)?.pad_with_zeros(3, kw / 2, kw / 2)?;
            x.conv2d(&self.weight, 0, 1, 1, 1)?
        };
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
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
