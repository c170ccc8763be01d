//! Row LSTM (van den Oord, Kalchbrenner, Kavukcuoglu 2016, arXiv:1601.06759, §3.1): a 7×7 mask-A
//! convolution, a stack of residual Row LSTM layers, the output stack of two ReLU + 1×1 mask-B
//! convolutions, and a Bernoulli or 256-way softmax head.
//!
//! A Row LSTM layer processes the image one row at a time, top to bottom, a whole row at once. Its
//! input-to-state map is a masked (mask B) 1×k convolution along the row, computed for the whole
//! map first (4h outputs, gates grouped per colour as [`pixel_ops::mask::gated_colour_group`]
//! says). Its state-to-state kernel is an unmasked 1×k convolution over the previous row's hidden
//! state. The gates are [`pixel_ops::lstm`]'s. A 1×1 mask-B convolution maps the h hidden features
//! back to the residual stream, and the layer input is added. The receptive field is a triangle
//! above the pixel (plus the pixels to its left in its own row).
//!
//! Conditional network (the big stage of the multi-scale PixelRNN, §3.6, `models/multiscale`): with
//! `conditioning` = c > 0 in the config, each layer adds [`pixel_ops::conditioning`]'s 1×1 map of a
//! `(b, c, H, W)` conditioning map to its input-to-state map; [`ConditionalModel::logits_given`] and
//! [`Session::given`] take the map.
//!
//! The LSTM, its conditioning and its sampling-session caches are [`pixel_ops::recurrent`]'s; this
//! crate holds the Row LSTM's geometry: a step reads the k states of the row above.
//!
//! Tensor names equal the PyTorch reference's (`reference/pixelzoo_ref/recurrent.py`):
//! `input_conv.*`, `layers.{i}.input_to_state.*`, `layers.{i}.state_to_state` `(4h, h, 1, k)`,
//! `layers.{i}.residual.*`, `layers.{i}.conditioning.weight` `(4h, c, 1, 1)` if conditional,
//! `output.{hidden,logits}.*`.

use candle_core::{IndexOp, Result, Tensor};
use candle_nn::VarBuilder;
use pixel_ops::conditioning::Conditioning;
use pixel_ops::conv::{gated_masked_conv2d, masked_conv2d, open_tap_columns, Fused, MaskedConv2d};
use pixel_ops::head::OutputStack;
use pixel_ops::lstm::GATES;
use pixel_ops::model::{record_at, starts_next_row};
use pixel_ops::network::{Layer, Network, Parts};
use pixel_ops::recurrent::{is_zero, LstmState, RecurrentCell, RowStates};
#[cfg(doc)]
use pixel_ops::ConditionalModel;
use pixel_ops::{ImageSpec, InputEncoding, InputStack, MaskKind, SamplingSession};

pixel_ops::architecture_config! {
    /// The Row LSTM configuration, stored as JSON in the weights' safetensors metadata.
    pub struct Config {
        /// Features of the residual stream between layers (the paper's 2h).
        pub features: usize,
        /// h: state features of each LSTM layer.
        pub hidden: usize,
        /// Number of Row LSTM layers.
        pub layers: usize,
        /// Features d of the first output 1×1 convolution.
        pub output_features: usize,
        /// Size of the first, mask-A, convolution (7).
        pub input_kernel: usize,
        /// k of the masked 1×k input-to-state convolution along the row (3; the paper's "k×1").
        pub input_to_state_kernel: usize,
        /// k of the unmasked 1×k state-to-state convolution over the previous row (3).
        pub state_to_state_kernel: usize,
        /// c > 0: a conditional network, whose layers take a c-feature conditioning map (§3.6).
        #[serde(default, skip_serializing_if = "is_zero")]
        pub conditioning: usize,
    }
}

impl Config {
    /// The images this configuration describes.
    pub fn spec(&self) -> ImageSpec {
        self.image
    }

    fn check(&self) -> Result<()> {
        self.image.check_channels("Row LSTM")?;
        for (name, k) in [
            ("input_to_state_kernel", self.input_to_state_kernel),
            ("state_to_state_kernel", self.state_to_state_kernel),
        ] {
            if k.is_multiple_of(2) {
                candle_core::bail!("{name} must be odd, the config says {k}");
            }
        }
        Ok(())
    }
}

/// One residual Row LSTM layer.
#[derive(Debug, Clone)]
pub struct RowLstmLayer {
    /// The LSTM: a masked 1×k input-to-state convolution along the row, the unmasked 1×k
    /// state-to-state kernel over the row above, the conditioning if conditional.
    lstm: RecurrentCell,
    state_kernel: usize,
    residual: MaskedConv2d,
}

impl RowLstmLayer {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let (f, h, c) = (cfg.features, cfg.hidden, cfg.image.channels);
        let (input_width, state_width) = (cfg.input_to_state_kernel, cfg.state_to_state_kernel);
        let input_to_state =
            gated_masked_conv2d(MaskKind::B, f, GATES * h, (1, input_width), c, GATES, vb.pp("input_to_state"))?;
        let kernel = vb.get((GATES * h, h, 1, state_width), "state_to_state")?.squeeze(2)?;
        let residual = masked_conv2d(MaskKind::B, h, f, (1, 1), c, vb.pp("residual"))?;
        let conditioning = Conditioning::optional(cfg.conditioning, h, vb.clone())?;
        Ok(Self {
            lstm: RecurrentCell::new(input_to_state, &kernel, None, conditioning)?,
            state_kernel: state_width,
            residual,
        })
    }

    /// One step of the recurrence at `n` positions (rows of a position-major map: a whole row of
    /// every image in the full pass, one position of every image in a session): `input_to_state`
    /// `(n, 4h)` is the input-to-state map there (plus any conditioning), `above` `(n, k·h)` the k
    /// states of the row above centred on each position, in tap order (zero outside the image),
    /// and `cell` `(n, h)` the cell state right above. Returns the new state.
    pub fn step(&self, input_to_state: &Tensor, above: &Tensor, cell: &Tensor) -> Result<LstmState> {
        self.lstm.step(input_to_state, above, cell)
    }

    /// The hidden states of every position, channels-last: `(b, H, W, features)` → `(b, H, W, h)`;
    /// the input-to-state map of the whole image first, then one [`RowLstmLayer::step`] per row.
    /// `cond` is the conditioning map `(b, c, H, W)` of a conditional layer.
    pub fn scan(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        let (b, rows, w, _) = x.dims4()?;
        let h = self.lstm.hidden();
        let z = self.lstm.pre_activations(x, cond)?;
        // (H, b·W, 4h): row r is one contiguous block.
        let z = z.permute((1, 0, 2, 3))?.contiguous()?.reshape((rows, b * w, GATES * h))?;
        let radius = (self.state_kernel / 2) as isize;
        let taps: Vec<(isize, isize)> = (-radius..=radius).map(|dx| (0, dx)).collect();
        let mut state = Tensor::zeros((b, 1, w, h), x.dtype(), x.device())?;
        let mut cell = Tensor::zeros((b * w, h), x.dtype(), x.device())?;
        let mut out = Vec::with_capacity(rows);
        for r in 0..rows {
            let above = open_tap_columns(&state, &taps)?.reshape((b * w, ()))?;
            let next = self.step(&z.i(r)?, &above, &cell)?;
            (state, cell) = (next.h.reshape((b, 1, w, h))?, next.c);
            out.push(state.clone());
        }
        Tensor::cat(&out, 1)
    }

    /// Channels-last `(b, H, W, features)` → `(b, H, W, features)` (an unconditional layer).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_given(x, None)
    }
}

/// The Row LSTM network: [`pixel_ops::network::Network`] of Row LSTM layers.
pub type RowLstm = Network<RowLstmLayer>;

/// What the Row LSTM adds to [`Network`]: its layers, how it is built, its session.
impl Layer for RowLstmLayer {
    type Config = Config;

    fn network(cfg: &Config, vb: VarBuilder) -> Result<RowLstm> {
        cfg.check()?;
        // The Row LSTM's inputs are always centred.
        let input = InputStack::new(cfg.spec(), InputEncoding::Centred, cfg.features, cfg.input_kernel, vb.clone())?;
        let layers = (0..cfg.layers).map(|i| RowLstmLayer::new(cfg, vb.pp("layers").pp(i))).collect::<Result<_>>()?;
        let (c, head) = (cfg.image.channels, cfg.image.head);
        let output = OutputStack::new(cfg.features, cfg.output_features, c, head, vb.pp("output"))?;
        let (spec, conditioning) = (cfg.spec(), cfg.conditioning);
        let parts = Parts { spec, conditioning, input, layers, output_projection: None, output };
        Ok(Network::from_parts(cfg, parts))
    }

    fn forward_given(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        self.residual.forward_fused(&self.scan(x, cond)?, Fused { residual: Some(x), ..Fused::default() })
    }

    fn session<'a>(model: &'a RowLstm, batch: usize, cond: Option<&Tensor>) -> Result<Box<dyn SamplingSession + 'a>> {
        Ok(Box::new(Session::given(model, batch, cond)?))
    }
}

/// What one layer of a [`Session`] keeps.
struct LayerCache {
    /// The LSTM's states of the previous row and of the current row so far, and its conditioning.
    states: RowStates,
    /// The layer's input at each column of the current row so far.
    inputs: Vec<Tensor>,
}

/// The cached sampler of the Row LSTM: per value, one position of every layer, from the previous
/// row's cached states and the current row's inputs so far.
pub struct Session<'a> {
    model: &'a RowLstm,
    layers: Vec<LayerCache>,
    row: usize,
    zero_hidden: Tensor,
    zero_input: Tensor,
}

impl<'a> Session<'a> {
    pub fn new(model: &'a RowLstm, batch: usize) -> Result<Self> {
        Self::given(model, batch, None)
    }

    /// A session of a conditional network given its conditioning map `(batch, conditioning, H, W)`.
    pub fn given(model: &'a RowLstm, batch: usize, cond: Option<&Tensor>) -> Result<Self> {
        let (cfg, input) = (model.config(), model.input());
        let (w, dtype, device) = (cfg.image.width, input.dtype(), input.device());
        let zero_hidden = Tensor::zeros((batch, cfg.hidden), dtype, device)?;
        let zero_input = Tensor::zeros((batch, cfg.features), dtype, device)?;
        let layers = model
            .layers()
            .iter()
            .map(|layer| Ok(LayerCache { states: RowStates::new(&layer.lstm, batch, w, cond)?, inputs: Vec::new() }))
            .collect::<Result<_>>()?;
        Ok(Self { model, layers, row: 0, zero_hidden, zero_input })
    }
}

impl SamplingSession for Session<'_> {
    fn step(&mut self, x: &Tensor, row: usize, col: usize, channel: usize) -> Result<Tensor> {
        if starts_next_row(self.row, row, col, channel)? {
            for cache in &mut self.layers {
                cache.states.next_row();
                cache.inputs.clear();
            }
            self.row = row;
        }
        let m = self.model;
        let w = m.config().image.width;
        let mut y = m.input().forward_at(x, row, col)?;
        for (layer, cache) in m.layers().iter().zip(&mut self.layers) {
            record_at(&mut cache.inputs, col, &y);
            // The 1×k input-to-state window along the row (its taps right of `col` are masked).
            let (input_radius, state_radius) = (m.config().input_to_state_kernel / 2, layer.state_kernel / 2);
            let input_taps: Vec<&Tensor> = (0..2 * input_radius + 1)
                .map(|j| {
                    (col + j).checked_sub(input_radius).and_then(|c| cache.inputs.get(c)).unwrap_or(&self.zero_input)
                })
                .collect();
            let window = Tensor::stack(&input_taps, 2)?.unsqueeze(2)?;
            let z = layer.lstm.pre_activations_at(&window, cache.states.conditioning_at(row, col)?)?;
            // The k states of the row above centred on `col`, in tap order.
            let above = &cache.states.above;
            let state_taps: Vec<&Tensor> = (0..2 * state_radius + 1)
                .map(|j| match (col + j).checked_sub(state_radius) {
                    Some(c) if c < w => &above[c].h,
                    _ => &self.zero_hidden,
                })
                .collect();
            let state = layer.step(&z, &Tensor::cat(&state_taps, 1)?, &above[col].c)?;
            y = (y + layer.residual.forward_at(&state.h)?)?;
            cache.states.row[col] = state;
        }
        m.output_stack().forward_at(&y)?.i((.., channel, ..))
    }
}
