//! The input stack (paper §4, step 1): pixel values → the network's input encoding → the 7×7
//! mask-A convolution, for the whole image at once or, in a sampling session, at one position from
//! the window of pixels around it. Every architecture starts with it.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;

use crate::conv::{masked_conv2d, MaskedConv2d};
use crate::head::{Head, InputEncoding};
use crate::mask::MaskKind;
use crate::model::ImageSpec;

/// The input encoding and the mask-A convolution: `input_conv.{weight,bias}`
/// `(features, channels, k, k)`, `(features,)`.
#[derive(Debug, Clone)]
pub struct InputStack {
    conv: MaskedConv2d,
    encoding: InputEncoding,
    head: Head,
    kernel: usize,
    device: Device,
}

impl InputStack {
    /// The stack of a network of `spec` images whose residual stream has `features` features; the
    /// convolution is `kernel`×`kernel` (7 in the paper); `vb` is the network's (the tensors are
    /// under `input_conv`).
    pub fn new(
        spec: ImageSpec,
        encoding: InputEncoding,
        features: usize,
        kernel: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        Self::with_colour_groups(spec, encoding, features, kernel, spec.channels, vb)
    }

    /// As [`InputStack::new`], with the colour groups of mask A given: `spec.channels` (each
    /// channel reads the earlier channels of the current pixel), or 1 (mask A closes the centre tap
    /// for every channel, so no feature reads the current pixel: for a network whose head
    /// conditions the channels of a pixel on each other, as the logistic mixture's does).
    pub fn with_colour_groups(
        spec: ImageSpec,
        encoding: InputEncoding,
        features: usize,
        kernel: usize,
        groups: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let c = spec.channels;
        let conv = masked_conv2d(MaskKind::A, c, features, (kernel, kernel), groups, vb.pp("input_conv"))?;
        Ok(Self { conv, encoding, head: spec.head, kernel, device: vb.device().clone() })
    }

    /// The dtype of the weights (and so of every activation).
    pub fn dtype(&self) -> DType {
        self.conv.weight().dtype()
    }

    /// The device of the weights.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Pixel values `(b, c, H, W)` (any dtype, any device) → the network input encoded.
    pub fn encode(&self, x: &Tensor) -> Result<Tensor> {
        self.encoding.encode(self.head, &x.to_device(&self.device)?, self.dtype())
    }

    /// Pixel values `(b, c, H, W)` → the first layer's input channels-last, `(b, H, W, features)`.
    pub fn forward_channels_last(&self, x: &Tensor) -> Result<Tensor> {
        self.conv.forward_channels_last(&self.encode(x)?.permute((0, 2, 3, 1))?)
    }

    /// The first layer's input at `(row, col)` only, `(b, features)`, from the pixel values `x`
    /// `(b, c, H, W)` around it (the convolution's taps at and after the position are masked, so
    /// values there are ignored).
    pub fn forward_at(&self, x: &Tensor, row: usize, col: usize) -> Result<Tensor> {
        let x = x.to_device(&self.device)?;
        let k = self.kernel;
        self.conv.forward_at(&window(&x, row, col, (k, k), |t| self.encoding.encode(self.head, t, self.dtype()))?)
    }
}

/// The input window of a `kh×kw` convolution centred at `(row, col)` of pixel values `x`
/// `(b, c, h, w)`, passed through `encode` (the network's input encoding), zero where it leaves the
/// image: `(b, c, kh, kw)`.
fn window(
    x: &Tensor,
    row: usize,
    col: usize,
    (kh, kw): (usize, usize),
    encode: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let (ry, rx) = (kh / 2, kw / 2);
    let (top, left) = (row.saturating_sub(ry), col.saturating_sub(rx));
    let (bottom, right) = ((row + ry + 1).min(h), (col + rx + 1).min(w));
    let inside = encode(&x.narrow(2, top, bottom - top)?.narrow(3, left, right - left)?)?;
    inside.pad_with_zeros(2, ry - (row - top), (row + ry + 1) - bottom)?.pad_with_zeros(
        3,
        rx - (col - left),
        (col + rx + 1) - right,
    )
}
