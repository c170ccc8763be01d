//! The network that the PixelCNN, the Row LSTM and the Diagonal BiLSTM each are (paper §4): pixel
//! values → the input stack (the input encoding and the 7×7 mask-A convolution) → the
//! architecture's layers → an optional 1×1 projection → the output stack (two ReLU + 1×1 mask-B
//! convolutions) → logits. It is written once here as a [`PixelModel`] and a [`ConditionalModel`]:
//! the full pass, the naive sampling step on the part of the image the logits can see, and the
//! cached session the architecture provides. Each architecture crate keeps its layer ([`Layer`])
//! and names the network for it (`pub type RowLstm = Network<RowLstmLayer>`).

use candle_core::{Device, IndexOp, Result, Tensor};
use candle_nn::VarBuilder;

use crate::conv::MaskedConv2d;
use crate::head::OutputStack;
use crate::input::InputStack;
use crate::model::{ConditionalModel, ImageSpec, PixelModel, SamplingSession};

/// One layer of a [`Network`] (a PixelCNN residual block, a Row LSTM or Diagonal BiLSTM layer),
/// and what its architecture adds to the network around the layers: its config, how it builds the
/// network, how far the logits see, and its cached sampling session.
pub trait Layer: Sized + Send + Sync {
    /// The architecture's configuration.
    type Config: std::fmt::Debug + Clone + Send + Sync;

    /// Builds the network of `cfg` from `vb`, every masked weight masked here ([`Network::new`]).
    fn network(cfg: &Self::Config, vb: VarBuilder) -> Result<Network<Self>>;

    /// How far (rows up, columns either side) the logits at one position can see, if that is
    /// bounded (a stack of convolutions); `None` (the default): every row above (a recurrent network).
    fn receptive_radius(cfg: &Self::Config) -> Option<usize> {
        let _ = cfg;
        None
    }

    /// Channels-last `(b, H, W, features)` → `(b, H, W, features)`, given the conditioning map
    /// `(b, c, H, W)` of a conditional layer.
    fn forward_given(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor>;

    /// The cached sampling session of `network` for `batch` images, given the conditioning map
    /// `(batch, conditioning, H, W)` of a conditional network.
    fn session<'a>(
        network: &'a Network<Self>,
        batch: usize,
        cond: Option<&Tensor>,
    ) -> Result<Box<dyn SamplingSession + 'a>>;
}

/// What a [`Network`] is made of, as its architecture builds it ([`Layer::network`]).
#[derive(Debug, Clone)]
pub struct Parts<L> {
    /// The images the network describes.
    pub spec: ImageSpec,
    /// Features of the conditioning map of a conditional network (the big stage of the multi-scale
    /// PixelRNN, §3.6); 0 for an unconditional one.
    pub conditioning: usize,
    pub input: InputStack,
    /// The layers, in order.
    pub layers: Vec<L>,
    /// A 1×1 mask-B convolution before the output stack, if the architecture has one.
    pub output_projection: Option<MaskedConv2d>,
    pub output: OutputStack,
}

/// A network of the zoo with an input stack and an output stack around its layers (PixelCNN, Row
/// LSTM, Diagonal BiLSTM), optionally taking a conditioning map: a [`PixelModel`] (without a map)
/// and a [`ConditionalModel`].
#[derive(Debug, Clone)]
pub struct Network<L: Layer> {
    cfg: L::Config,
    parts: Parts<L>,
}

impl<L: Layer> Network<L> {
    /// Builds the network of `cfg` from `vb`; every masked weight is masked here.
    pub fn new(cfg: &L::Config, vb: VarBuilder) -> Result<Self> {
        L::network(cfg, vb)
    }

    /// The network of `cfg` made of `parts`.
    pub fn from_parts(cfg: &L::Config, parts: Parts<L>) -> Self {
        Self { cfg: cfg.clone(), parts }
    }

    pub fn config(&self) -> &L::Config {
        &self.cfg
    }

    /// The input stack.
    pub fn input(&self) -> &InputStack {
        &self.parts.input
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[L] {
        &self.parts.layers
    }

    /// The 1×1 projection before the output stack, if the network has one.
    pub fn output_projection(&self) -> Option<&MaskedConv2d> {
        self.parts.output_projection.as_ref()
    }

    /// The output stack.
    pub fn output_stack(&self) -> &OutputStack {
        &self.parts.output
    }

    /// The input stack's output on pixel values `(b, c, H, W)`, channels-last: the first layer's
    /// input `(b, H, W, features)`.
    pub fn layer_input(&self, x: &Tensor) -> Result<Tensor> {
        self.parts.input.forward_channels_last(x)
    }

    /// What enters the output stack, channels-last: pixel values `(b, c, H, W)` →
    /// `(b, H, W, features)`, the residual stream after the layers (through the output projection
    /// if there is one); `cond` `(b, conditioning, H, W)` for a conditional network. The whole pass
    /// stays channels-last (no transposes between layers).
    pub fn features(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        let mut y = self.layer_input(x)?;
        for layer in &self.parts.layers {
            y = layer.forward_given(&y, cond)?;
        }
        match &self.parts.output_projection {
            Some(conv) => conv.forward_channels_last(&y),
            None => Ok(y),
        }
    }

    /// Logits `(b, c, levels, H, W)` of pixel values `x` `(b, c, H, W)`, given the conditioning map
    /// of a conditional network (`None` for an unconditional one).
    pub fn forward(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        self.parts.output.forward_channels_last(&self.features(x, cond)?)
    }
}

/// The part of pixel values `x` `(b, c, H, W)` that the logits at `(row, col)` can see when they
/// see `radius` rows up and columns either side: rows `row−radius..=row` and columns
/// `col−radius..=col+radius`, clipped to the image. Returns it and its top-left corner `(top, left)`.
pub fn causal_window(x: &Tensor, row: usize, col: usize, radius: usize) -> Result<(Tensor, usize, usize)> {
    let (top, left) = (row.saturating_sub(radius), col.saturating_sub(radius));
    let right = (col + radius + 1).min(x.dim(3)?);
    Ok((x.narrow(2, top, row + 1 - top)?.narrow(3, left, right - left)?, top, left))
}

impl<L: Layer> PixelModel for Network<L> {
    fn spec(&self) -> ImageSpec {
        self.parts.spec
    }

    fn device(&self) -> &Device {
        self.parts.input.device()
    }

    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        self.forward(x, None)
    }

    /// Runs the layers on the part of the image the logits at `(row, col)` can see (exact: values
    /// outside it cannot reach them): the [`causal_window`] of a bounded receptive field
    /// ([`Layer::receptive_radius`]), else rows `0..=row`; then the 1×1 output stack on the one
    /// position drawn.
    fn step_logits(&self, x: &Tensor, row: usize, col: usize, channel: usize) -> Result<Tensor> {
        let (window, top, left) = match L::receptive_radius(&self.cfg) {
            Some(radius) => causal_window(x, row, col, radius)?,
            None => (x.narrow(2, 0, row + 1)?, 0, 0),
        };
        let at = self.features(&window, None)?.narrow(1, row - top, 1)?.narrow(2, col - left, 1)?;
        self.parts.output.forward_channels_last(&at)?.i((.., channel, .., 0, 0))
    }

    fn session(&self, batch: usize) -> Result<Option<Box<dyn SamplingSession + '_>>> {
        Ok(Some(L::session(self, batch, None)?))
    }
}

impl<L: Layer> ConditionalModel for Network<L> {
    fn conditioning_features(&self) -> usize {
        self.parts.conditioning
    }

    fn logits_given(&self, x: &Tensor, cond: &Tensor) -> Result<Tensor> {
        self.forward(x, Some(cond))
    }

    fn session_given(&self, batch: usize, cond: &Tensor) -> Result<Box<dyn SamplingSession + '_>> {
        L::session(self, batch, Some(cond))
    }
}
