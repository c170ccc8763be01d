//! Multi-scale PixelRNN (van den Oord, Kalchbrenner, Kavukcuoglu 2016, arXiv:1601.06759, §3.6): an
//! unconditional network generates a small s×s image; a conditional network generates the n×n
//! image given it. Both stages are the zoo's other architectures, chosen by the config: the small
//! stage any of PixelCNN, Row LSTM and Diagonal BiLSTM, the big stage a Row LSTM or Diagonal
//! BiLSTM built with `conditioning` (the same crates, not copies).
//!
//! # The likelihood is exact
//!
//! The small image is a subset of the big image's pixels: those whose row and column are
//! multiples of `factor` (s = n / factor), `x[::f, ::f]`. So
//!
//! ```text
//! log p(x) = log p_small(x[::f, ::f]) + Σ_{i not in the subset} log p_big(x_i | x_<i, x[::f, ::f])
//! ```
//!
//! with nothing left out and nothing bounded. The big network computes logits at every position,
//! but at the subset positions the model's logits are the small network's (those pixels are
//! already known when the big network runs); elsewhere they are the big network's. The
//! factorisation order ([`PixelModel::pixel_order`]) is the subset pixels first, in the small
//! image's raster order, then every other pixel in raster order; within a pixel R→G→B. Every tool
//! that sums per-position log-probabilities (eval, score, the causality and normalisation tests)
//! therefore sees exactly log p(x).
//!
//! # Conditioning
//!
//! The small image (centred like any network input) goes through an upsampling network,
//! [`Upsampler`]: a `factor`×`factor` transposed convolution with stride `factor` (the paper's
//! deconvolution), ReLU, a 3×3 convolution, ReLU, to a c×n×n map (c = the big stage's
//! `conditioning`). Each layer of the big network maps it with a 1×1 unmasked convolution to 4h×n×n,
//! added to its input-to-state map ([`pixel_ops::conditioning`]). The big network may see all of
//! the small image through this path, and x itself only in its own (raster) past.
//!
//! # Sampling
//!
//! The small image first (the small stage's cached session), then the big one (the big stage's
//! cached session given the upsampled map, which steps over the known subset pixels). Upscaling
//! (`pixel_ops::sampler::upscale`, through [`MultiScaleModel`]) is the second half alone: the small
//! image is given, and the small stage never runs.
//!
//! Tensor names equal the PyTorch reference's (`reference/pixelzoo_ref/multiscale.py`): `small.*`
//! (the small stage's own names), `upsample.deconv.{weight,bias}` `(colours, c, f, f)`,
//! `upsample.conv.{weight,bias}` `(c, c, 3, 3)`, `big.*` (with `….conditioning` per layer/direction).

use candle_core::{Device, IndexOp, Module, Result, Tensor};
use candle_nn::{ConvTranspose2d, VarBuilder};
use diagonal_bilstm::DiagonalBiLstm;
use pixel_ops::conv::{Fused, MaskedConv2d};
use pixel_ops::{ConditionalModel, Head, ImageSpec, InputEncoding, MultiScaleModel, PixelModel, SamplingSession};
use pixelcnn::PixelCnn;
use row_lstm::RowLstm;
use serde::{Deserialize, Serialize};

/// Why a PixelCNN cannot be the big stage.
const NOT_A_BIG_STAGE: &str = "the big stage must be a row-lstm or diagonal-bilstm, not a pixelcnn";

/// A stage's network. The small stage is unconditional, any of the three; the big stage is a
/// recurrent network whose config has `conditioning` > 0 (a PixelCNN takes no conditioning map).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "architecture")]
pub enum Stage {
    #[serde(rename = "pixelcnn")]
    PixelCnn(pixelcnn::Config),
    #[serde(rename = "row-lstm")]
    RowLstm(row_lstm::Config),
    #[serde(rename = "diagonal-bilstm")]
    DiagonalBiLstm(diagonal_bilstm::Config),
}

impl Stage {
    fn spec(&self) -> ImageSpec {
        match self {
            Stage::PixelCnn(c) => c.spec(),
            Stage::RowLstm(c) => c.spec(),
            Stage::DiagonalBiLstm(c) => c.spec(),
        }
    }

    /// c, the features of the conditioning map the network takes (0: none).
    fn conditioning(&self) -> usize {
        match self {
            Stage::PixelCnn(_) => 0,
            Stage::RowLstm(c) => c.conditioning,
            Stage::DiagonalBiLstm(c) => c.conditioning,
        }
    }

    fn build_small(&self, vb: VarBuilder) -> Result<Box<dyn PixelModel>> {
        Ok(match self {
            Stage::PixelCnn(c) => Box::new(PixelCnn::new(c, vb)?),
            Stage::RowLstm(c) => Box::new(RowLstm::new(c, vb)?),
            Stage::DiagonalBiLstm(c) => Box::new(DiagonalBiLstm::new(c, vb)?),
        })
    }

    fn build_big(&self, vb: VarBuilder) -> Result<Box<dyn ConditionalModel>> {
        Ok(match self {
            Stage::PixelCnn(_) => candle_core::bail!("{NOT_A_BIG_STAGE}"),
            Stage::RowLstm(c) => Box::new(RowLstm::new(c, vb)?),
            Stage::DiagonalBiLstm(c) => Box::new(DiagonalBiLstm::new(c, vb)?),
        })
    }
}

pixel_ops::architecture_config! {
    /// The multi-scale configuration, stored as JSON in the weights' safetensors metadata. Its
    /// `image` is the big image (n = height = width); both stages have its colour channels, and the
    /// small stage's images are `height / factor` × `width / factor`.
    pub struct Config {
        /// n / s ≥ 2: the small image holds the pixels at rows and columns that are multiples of it.
        pub factor: usize,
        pub small: Stage,
        pub big: Stage,
    }
}

impl Config {
    /// The images this configuration describes (the big ones).
    pub fn spec(&self) -> ImageSpec {
        self.image
    }

    fn check(&self) -> Result<()> {
        if matches!(self.big, Stage::PixelCnn(_)) {
            candle_core::bail!("{NOT_A_BIG_STAGE}");
        }
        if self.big.conditioning() == 0 {
            candle_core::bail!("the big stage must be conditional: give it `conditioning` = c > 0");
        }
        if self.small.conditioning() != 0 {
            candle_core::bail!("the small stage must be unconditional: give it no `conditioning`");
        }
        let f = self.factor;
        if f < 2 || !self.image.height.is_multiple_of(f) || !self.image.width.is_multiple_of(f) {
            candle_core::bail!(
                "the factor must be ≥ 2 and divide the image size {}×{}, the config says {f}",
                self.image.height,
                self.image.width
            );
        }
        let (small, big) = (self.small.spec(), self.big.spec());
        let want_small = ImageSpec { height: self.image.height / f, width: self.image.width / f, ..self.spec() };
        if small != want_small {
            candle_core::bail!("the small stage describes {small:?}, the multi-scale model needs {want_small:?}");
        }
        if big != self.spec() {
            candle_core::bail!("the big stage describes {big:?}, the multi-scale model {:?}", self.spec());
        }
        Ok(())
    }
}

/// The upsampling (deconvolution) network: small pixel values `(b, colours, s, s)` → the
/// conditioning map `(b, c, n, n)`.
#[derive(Debug, Clone)]
pub struct Upsampler {
    deconv: ConvTranspose2d,
    /// The 3×3 convolution, unmasked: the zoo's convolution layer (channels-last, one CPU kernel
    /// with the ReLUs folded in), not candle's `conv2d`, which is slow on the CPU.
    conv: MaskedConv2d,
    head: Head,
}

impl Upsampler {
    pub fn new(colours: usize, features: usize, factor: usize, head: Head, vb: VarBuilder) -> Result<Self> {
        let deconv_cfg = candle_nn::ConvTranspose2dConfig { stride: factor, ..Default::default() };
        let conv = vb.pp("conv");
        let (weight, bias) = (conv.get((features, features, 3, 3), "weight")?, conv.get(features, "bias")?);
        Ok(Self {
            deconv: candle_nn::conv_transpose2d(colours, features, factor, deconv_cfg, vb.pp("deconv"))?,
            conv: MaskedConv2d::new(weight, Some(bias), None)?,
            head,
        })
    }

    pub fn forward(&self, small: &Tensor) -> Result<Tensor> {
        let x = InputEncoding::Centred.encode(self.head, small, self.deconv.weight().dtype())?;
        let up = self.deconv.forward(&x)?.permute((0, 2, 3, 1))?;
        let y = self.conv.forward_fused(&up, Fused { relu_input: true, relu_output: true, residual: None })?;
        y.permute((0, 3, 1, 2))?.contiguous()
    }
}

/// The multi-scale PixelRNN.
pub struct MultiScale {
    cfg: Config,
    small: Box<dyn PixelModel>,
    upsample: Upsampler,
    big: Box<dyn ConditionalModel>,
    device: Device,
}

impl MultiScale {
    /// Builds both stages and the upsampler from `vb` (`small.*`, `upsample.*`, `big.*`).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.check()?;
        let (small, big) = (cfg.small.build_small(vb.pp("small"))?, cfg.big.build_big(vb.pp("big"))?);
        let features = big.conditioning_features();
        let upsample = Upsampler::new(cfg.image.channels, features, cfg.factor, cfg.image.head, vb.pp("upsample"))?;
        Ok(Self { cfg: cfg.clone(), small, upsample, big, device: vb.device().clone() })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }
}

/// Checks that `x` `(b, c, h, w)` has sides that are multiples of the factor: the small image is then
/// `(b, c, h / f, w / f)`, as the small stage takes it.
fn check_sides(x: &Tensor, f: usize) -> Result<()> {
    let (_, _, h, w) = x.dims4()?;
    if !h.is_multiple_of(f) || !w.is_multiple_of(f) {
        candle_core::bail!(
            "a multi-scale model with factor {f} takes images whose sides are multiples of {f}, got {h}×{w}"
        );
    }
    Ok(())
}

impl PixelModel for MultiScale {
    fn spec(&self) -> ImageSpec {
        self.cfg.spec()
    }

    fn device(&self) -> &Device {
        &self.device
    }

    /// The small stage's logits at the small image's pixels, the big stage's elsewhere.
    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.to_device(&self.device)?;
        check_sides(&x, self.cfg.factor)?;
        let small_x = self.small_image(&x)?;
        let small_logits = self.small.logits(&small_x)?;
        let big_logits = self.big.logits_given(&x, &self.upsample.forward(&small_x)?)?;
        self.subset().place_logits(big_logits, &small_logits)
    }

    /// The small image's pixels in its raster order, then the others in raster order.
    fn pixel_order(&self) -> Vec<(usize, usize)> {
        let (h, w) = (self.cfg.image.height, self.cfg.image.width);
        let all = (0..h).flat_map(|r| (0..w).map(move |c| (r, c)));
        let (small, rest): (Vec<_>, Vec<_>) = all.partition(|&(r, c)| self.in_small_image(r, c));
        small.into_iter().chain(rest).collect()
    }

    /// The full pass (the order is not raster order, so rows cannot be cut).
    fn step_logits(&self, x: &Tensor, row: usize, col: usize, channel: usize) -> Result<Tensor> {
        self.logits(x)?.i((.., channel, .., row, col))
    }

    fn session(&self, batch: usize) -> Result<Option<Box<dyn SamplingSession + '_>>> {
        Ok(Some(Box::new(Session {
            model: self,
            batch,
            small: self.small.session(batch)?,
            big: None,
            next_big_pixel: 0,
            skipped: Vec::new(),
        })))
    }

    fn multi_scale(&self) -> Option<&dyn MultiScaleModel> {
        Some(self)
    }
}

/// Upscaling (`pixel_ops::sampler::upscale`) and the split likelihood go through this.
impl MultiScaleModel for MultiScale {
    fn factor(&self) -> usize {
        self.cfg.factor
    }

    fn small_stage(&self) -> &dyn PixelModel {
        self.small.as_ref()
    }
}

/// The cached sampler: the small stage's session over the small image, then the big stage's
/// session given the upsampled small image, stepped over the known small-image pixels on the way.
pub struct Session<'a> {
    model: &'a MultiScale,
    batch: usize,
    small: Option<Box<dyn SamplingSession + 'a>>,
    big: Option<Box<dyn SamplingSession + 'a>>,
    /// The raster index of the next pixel the big session has not yet computed.
    next_big_pixel: usize,
    /// Values of the small image stepped over ([`SamplingSession::skip`]) and not yet given to the
    /// small stage's session, `(row, col, channel)` in the small image: given to it before its
    /// next step, never if the big stage begins first (upscaling needs no small-stage logits).
    skipped: Vec<(usize, usize, usize)>,
}

impl SamplingSession for Session<'_> {
    fn step(&mut self, x: &Tensor, row: usize, col: usize, channel: usize) -> Result<Tensor> {
        let m = self.model;
        let (f, w) = (m.cfg.factor, m.cfg.image.width);
        let x = x.to_device(&m.device)?;
        if m.in_small_image(row, col) {
            if self.big.is_some() {
                candle_core::bail!(
                    "pixel ({row},{col}) of the small image after the big stage began: steps out of order"
                );
            }
            check_sides(&x, f)?;
            let small_x = m.small_image(&x)?;
            let skipped = std::mem::take(&mut self.skipped);
            return match self.small.as_mut() {
                Some(session) => {
                    for (r, c, ch) in skipped {
                        session.step(&small_x, r, c, ch)?;
                    }
                    session.step(&small_x, row / f, col / f, channel)
                }
                None => m.small.step_logits(&small_x, row / f, col / f, channel),
            };
        }
        if self.big.is_none() {
            check_sides(&x, f)?;
            let cond = m.upsample.forward(&m.small_image(&x)?)?;
            self.big = Some(m.big.session_given(self.batch, &cond)?);
        }
        let big = self.big.as_mut().expect("created above");
        let at = row * w + col;
        // The small image's pixels before this one are known: the big session computes them too.
        while self.next_big_pixel < at {
            let (r, c) = (self.next_big_pixel / w, self.next_big_pixel % w);
            if !m.in_small_image(r, c) {
                candle_core::bail!("pixel ({row},{col}) asked before ({r},{c}): steps out of order");
            }
            big.step(&x, r, c, 0)?;
            self.next_big_pixel += 1;
        }
        if self.next_big_pixel != at {
            candle_core::bail!("pixel ({row},{col}) asked again after later pixels: steps out of order");
        }
        let logits = big.step(&x, row, col, channel)?;
        if channel + 1 == m.cfg.image.channels {
            self.next_big_pixel = at + 1;
        }
        Ok(logits)
    }

    /// A given value of the small image waits (the small stage's session needs it only if a later
    /// value of the small image is drawn); any other is stepped as usual.
    fn skip(&mut self, x: &Tensor, row: usize, col: usize, channel: usize) -> Result<()> {
        if !self.model.in_small_image(row, col) {
            return self.step(x, row, col, channel).map(|_| ());
        }
        if self.big.is_some() {
            candle_core::bail!("pixel ({row},{col}) of the small image after the big stage began: steps out of order");
        }
        let f = self.model.cfg.factor;
        self.skipped.push((row / f, col / f, channel));
        Ok(())
    }
}
