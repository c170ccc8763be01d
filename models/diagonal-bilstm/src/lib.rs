//! Diagonal BiLSTM (van den Oord, Kalchbrenner, Kavukcuoglu 2016, arXiv:1601.06759, §3.2): a 7×7
//! mask-A convolution, a stack of residual Diagonal BiLSTM layers, the output stack of two ReLU +
//! 1×1 mask-B convolutions, and a Bernoulli or 256-way softmax head.
//!
//! Each layer runs two Diagonal LSTMs over the skewed map ([`pixel_ops::skew`]), one diagonal per
//! step. Input-to-state: a 1×1 mask-B convolution (4h outputs, gates grouped per colour).
//! State-to-state: an unmasked 2×1 column convolution in the skewed map, i.e. the states of the
//! pixel above and the pixel to the left; gates from [`pixel_ops::lstm`]. The right-to-left
//! direction runs on the mirrored map; its output, mirrored back, is shifted down one row before it
//! is added, so no position reads its own row (or later ones) from that direction. A 1×1 mask-B
//! convolution maps the h features back to the residual stream, and the layer input is added.
//!
//! Options that third-party checkpoints need ([`Config`]): no 1×1 after the LSTM, one scalar bias
//! on the state-to-state convolution, a 1×1 projection before the output stack, inputs in [0, 1].
//!
//! Conditional network (the big stage of the multi-scale PixelRNN, §3.6, `models/multiscale`): with
//! `conditioning` = c > 0 in the config, each direction of each layer adds
//! [`pixel_ops::conditioning`]'s 1×1 map of a `(b, c, H, W)` conditioning map to its input-to-state
//! map (at each image position, before the right-to-left direction mirrors it);
//! [`ConditionalModel::logits_given`] and [`Session::given`] take the map.
//!
//! The LSTM, its conditioning and its sampling-session caches are [`pixel_ops::recurrent`]'s; this
//! crate holds the Diagonal BiLSTM's geometry: the skewed map, the two directions, a step reading
//! the pixel above and the pixel before.
//!
//! Tensor names equal the PyTorch reference's (`reference/pixelzoo_ref/recurrent.py`):
//! `input_conv.*`, `layers.{i}.{left_to_right,right_to_left}.input_to_state.*`,
//! `layers.{i}.{left_to_right,right_to_left}.state_to_state` `(4h, h, 2, 1)` (tap 0: the row above
//! in the skewed map, tap 1: the same row), `….state_bias` `(1,)` if scalar, `….conditioning.weight`
//! `(4h, c, 1, 1)` if conditional,
//! `layers.{i}.residual.*` if `residual_conv`, `output_projection.*` if set, `output.{hidden,logits}.*`.

use candle_core::{IndexOp, Result, Tensor};
use candle_nn::VarBuilder;
use pixel_ops::conditioning::Conditioning;
use pixel_ops::conv::{gated_masked_conv2d, masked_conv2d, Fused, MaskedConv2d};
use pixel_ops::head::OutputStack;
use pixel_ops::lstm::{lstm_update, GATES};
use pixel_ops::model::{record_at, starts_next_row};
use pixel_ops::network::{Layer, Network, Parts};
use pixel_ops::recurrent::{is_zero, LstmState, RecurrentCell, RowStates};
use pixel_ops::skew::{mirror, shift_down, skew, unskew};
#[cfg(doc)]
use pixel_ops::ConditionalModel;
use pixel_ops::{ImageSpec, InputEncoding, InputStack, MaskKind, SamplingSession};
use serde::{Deserialize, Serialize};

/// The bias of the state-to-state convolution.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateBias {
    /// None: the input-to-state convolution's per-gate bias is the only one (the zoo's models).
    #[default]
    None,
    /// One scalar added to all 4h pre-activations (taimir/pixel-rnn-lasagne).
    Scalar,
}

/// `residual_conv`'s default: the zoo's models have the 1×1 convolution.
fn residual_conv_by_default() -> bool {
    true
}

pixel_ops::architecture_config! {
    /// The Diagonal BiLSTM configuration, stored as JSON in the weights' safetensors metadata.
    pub struct Config {
        /// Features of the residual stream between layers (the paper's 2h).
        pub features: usize,
        /// h: state features of each direction of each layer.
        pub hidden: usize,
        /// Number of Diagonal BiLSTM layers.
        pub layers: usize,
        /// Features d of the first output 1×1 convolution.
        pub output_features: usize,
        /// Size of the first, mask-A, convolution (7).
        pub input_kernel: usize,
        /// A 1×1 mask-B convolution maps the LSTM output (h) to the residual stream; without it the
        /// output is added as it is (needs `hidden == features`).
        #[serde(default = "residual_conv_by_default")]
        pub residual_conv: bool,
        #[serde(default)]
        pub state_bias: StateBias,
        /// A 1×1 mask-B convolution (features → features) before the output stack.
        #[serde(default)]
        pub output_projection: bool,
        #[serde(default)]
        pub input_encoding: InputEncoding,
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
        self.image.check_channels("Diagonal BiLSTM")?;
        if !self.residual_conv && self.hidden != self.features {
            candle_core::bail!(
                "residual_conv = false adds the LSTM output to the residual stream directly, so hidden ({}) \
                 must equal features ({})",
                self.hidden,
                self.features
            );
        }
        Ok(())
    }
}

/// One direction of a Diagonal LSTM: a 1×1 mask-B input-to-state convolution, the 2×1
/// state-to-state kernel over the pixel above and the pixel before (tap 0: the row above in the
/// skewed map, tap 1: the same row), a scalar state bias if the config has one, the conditioning
/// if conditional.
#[derive(Debug, Clone)]
pub struct DiagonalLstm {
    lstm: RecurrentCell,
}

impl DiagonalLstm {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let (f, h, c) = (cfg.features, cfg.hidden, cfg.image.channels);
        let input_to_state = gated_masked_conv2d(MaskKind::B, f, GATES * h, (1, 1), c, GATES, vb.pp("input_to_state"))?;
        let kernel = vb.get((GATES * h, h, 2, 1), "state_to_state")?.squeeze(3)?;
        let state_bias = match cfg.state_bias {
            StateBias::None => None,
            StateBias::Scalar => Some(vb.get(1, "state_bias")?),
        };
        let conditioning = Conditioning::optional(cfg.conditioning, h, vb.clone())?;
        Ok(Self { lstm: RecurrentCell::new(input_to_state, &kernel, state_bias, conditioning)? })
    }

    /// One step of the recurrence at `n` positions (position-major: a stretch of a diagonal of
    /// every image in the full pass, one position of every image in a session): `input_to_state`
    /// `(n, 4h)` is the input-to-state map there (plus any conditioning), `neighbours` `(n, 2h)`
    /// the hidden states of the pixel above and of the pixel before (in this direction's order),
    /// side by side, and `cell` `(n, h)` the cell state of the pixel before. Returns the new state.
    pub fn step(&self, input_to_state: &Tensor, neighbours: &Tensor, cell: &Tensor) -> Result<LstmState> {
        self.lstm.step(input_to_state, neighbours, cell)
    }

    /// One step at one position: `input` `(b, features)` is the layer input there; `above` the
    /// hidden state of the pixel above and `before` the state of the pixel before it in this
    /// direction's order (left for left-to-right, right for right-to-left); `cond` the conditioning
    /// pre-activations there, if conditional. Returns the new state.
    fn step_at(&self, input: &Tensor, above: &Tensor, before: &LstmState, cond: Option<Tensor>) -> Result<LstmState> {
        let z = self.lstm.pre_activations_at(input, cond)?;
        // Taps in the order of `state_to_state`: the row above in the skewed map, then the same row.
        self.step(&z, &Tensor::cat(&[above, &before.h], 1)?, &before.c)
    }

    /// The states the scan leaves in the skewed map's padding left of each row: the state `(b, h)`
    /// of the position before column 0 of row `r`, for every row. Zero unless there is a scalar
    /// state bias: the scan runs over the padding too, where the input is zero but the bias is not
    /// (as in the checkpoint the option exists for).
    fn padding_states(&self, rows: usize, batch: usize) -> Result<Vec<LstmState>> {
        let zeros = self.lstm.zero_state(batch)?;
        let Some(bias) = self.lstm.state_bias() else { return Ok(vec![zeros; rows]) };
        let LstmState { h: mut hidden, c: mut cell } = self.lstm.zero_state(rows)?;
        let mut pads = vec![zeros];
        for t in 0..rows.saturating_sub(1) {
            // Row r reads row r−1 and row r of the previous column, as in the full scan.
            let above = hidden.pad_with_zeros(0, 1, 0)?.narrow(0, 0, rows)?;
            let a = self.lstm.recurrent(&Tensor::cat(&[&above, &hidden], 1)?)?.broadcast_add(bias)?;
            (hidden, cell) = lstm_update(&a, &cell, 1)?;
            // Column t is padding for rows r > t; row t+1's image starts at column t+1.
            let row = t + 1;
            pads.push(LstmState {
                h: hidden.narrow(0, row, 1)?.repeat((batch, 1))?,
                c: cell.narrow(0, row, 1)?.repeat((batch, 1))?,
            });
        }
        Ok(pads)
    }
}

/// One residual Diagonal BiLSTM layer.
#[derive(Debug, Clone)]
pub struct DiagonalBiLstmLayer {
    left_to_right: DiagonalLstm,
    right_to_left: DiagonalLstm,
    residual: Option<MaskedConv2d>,
    hidden: usize,
}

impl DiagonalBiLstmLayer {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let residual = if cfg.residual_conv {
            Some(masked_conv2d(MaskKind::B, cfg.hidden, cfg.features, (1, 1), cfg.image.channels, vb.pp("residual"))?)
        } else {
            None
        };
        Ok(Self {
            left_to_right: DiagonalLstm::new(cfg, vb.pp("left_to_right"))?,
            right_to_left: DiagonalLstm::new(cfg, vb.pp("right_to_left"))?,
            residual,
            hidden: cfg.hidden,
        })
    }

    /// The layer's output before the residual, channels-last: the left-to-right hidden states plus
    /// the right-to-left ones shifted down one row, `(b, H, W, features)` → `(b, H, W, h)`. `cond`:
    /// the conditioning map of a conditional layer.
    pub fn scan(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        let (left_to_right, right_to_left) = self.directions(x, cond)?;
        left_to_right + shift_down(&right_to_left)?
    }

    /// Both directions' hidden states, each `(b, H, W, h)` in image orientation, the right-to-left
    /// one not yet shifted. Both directions advance together, one diagonal (skewed column) per step,
    /// each by one [`DiagonalLstm::step`] over the stretch of the diagonal inside the image.
    fn directions(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let (b, rows, w, _) = x.dims4()?;
        let h = self.hidden;
        let dirs = [&self.left_to_right, &self.right_to_left];
        // Each direction's input-to-state map skewed in its own left-to-right orientation, laid out
        // (T, H, b, 4h): the rows of one diagonal are one contiguous block.
        let skewed = |z: Tensor| skew(&z)?.permute((2, 1, 0, 3))?.contiguous();
        let z = [
            skewed(dirs[0].lstm.pre_activations(x, cond)?)?,
            skewed(mirror(&dirs[1].lstm.pre_activations(x, cond)?)?)?,
        ];
        let steps = z[0].dim(0)?;
        let bias = dirs[0].lstm.state_bias().is_some();
        let zeros = Tensor::zeros((rows, b, h), x.dtype(), x.device())?;
        // Per direction, the (h, c) of every row on the last diagonal, (H, b, h).
        let mut state = [(zeros.clone(), zeros.clone()), (zeros.clone(), zeros)];
        let mut out: [Vec<Tensor>; 2] = [Vec::with_capacity(steps), Vec::with_capacity(steps)];
        for t in 0..steps {
            // Only rows [lo, hi] of diagonal t need computing: rows above lo are past the image's
            // right edge (never read again), rows below hi before its left edge, where the state
            // stays zero — unless a scalar state bias makes the padding states non-zero.
            let lo = (t + 1).saturating_sub(w);
            let hi = if bias { rows - 1 } else { t.min(rows - 1) };
            let n = hi + 1 - lo;
            for (d, dir) in dirs.iter().enumerate() {
                let (hidden, cell) = &state[d];
                // Row r reads the previous diagonal's rows r−1 (the pixel above) and r (the pixel before).
                let above = hidden.pad_with_zeros(0, 1, 0)?.narrow(0, lo, n)?;
                let neighbours = Tensor::cat(&[&above, &hidden.narrow(0, lo, n)?], 2)?.reshape((n * b, 2 * h))?;
                let z_t = z[d].i(t)?.narrow(0, lo, n)?.reshape((n * b, ()))?;
                let c_prev = cell.narrow(0, lo, n)?.reshape((n * b, h))?;
                let LstmState { h: new_h, c: new_c } = dir.step(&z_t, &neighbours, &c_prev)?;
                let splice = |old: &Tensor, new: Tensor| -> Result<Tensor> {
                    let mut parts = vec![];
                    if lo > 0 {
                        parts.push(old.narrow(0, 0, lo)?);
                    }
                    parts.push(new.reshape((n, b, h))?);
                    if hi + 1 < rows {
                        parts.push(old.narrow(0, hi + 1, rows - hi - 1)?);
                    }
                    Tensor::cat(&parts, 0)
                };
                state[d] = (splice(hidden, new_h)?, splice(cell, new_c)?);
                out[d].push(state[d].0.clone());
            }
        }
        // (T, H, b, h) → (b, H, T, h) → unskewed (b, H, W, h).
        let image = |o: &[Tensor]| unskew(&Tensor::stack(o, 0)?.permute((2, 1, 0, 3))?.contiguous()?, w);
        Ok((image(&out[0])?, mirror(&image(&out[1])?)?))
    }

    /// Channels-last `(b, H, W, features)` → `(b, H, W, features)` (an unconditional layer).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_given(x, None)
    }

    /// The residual stream `x` `(b, H, W, features)` plus the layer's output `y` `(b, H, W, h)`
    /// (through the 1×1 convolution if the config has it).
    fn add_to_stream(&self, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        match &self.residual {
            Some(conv) => conv.forward_fused(y, Fused { residual: Some(x), ..Fused::default() }),
            None => x + y,
        }
    }
}

/// The Diagonal BiLSTM network: [`pixel_ops::network::Network`] of Diagonal BiLSTM layers.
pub type DiagonalBiLstm = Network<DiagonalBiLstmLayer>;

/// What the Diagonal BiLSTM adds to [`Network`]: its layers, how it is built (the output
/// projection if the config has it), its session.
impl Layer for DiagonalBiLstmLayer {
    type Config = Config;

    fn network(cfg: &Config, vb: VarBuilder) -> Result<DiagonalBiLstm> {
        cfg.check()?;
        let (c, f) = (cfg.image.channels, cfg.features);
        let input = InputStack::new(cfg.spec(), cfg.input_encoding, f, cfg.input_kernel, vb.clone())?;
        let layers =
            (0..cfg.layers).map(|i| DiagonalBiLstmLayer::new(cfg, vb.pp("layers").pp(i))).collect::<Result<_>>()?;
        let output_projection = if cfg.output_projection {
            Some(masked_conv2d(MaskKind::B, f, f, (1, 1), c, vb.pp("output_projection"))?)
        } else {
            None
        };
        let output = OutputStack::new(f, cfg.output_features, c, cfg.image.head, vb.pp("output"))?;
        let (spec, conditioning) = (cfg.spec(), cfg.conditioning);
        let parts = Parts { spec, conditioning, input, layers, output_projection, output };
        Ok(Network::from_parts(cfg, parts))
    }

    fn forward_given(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        self.add_to_stream(x, &self.scan(x, cond)?)
    }

    fn session<'a>(
        model: &'a DiagonalBiLstm,
        batch: usize,
        cond: Option<&Tensor>,
    ) -> Result<Box<dyn SamplingSession + 'a>> {
        Ok(Box::new(Session::given(model, batch, cond)?))
    }
}

/// What one layer of a [`Session`] keeps.
struct LayerCache {
    /// Left-to-right states of the previous row and of the current row so far, per column.
    l2r: RowStates,
    /// Right-to-left states: `above` those of the last completed row, which the next row reads
    /// (the shift down) and the next right-to-left pass reads as the row above; `row` that pass's.
    r2l: RowStates,
    /// The layer's input at each column of the current row.
    inputs: Vec<Tensor>,
    /// Per row, the state before column 0 (left to right) and after column W−1 (right to left).
    l2r_padding: Vec<LstmState>,
    r2l_padding: Vec<LstmState>,
}

/// The cached sampler of the Diagonal BiLSTM: per value, one position of every layer (the
/// left-to-right direction advances one position from its cached state); per completed row, one
/// right-to-left pass over that row per layer, which is all the next row reads from that direction.
pub struct Session<'a> {
    model: &'a DiagonalBiLstm,
    layers: Vec<LayerCache>,
    row: usize,
}

impl<'a> Session<'a> {
    pub fn new(model: &'a DiagonalBiLstm, batch: usize) -> Result<Self> {
        Self::given(model, batch, None)
    }

    /// A session of a conditional network given its conditioning map `(batch, conditioning, H, W)`.
    pub fn given(model: &'a DiagonalBiLstm, batch: usize, cond: Option<&Tensor>) -> Result<Self> {
        let (h, w) = (model.config().image.height, model.config().image.width);
        let layers = model
            .layers()
            .iter()
            .map(|layer| {
                let (l2r, r2l) = (&layer.left_to_right, &layer.right_to_left);
                Ok(LayerCache {
                    l2r: RowStates::new(&l2r.lstm, batch, w, cond)?,
                    r2l: RowStates::new(&r2l.lstm, batch, w, cond)?,
                    inputs: Vec::with_capacity(w),
                    l2r_padding: l2r.padding_states(h, batch)?,
                    r2l_padding: r2l.padding_states(h, batch)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self { model, layers, row: 0 })
    }

    /// Row `self.row` is complete: run the right-to-left direction over it, layer by layer, and
    /// make both directions' states of it the row above.
    fn finish_row(&mut self) -> Result<()> {
        let w = self.model.config().image.width;
        let row = self.row;
        for (layer, cache) in self.model.layers().iter().zip(&mut self.layers) {
            let r2l = &mut cache.r2l;
            for col in (0..w).rev() {
                let before = if col + 1 < w { &r2l.row[col + 1] } else { &cache.r2l_padding[row] };
                let cond = r2l.conditioning_at(row, col)?;
                let state = layer.right_to_left.step_at(&cache.inputs[col], &r2l.above[col].h, before, cond)?;
                r2l.row[col] = state;
            }
            r2l.next_row();
            cache.l2r.next_row();
            cache.inputs.clear();
        }
        self.row += 1;
        Ok(())
    }
}

impl SamplingSession for Session<'_> {
    fn step(&mut self, x: &Tensor, row: usize, col: usize, channel: usize) -> Result<Tensor> {
        if starts_next_row(self.row, row, col, channel)? {
            self.finish_row()?;
        }
        let m = self.model;
        let mut y = m.input().forward_at(x, row, col)?;
        for (layer, cache) in m.layers().iter().zip(&mut self.layers) {
            record_at(&mut cache.inputs, col, &y);
            let l2r = &mut cache.l2r;
            let before = if col > 0 { &l2r.row[col - 1] } else { &cache.l2r_padding[row] };
            let cond = l2r.conditioning_at(row, col)?;
            let state = layer.left_to_right.step_at(&y, &l2r.above[col].h, before, cond)?;
            // The right-to-left direction's state of the row above (zeros for row 0): the shift down.
            let out = (&state.h + &cache.r2l.above[col].h)?;
            l2r.row[col] = state;
            y = match &layer.residual {
                Some(conv) => (y + conv.forward_at(&out)?)?,
                None => (y + out)?,
            };
        }
        if let Some(conv) = m.output_projection() {
            y = conv.forward_at(&y)?;
        }
        m.output_stack().forward_at(&y)?.i((.., channel, ..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use pixel_ops::testing::{causality_violations, weights_with_config};
    use pixel_ops::PixelModel;

    fn random_rgb_model() -> Result<DiagonalBiLstm> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/diagonal-bilstm-random-rgb.safetensors");
        let (cfg, bytes): (Config, _) = weights_with_config(&path)?;
        DiagonalBiLstm::new(&cfg, VarBuilder::from_buffered_safetensors(bytes, DType::F32, &Device::Cpu)?)
    }

    /// A layer whose right-to-left direction is combined by `combine(l2r, r2l)` instead of
    /// [`DiagonalBiLstmLayer::scan`]'s shift down one row: in a network, a model the causality
    /// check must refuse.
    struct Miswired {
        layer: DiagonalBiLstmLayer,
        combine: Combine,
    }

    /// How a layer adds its right-to-left hidden states to its left-to-right ones.
    type Combine = fn(&Tensor, &Tensor) -> Result<Tensor>;

    impl Layer for Miswired {
        type Config = Config;

        fn network(_: &Config, _: VarBuilder) -> Result<Network<Self>> {
            candle_core::bail!("a miswired network is made from a Diagonal BiLSTM's parts (`miswired`)")
        }

        fn forward_given(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
            let (left_to_right, right_to_left) = self.layer.directions(x, cond)?;
            self.layer.add_to_stream(x, &(self.combine)(&left_to_right, &right_to_left)?)
        }

        fn session<'a>(_: &'a Network<Self>, _: usize, _: Option<&Tensor>) -> Result<Box<dyn SamplingSession + 'a>> {
            candle_core::bail!("a miswired network has no cached session")
        }
    }

    /// `model` with every layer's directions combined by `combine`.
    fn miswired(model: &DiagonalBiLstm, combine: Combine) -> Network<Miswired> {
        let layers = model.layers().iter().map(|layer| Miswired { layer: layer.clone(), combine }).collect();
        let parts = Parts {
            spec: model.spec(),
            conditioning: 0,
            input: model.input().clone(),
            layers,
            output_projection: model.output_projection().cloned(),
            output: model.output_stack().clone(),
        };
        Network::from_parts(model.config(), parts)
    }

    fn future_leaks(v: &[String]) -> usize {
        v.iter().filter(|m| m.starts_with("logit of") && m.contains(" depends on channel")).count()
    }

    #[test]
    fn the_causality_check_catches_a_right_to_left_direction_shifted_wrongly() -> Result<()> {
        let shifted_down = |l: &Tensor, r: &Tensor| l + shift_down(r)?;
        let not_shifted = |l: &Tensor, r: &Tensor| l + r;
        let shifted_up = |l: &Tensor, r: &Tensor| {
            let rows = r.dim(1)?;
            l + r.narrow(1, 1, rows - 1)?.pad_with_zeros(1, 0, 1)?
        };
        let model = random_rgb_model()?;
        // As the network itself combines them, the check finds nothing (and the logits are the network's).
        let right = miswired(&model, shifted_down);
        assert_eq!(future_leaks(&causality_violations(&right, &[1])?), 0);
        let x = pixel_ops::testing::random_images(&right, 1, 5)?;
        let flat = |t: Tensor| t.flatten_all()?.to_vec1::<f32>();
        assert_eq!(flat(right.logits(&x)?)?, flat(model.logits(&x)?)?);
        let wrong: [(Combine, &str); 2] = [(not_shifted, "not shifted"), (shifted_up, "shifted up")];
        for (combine, what) in wrong {
            let leaks = future_leaks(&causality_violations(&miswired(&model, combine), &[1])?);
            assert!(leaks > 0, "{what}: positions read their own row from the right, the check must say so");
        }
        Ok(())
    }
}
