//! Gated PixelCNN (van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves, Kavukcuoglu 2016,
//! "Conditional Image Generation with PixelCNN Decoders", arXiv:1606.05328, §2.1–2.3), optionally
//! class-conditional. Two stacks remove the PixelCNN's blind spot:
//!
//! - the vertical stack sees the rows above only: an n×n convolution under mask V-A on the image,
//!   V-B on the vertical features after ([`pixel_ops::mask`]);
//! - the horizontal stack sees the current row to the left: 1×n convolutions under mask A, then B,
//!   the colour rule at the centre tap;
//! - each layer links the vertical stack into the horizontal one: a 1×1 convolution of the vertical
//!   pre-activations (2p → 2p) added to the horizontal pre-activations;
//! - both stacks go through gated units tanh ⊙ σ ([`pixel_ops::gate`]); the horizontal stack is
//!   residual from the second layer on, h ← h + 1×1(y);
//! - with `classes` C > 0, every gated unit adds a learned bias of the image's class
//!   ([`pixel_ops::class_conditional::ClassBias`]); the network is then a
//!   [`ClassConditionalModel`], whose plain [`PixelModel`] methods describe the marginal over the
//!   classes.
//!
//! Then the PixelCNN's output stack and head ([`OutputStack`]).
//!
//! Tensor names equal the PyTorch reference's (`reference/pixelzoo_ref/nets/gated_pixelcnn.py`):
//! `layers.{i}.{vertical,horizontal,link,residual}.*`, `layers.{i}.{vertical,horizontal}_class.weight`,
//! `output.{hidden,logits}.*`.

use candle_core::{Device, IndexOp, Result, Tensor};
use candle_nn::VarBuilder;
use pixel_ops::class_conditional::{class_labels, marginal_logits, marginal_nll, ClassBias, MarginalSession};
use pixel_ops::conv::{gated_masked_conv2d, masked_conv2d, Fused, MaskedConv2d};
use pixel_ops::gate::gated_activation;
use pixel_ops::head::OutputStack;
use pixel_ops::model::record_at;
use pixel_ops::{ClassConditionalModel, ImageSpec, InputEncoding, MaskKind, PixelModel, SamplingSession};

pixel_ops::architecture_config! {
    /// The Gated PixelCNN's configuration, stored as JSON in the weights' safetensors metadata.
    pub struct Config {
        /// p: features of both stacks (each gated unit has 2p pre-activations).
        pub hidden: usize,
        /// Gated layers after the first.
        pub layers: usize,
        /// Features d of the first output 1×1 convolution.
        pub output_features: usize,
        /// Size n of the first layer's kernels (n×n vertical, 1×n horizontal).
        pub input_kernel: usize,
        /// Size n of the later layers' kernels.
        pub block_kernel: usize,
        /// C: classes of the class-conditional model; 0 builds the unconditional one.
        #[serde(default)]
        pub classes: usize,
    }
}

impl Config {
    /// The images this configuration describes.
    pub fn spec(&self) -> ImageSpec {
        self.image
    }
}

/// One layer of both stacks. The first reads the image (masks V-A and A, no residual); the others
/// read the layer before (masks V-B and B, a residual horizontal stack).
#[derive(Debug, Clone)]
pub struct GatedLayer {
    vertical: MaskedConv2d,
    horizontal: MaskedConv2d,
    link: MaskedConv2d,
    residual: Option<MaskedConv2d>,
    /// The vertical and horizontal units' class biases (class-conditional models).
    class_bias: Option<(ClassBias, ClassBias)>,
    kernel: usize,
}

/// One layer's class biases for a batch: vertical and horizontal, `(b, 2p)` each.
type LayerBias = Option<(Tensor, Tensor)>;

impl GatedLayer {
    /// Layer `first` or not, reading `in_ch` features, with `kernel`; tensors under `vb`.
    pub fn new(cfg: &Config, in_ch: usize, kernel: usize, first: bool, vb: VarBuilder) -> Result<Self> {
        let (p, c) = (cfg.hidden, cfg.image.channels);
        let (vertical_mask, horizontal_mask) =
            if first { (MaskKind::VerticalA, MaskKind::A) } else { (MaskKind::VerticalB, MaskKind::B) };
        // The pre-activations are two gate blocks (f, g) of p: feature k of each has the colour of
        // output feature k.
        let conv = |mask, in_ch, kernel, name| gated_masked_conv2d(mask, in_ch, 2 * p, kernel, c, 2, vb.pp(name));
        let class_bias = match cfg.classes {
            0 => None,
            classes => Some((
                ClassBias::new(classes, 2 * p, vb.pp("vertical_class"))?,
                ClassBias::new(classes, 2 * p, vb.pp("horizontal_class"))?,
            )),
        };
        Ok(Self {
            vertical: conv(vertical_mask, in_ch, (kernel, kernel), "vertical")?,
            horizontal: conv(horizontal_mask, in_ch, (1, kernel), "horizontal")?,
            link: conv(MaskKind::VerticalB, 2 * p, (1, 1), "link")?,
            residual: if first { None } else { Some(masked_conv2d(MaskKind::B, p, p, (1, 1), c, vb.pp("residual"))?) },
            class_bias,
            kernel,
        })
    }

    /// The class biases of `labels` `(b,)` u32; `None` for an unconditional layer.
    fn biases(&self, labels: Option<&Tensor>) -> Result<LayerBias> {
        match (&self.class_bias, labels) {
            (Some((vertical, horizontal)), Some(labels)) => {
                Ok(Some((vertical.forward(labels)?, horizontal.forward(labels)?)))
            }
            (None, _) => Ok(None),
            (Some(_), None) => candle_core::bail!("a class-conditional layer needs a class per image"),
        }
    }

    /// Channels-last: the vertical and horizontal inputs `(b, H, W, in)` → their outputs
    /// `(b, H, W, p)`; `bias`: the class biases `(b, 2p)`.
    pub fn forward_channels_last(&self, v: &Tensor, h: &Tensor, bias: &LayerBias) -> Result<(Tensor, Tensor)> {
        let av = self.vertical.forward_channels_last(v)?;
        let link = self.link.forward_channels_last(&av)?;
        let ah = self.horizontal.forward_fused(h, Fused { residual: Some(&link), ..Fused::default() })?;
        let (av, ah) = match bias {
            Some((bv, bh)) => {
                let at = |b: &Tensor| b.unsqueeze(1)?.unsqueeze(1);
                (av.broadcast_add(&at(bv)?)?, ah.broadcast_add(&at(bh)?)?)
            }
            None => (av, ah),
        };
        let (v_out, y) = (gated_activation(&av)?, gated_activation(&ah)?);
        let h_out = match &self.residual {
            Some(residual) => residual.forward_fused(&y, Fused { residual: Some(h), ..Fused::default() })?,
            None => y,
        };
        Ok((v_out, h_out))
    }
}

/// The Gated PixelCNN.
#[derive(Debug, Clone)]
pub struct GatedPixelCnn {
    cfg: Config,
    layers: Vec<GatedLayer>,
    output: OutputStack,
    device: Device,
}

impl GatedPixelCnn {
    /// Builds the network from `vb`; every weight is masked here.
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.image.check_channels("The Gated PixelCNN")?;
        if cfg.hidden == 0 {
            candle_core::bail!("the Gated PixelCNN needs hidden ≥ 1, the config says 0");
        }
        let (c, p) = (cfg.image.channels, cfg.hidden);
        let layers = (0..=cfg.layers)
            .map(|i| {
                let (in_ch, kernel) = if i == 0 { (c, cfg.input_kernel) } else { (p, cfg.block_kernel) };
                GatedLayer::new(cfg, in_ch, kernel, i == 0, vb.pp("layers").pp(i))
            })
            .collect::<Result<Vec<_>>>()?;
        let output = OutputStack::new(p, cfg.output_features, c, cfg.image.head, vb.pp("output"))?;
        Ok(Self { cfg: cfg.clone(), layers, output, device: vb.device().clone() })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Pixel values `(b, c, H, W)` (any dtype, any device) → the network input centred to [−1, 1],
    /// channels-first `(b, c, H, W)`, in the weights' dtype.
    fn encode(&self, x: &Tensor) -> Result<Tensor> {
        InputEncoding::Centred.encode(self.cfg.image.head, &x.to_device(&self.device)?, self.output_dtype())
    }

    fn output_dtype(&self) -> candle_core::DType {
        self.layers[0].vertical.weight().dtype()
    }

    /// The class biases of every layer for `classes` (one per image); `None`s for an unconditional
    /// model (which takes no classes).
    fn biases(&self, classes: Option<&[usize]>) -> Result<Vec<LayerBias>> {
        let labels = classes.map(|c| class_labels(c, self.cfg.classes, &self.device)).transpose()?;
        self.layers.iter().map(|layer| layer.biases(labels.as_ref())).collect()
    }

    /// The horizontal stack's output, channels-last: pixel values `(b, c, H, W)` → `(b, H, W, p)`,
    /// given one class per image for a class-conditional model.
    pub fn features(&self, x: &Tensor, classes: Option<&[usize]>) -> Result<Tensor> {
        let input = self.encode(x)?.permute((0, 2, 3, 1))?.contiguous()?;
        let (mut v, mut h) = (input.clone(), input);
        for (layer, bias) in self.layers.iter().zip(self.biases(classes)?) {
            (v, h) = layer.forward_channels_last(&v, &h, &bias)?;
        }
        Ok(h)
    }

    /// Logits `(b, c, levels, H, W)`, given one class per image for a class-conditional model.
    fn logits_of(&self, x: &Tensor, classes: Option<&[usize]>) -> Result<Tensor> {
        self.output.forward_channels_last(&self.features(x, classes)?)
    }
}

/// The cached sampler, given one class per image for a class-conditional model. The vertical stack
/// at a row depends on the rows above only: when a row begins, every layer's vertical stack is
/// computed for the whole row from the rows kept before it. The horizontal stack is computed one
/// position per value, from the current row's outputs of the layer before at the columns so far
/// (the taps right of the centre are masked, so zeros stand in for them) and the vertical stack's
/// link at that column.
pub struct Session<'a> {
    model: &'a GatedPixelCnn,
    batch: usize,
    biases: Vec<LayerBias>,
    /// The row whose vertical stack is computed.
    row: Option<usize>,
    /// Per layer: the vertical stack's outputs of each row so far, channels-last `(b, W, p)`.
    vertical: Vec<Vec<Tensor>>,
    /// Per layer: the current row's vertical pre-activations without the class bias (the link's
    /// input), `(b, W, 2p)`.
    link_input: Vec<Tensor>,
    /// Per layer: the horizontal stack's output at the current row, `(b, p)` per column so far.
    horizontal: Vec<Vec<Tensor>>,
}

impl<'a> Session<'a> {
    /// A session for `batch` images; `classes`: one per image, for a class-conditional model.
    pub fn new(model: &'a GatedPixelCnn, batch: usize, classes: Option<&[usize]>) -> Result<Self> {
        if let Some(classes) = classes {
            pixel_ops::class_conditional::check_classes(classes, model.cfg.classes, batch)?;
        }
        let layers = model.layers.len();
        Ok(Self {
            model,
            batch,
            biases: model.biases(classes)?,
            row: None,
            vertical: vec![Vec::new(); layers],
            link_input: Vec::new(),
            horizontal: vec![Vec::new(); layers],
        })
    }

    /// Every layer's vertical stack at row `row`, from the rows above (of the image `x`, and of
    /// each layer's outputs kept so far).
    fn begin_row(&mut self, x: &Tensor, row: usize) -> Result<()> {
        let m = self.model;
        let w = m.cfg.image.width;
        // The image's rows above, channels-last `(b, rows, W, c)`.
        let input = m.encode(x)?.permute((0, 2, 3, 1))?;
        self.link_input.clear();
        for (l, layer) in m.layers.iter().enumerate() {
            let r = layer.kernel / 2;
            let top = row.saturating_sub(r);
            // The rows top..=row of this layer's input; the centre row is masked on the image
            // (V-A) and read on the vertical features (V-B).
            let strip = if l == 0 {
                input.narrow(1, top, row + 1 - top)?
            } else {
                Tensor::stack(&self.vertical[l - 1][top..=row], 1)?
            };
            // The k×k windows of the whole row: zeros where the 'same' padding is, and for the r rows
            // below, which the mask closes.
            let strip = strip.pad_with_zeros(1, r - (row - top), r)?.pad_with_zeros(2, r, r)?;
            let columns = (0..w)
                .map(|q| {
                    layer.vertical.forward_at(&strip.narrow(2, q, layer.kernel)?.permute((0, 3, 1, 2))?.contiguous()?)
                })
                .collect::<Result<Vec<_>>>()?;
            let av = Tensor::stack(&columns, 1)?; // (b, W, 2p)
            let activated = match &self.biases[l] {
                Some((bv, _)) => av.broadcast_add(&bv.unsqueeze(1)?)?,
                None => av.clone(),
            };
            self.vertical[l].push(gated_activation(&activated)?);
            self.link_input.push(av);
            self.horizontal[l].clear();
        }
        self.row = Some(row);
        Ok(())
    }
}

impl SamplingSession for Session<'_> {
    fn step(&mut self, x: &Tensor, row: usize, col: usize, channel: usize) -> Result<Tensor> {
        match self.row {
            Some(current) if pixel_ops::model::starts_next_row(current, row, col, channel)? => {
                self.begin_row(x, row)?
            }
            Some(_) => {}
            None if (row, col, channel) == (0, 0, 0) => self.begin_row(x, row)?,
            None => candle_core::bail!("the session must start at (0, 0), channel 0, not ({row}, {col}), {channel}"),
        }
        let m = self.model;
        let w = m.cfg.image.width;
        // The image's current row, channels-first `(b, c, 1, W)`, for the first layer's 1×k taps.
        let image_row = m.encode(&x.narrow(2, row, 1)?)?;
        let mut h_out: Option<Tensor> = None;
        for (l, layer) in m.layers.iter().enumerate() {
            let r = layer.kernel / 2;
            let window = if l == 0 {
                image_row.pad_with_zeros(3, r, r)?.narrow(3, col, layer.kernel)?.contiguous()?
            } else {
                let before = &self.horizontal[l - 1];
                let zero = before[col].zeros_like()?;
                let taps = (0..layer.kernel)
                    .map(|t| match (col + t).checked_sub(r) {
                        Some(q) if q <= col && q < w => before[q].clone(),
                        _ => zero.clone(),
                    })
                    .collect::<Vec<_>>();
                let p = zero.dim(1)?;
                Tensor::stack(&taps, 2)?.reshape((self.batch, p, 1, layer.kernel))?
            };
            let link = layer.link.forward_at(&self.link_input[l].i((.., col, ..))?)?;
            let ah = (layer.horizontal.forward_at(&window)? + link)?;
            let ah = match &self.biases[l] {
                Some((_, bh)) => (ah + bh)?,
                None => ah,
            };
            let y = gated_activation(&ah)?;
            let out = match &layer.residual {
                Some(residual) => (&self.horizontal[l - 1][col] + residual.forward_at(&y)?)?,
                None => y,
            };
            record_at(&mut self.horizontal[l], col, &out);
            h_out = Some(out);
        }
        let h_out = h_out.ok_or_else(|| candle_core::Error::Msg("a Gated PixelCNN with no layers".into()))?;
        m.output.forward_at(&h_out)?.i((.., channel, ..))
    }
}

impl PixelModel for GatedPixelCnn {
    fn spec(&self) -> ImageSpec {
        self.cfg.spec()
    }

    fn device(&self) -> &Device {
        &self.device
    }

    /// The unconditional model's logits; a class-conditional model's are those of the marginal
    /// conditionals over the classes ([`marginal_logits`]: log-probabilities, C passes per class).
    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        match self.class_conditional() {
            Some(conditional) => marginal_logits(conditional, x),
            None => self.logits_of(x, None),
        }
    }

    /// A class-conditional model's: the marginal −log Σ_c p(c) p(x | c) ([`marginal_nll`]).
    fn nll(&self, x: &Tensor) -> Result<Tensor> {
        match self.class_conditional() {
            Some(conditional) => marginal_nll(conditional, x),
            None => self.spec().head.nll_per_image(&self.logits_of(x, None)?, x),
        }
    }

    fn session(&self, batch: usize) -> Result<Option<Box<dyn SamplingSession + '_>>> {
        Ok(Some(match self.class_conditional() {
            Some(conditional) => Box::new(MarginalSession::new(conditional, batch)?),
            None => Box::new(Session::new(self, batch, None)?),
        }))
    }

    fn class_conditional(&self) -> Option<&dyn ClassConditionalModel> {
        (self.cfg.classes > 0).then_some(self as &dyn ClassConditionalModel)
    }
}

impl ClassConditionalModel for GatedPixelCnn {
    fn classes(&self) -> usize {
        self.cfg.classes
    }

    fn logits_given_classes(&self, x: &Tensor, classes: &[usize]) -> Result<Tensor> {
        pixel_ops::class_conditional::check_classes(classes, self.cfg.classes, x.dim(0)?)?;
        self.logits_of(x, Some(classes))
    }

    fn session_given_classes(&self, classes: &[usize]) -> Result<Box<dyn SamplingSession + '_>> {
        Ok(Box::new(Session::new(self, classes.len(), Some(classes))?))
    }
}
