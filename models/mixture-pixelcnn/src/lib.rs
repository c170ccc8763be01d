//! A small, local PixelCNN with the discretized logistic mixture head of PixelCNN++ (Salimans et
//! al. 2017, arXiv:1701.05517, §2.1–2.2), built for fast lossless coding as the small models of
//! NeLLoC (Zhang et al. 2021): one k×k convolution whose mask closes the whole current pixel, a
//! few residual blocks of 1×1 convolutions, and a 1×1 convolution to the mixture's parameters.
//!
//! The channels of a pixel are conditioned on each other by the head (PixelCNN++'s means linear in
//! the earlier sub-pixels, [`pixel_ops::logistic_mixture`]), not by colour masks, so the network
//! runs once per pixel: the cached [`Session`] computes a pixel's parameters at its first channel
//! and reuses them for the others. The receptive field is the k×k window's causal half.
//!
//! Tensor names equal the PyTorch reference's (`reference/pixelzoo_ref/nets/mixture_pixelcnn.py`):
//! `input_conv.*`, `blocks.{i}.{inner,outer}.*`, `params.*`.

use candle_core::{Device, IndexOp, Result, Tensor};
use candle_nn::VarBuilder;
use pixel_ops::conv::{masked_conv2d, Fused, MaskedConv2d};
use pixel_ops::logistic_mixture::{channel_log_probs, channel_log_probs_of, log_likelihood, param_count};
use pixel_ops::network::causal_window;
use pixel_ops::{Head, ImageSpec, InputEncoding, InputStack, MaskKind, PixelModel, SamplingSession};

pixel_ops::architecture_config! {
    /// The mixture PixelCNN's configuration, stored as JSON in the weights' safetensors metadata;
    /// its head is `logistic-mixture`.
    pub struct Config {
        /// Features f of the residual stream.
        pub hidden: usize,
        /// Number of residual blocks of 1×1 convolutions.
        pub layers: usize,
        /// Size k of the first, mask-A, convolution: the receptive field.
        pub input_kernel: usize,
        /// Mixture components K.
        pub components: usize,
    }
}

impl Config {
    /// The images this configuration describes.
    pub fn spec(&self) -> ImageSpec {
        self.image
    }

    /// Channels of the network's output: the mixture's parameters, K·(1 + 2C + C(C−1)/2).
    pub fn params(&self) -> usize {
        param_count(self.components, self.image.channels)
    }

    /// How far (rows up, columns either side) a pixel's parameters can see: ⌊input_kernel/2⌋.
    pub fn receptive_radius(&self) -> usize {
        self.input_kernel / 2
    }
}

/// A residual block of 1×1 convolutions: f →ReLU→ 1×1 (`inner`) →ReLU→ 1×1 (`outer`) → f, plus
/// the input.
#[derive(Debug, Clone)]
pub struct PointwiseBlock {
    inner: MaskedConv2d,
    outer: MaskedConv2d,
}

impl PointwiseBlock {
    /// Tensors `inner.{weight,bias}` and `outer.{weight,bias}` `(f, f, 1, 1)`, `(f,)` under `vb`.
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let f = cfg.hidden;
        // A 1×1 layer with one colour group and mask B is an unmasked 1×1 convolution.
        Ok(Self {
            inner: masked_conv2d(MaskKind::B, f, f, (1, 1), 1, vb.pp("inner"))?,
            outer: masked_conv2d(MaskKind::B, f, f, (1, 1), 1, vb.pp("outer"))?,
        })
    }

    /// Channels-last: `(b, H, W, f)` → `(b, H, W, f)`.
    pub fn forward_channels_last(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.inner.forward_fused(x, Fused { relu_input: true, relu_output: true, residual: None })?;
        self.outer.forward_fused(&y, Fused { residual: Some(x), ..Fused::default() })
    }

    /// At one position: `(b, f)` → `(b, f)`.
    pub fn forward_at(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.inner.forward_at(&x.relu()?)?.relu()?;
        x + self.outer.forward_at(&y)?
    }
}

/// The mixture PixelCNN.
#[derive(Debug, Clone)]
pub struct MixturePixelCnn {
    cfg: Config,
    /// The inputs centred, then the k×k convolution.
    input: InputStack,
    blocks: Vec<PointwiseBlock>,
    params: MaskedConv2d,
}

impl MixturePixelCnn {
    /// Builds the network from `vb`; the input convolution's mask is multiplied in here.
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.image.check_channels("The mixture PixelCNN")?;
        if cfg.image.head != Head::LogisticMixture {
            candle_core::bail!("the mixture PixelCNN's head is logistic-mixture, the config says {:?}", cfg.image.head);
        }
        if cfg.components == 0 || cfg.input_kernel.is_multiple_of(2) {
            candle_core::bail!(
                "the mixture PixelCNN needs components ≥ 1 and an odd input_kernel, the config says {} and {}",
                cfg.components,
                cfg.input_kernel
            );
        }
        let (f, k) = (cfg.hidden, cfg.input_kernel);
        // One colour group: mask A closes the centre tap for every channel (the whole pixel).
        let input = InputStack::with_colour_groups(cfg.spec(), InputEncoding::Centred, f, k, 1, vb.clone())?;
        let blocks =
            (0..cfg.layers).map(|i| PointwiseBlock::new(cfg, vb.pp("blocks").pp(i))).collect::<Result<Vec<_>>>()?;
        let params = masked_conv2d(MaskKind::B, f, cfg.params(), (1, 1), 1, vb.pp("params"))?;
        Ok(Self { cfg: cfg.clone(), input, blocks, params })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The mixture's parameters: pixel values `(b, c, H, W)` → `(b, P, H, W)` with
    /// P = [`Config::params`] (layout in [`pixel_ops::logistic_mixture`]).
    pub fn mixture_params(&self, x: &Tensor) -> Result<Tensor> {
        let mut y = self.input.forward_channels_last(x)?;
        for block in &self.blocks {
            y = block.forward_channels_last(&y)?;
        }
        self.params.forward_1x1_to_channels_first(&y, true)
    }

    /// The mixture's parameters at `(row, col)` only, `(b, P)`, from the pixel values `x`
    /// `(b, c, H, W)` around it (values at and after the position are ignored).
    pub fn mixture_params_at(&self, x: &Tensor, row: usize, col: usize) -> Result<Tensor> {
        let mut y = self.input.forward_at(x, row, col)?;
        for block in &self.blocks {
            y = block.forward_at(&y)?;
        }
        self.params.forward_at(&y.relu()?)
    }

    /// Channel `channel`'s 256 log-probabilities `(b, 256)` at one pixel from its parameters
    /// `params` `(b, P)` and the pixel's values `pixel` `(b, c)` (only channels before `channel`
    /// are read).
    fn pixel_log_probs(&self, params: &Tensor, pixel: &Tensor, channel: usize) -> Result<Tensor> {
        let (b, p) = params.dims2()?;
        let c = self.cfg.image.channels;
        let x = pixel.to_device(self.input.device())?.reshape((b, c, 1, 1))?;
        channel_log_probs_of(&params.reshape((b, p, 1, 1))?, &x, self.cfg.components, channel)?.i((.., .., 0, 0))
    }
}

/// The cached sampler: a pixel's mixture parameters are computed once, at its first channel
/// (they depend on earlier pixels only), and reused for its later channels, which differ only in
/// the earlier sub-pixels the head conditions on.
pub struct Session<'a> {
    model: &'a MixturePixelCnn,
    /// The pixel whose parameters are held, and those parameters `(b, P)`.
    current: Option<((usize, usize), Tensor)>,
}

impl<'a> Session<'a> {
    pub fn new(model: &'a MixturePixelCnn) -> Self {
        Self { model, current: None }
    }
}

impl SamplingSession for Session<'_> {
    fn step(&mut self, x: &Tensor, row: usize, col: usize, channel: usize) -> Result<Tensor> {
        let params = match &self.current {
            Some((at, params)) if *at == (row, col) && channel > 0 => params.clone(),
            _ => {
                if channel != 0 {
                    candle_core::bail!("the session starts pixel ({row}, {col}) at channel {channel}, not 0");
                }
                let params = self.model.mixture_params_at(x, row, col)?;
                self.current = Some(((row, col), params.clone()));
                params
            }
        };
        self.model.pixel_log_probs(&params, &x.i((.., .., row, col))?, channel)
    }
}

impl PixelModel for MixturePixelCnn {
    fn spec(&self) -> ImageSpec {
        self.cfg.spec()
    }

    fn device(&self) -> &Device {
        self.input.device()
    }

    /// Each channel's 256 log-probabilities given the earlier sub-pixels of its pixel
    /// ([`channel_log_probs`]): `(b, c, 256, H, W)`. They are normalised, so the softmax over the
    /// level axis that the likelihood and the sampler take leaves them as they are.
    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        channel_log_probs(&self.mixture_params(x)?, &x.to_device(self.input.device())?, self.cfg.components)
    }

    /// −log p(x) from the mixture's joint probability of each pixel's channels
    /// ([`log_likelihood`]), without the 256 bins of every value that [`PixelModel::logits`]
    /// gives: equal to the sum of their conditionals up to rounding, at a small part of the memory
    /// (the bins of a batch of 50 CIFAR-10 images hold 39M values per component).
    fn nll(&self, x: &Tensor) -> Result<Tensor> {
        log_likelihood(&self.mixture_params(x)?, &x.to_device(self.input.device())?, self.cfg.components)?.neg()
    }

    /// Runs the network on the window that the parameters at `(row, col)` can see: rows
    /// `row−r..=row` and columns `col−r..=col+r` (r = ⌊input_kernel/2⌋), clipped to the image; then
    /// the head at that one pixel.
    fn step_logits(&self, x: &Tensor, row: usize, col: usize, channel: usize) -> Result<Tensor> {
        let (window, top, left) = causal_window(x, row, col, self.cfg.receptive_radius())?;
        let params = self.mixture_params(&window)?.i((.., .., row - top, col - left))?;
        self.pixel_log_probs(&params, &x.i((.., .., row, col))?, channel)
    }

    fn session(&self, batch: usize) -> Result<Option<Box<dyn SamplingSession + '_>>> {
        let _ = batch;
        Ok(Some(Box::new(Session::new(self))))
    }
}
