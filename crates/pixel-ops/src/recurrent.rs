//! The recurrent layers' plumbing (paper §3.1–3.2), shared by the Row LSTM and the Diagonal BiLSTM,
//! so that each of them keeps only its neighbour geometry (which states a step reads: the k states
//! of the row above for the Row LSTM; the pixel above and the pixel before in the skewed map for the
//! Diagonal BiLSTM):
//! - [`RecurrentCell`]: one LSTM stepped on explicit state, in the spirit of candle's RNN trait
//!   (`zero_state`, `step`): its input-to-state map, its state-to-state product over the neighbours'
//!   hidden states, and its conditioning (§3.6);
//! - [`RowStates`]: what a row-by-row sampling session keeps of one LSTM.
//!
//! The network around the layers is [`crate::network::Network`]'s.

use candle_core::{DType, Device, Result, Tensor};

use crate::conditioning::{
    add_conditioning, at_position, conditioning_term, input_to_state_given, per_position, Conditioning,
};
use crate::conv::MaskedConv2d;
use crate::lstm::{lstm_cell, lstm_update, tap_major};
use crate::row_product::RowProduct;

/// The state of an LSTM at n positions: hidden `h` and cell `c`, each `(n, h)`.
#[derive(Debug, Clone)]
pub struct LstmState {
    pub h: Tensor,
    pub c: Tensor,
}

impl From<(Tensor, Tensor)> for LstmState {
    fn from((h, c): (Tensor, Tensor)) -> Self {
        Self { h, c }
    }
}

/// One LSTM of a recurrent layer: the input-to-state map (a masked convolution, 4h outputs), the
/// state-to-state kernel over k neighbours' hidden states as one product ([`crate::lstm::tap_major`]),
/// an optional scalar state bias and an optional conditioning term.
#[derive(Debug, Clone)]
pub struct RecurrentCell {
    input_to_state: MaskedConv2d,
    /// `(k·h, 4h)`: the transpose of [`crate::lstm::tap_major`]'s matrix, applied row by row (an
    /// image's states do not depend on the other images of the batch).
    state_to_state: RowProduct,
    /// `(1,)`: one scalar added to all 4h pre-activations, if the layer has it.
    state_bias: Option<Tensor>,
    conditioning: Option<Conditioning>,
    hidden: usize,
    dtype: DType,
    device: Device,
}

impl RecurrentCell {
    /// `state_to_state` is the kernel `(4h, h, k)` over the k neighbours, in the order the
    /// architecture lays their states side by side in [`RecurrentCell::step`].
    pub fn new(
        input_to_state: MaskedConv2d,
        state_to_state: &Tensor,
        state_bias: Option<Tensor>,
        conditioning: Option<Conditioning>,
    ) -> Result<Self> {
        let (_, hidden, _) = state_to_state.dims3()?;
        Ok(Self {
            input_to_state,
            state_to_state: RowProduct::new(&tap_major(state_to_state)?.t()?)?,
            state_bias,
            conditioning,
            hidden,
            dtype: state_to_state.dtype(),
            device: state_to_state.device().clone(),
        })
    }

    /// h: the state features.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// The state before any step, at `n` positions: zeros `(n, h)`.
    pub fn zero_state(&self, n: usize) -> Result<LstmState> {
        let zero = Tensor::zeros((n, self.hidden), self.dtype, &self.device)?;
        Ok(LstmState { h: zero.clone(), c: zero })
    }

    /// The input-to-state map of layer input `x`, plus the conditioning term of `cond` (a
    /// conditional layer's map `(b, c, H, W)`), channels-last: `(b, H, W, features)` → `(b, H, W, 4h)`.
    /// An error if the map and the layer disagree.
    pub fn pre_activations(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        input_to_state_given(&self.input_to_state, self.conditioning.as_ref(), x, cond)
    }

    /// The input-to-state map at one position of every image: `window` is the input convolution's
    /// window there (as [`MaskedConv2d::forward_at`] takes it), `cond` the conditioning
    /// pre-activations there ([`RowStates::conditioning_at`]). `(b, 4h)`.
    pub fn pre_activations_at(&self, window: &Tensor, cond: Option<Tensor>) -> Result<Tensor> {
        add_conditioning(self.input_to_state.forward_at(window)?, cond)
    }

    /// The state-to-state term without the bias: `neighbours` `(n, k·h)` → `(n, 4h)`.
    pub fn recurrent(&self, neighbours: &Tensor) -> Result<Tensor> {
        self.state_to_state.forward(neighbours)
    }

    /// The scalar state bias `(1,)`, if the layer has one.
    pub fn state_bias(&self) -> Option<&Tensor> {
        self.state_bias.as_ref()
    }

    /// One step of the recurrence at `n` positions (position-major: a row or a stretch of a
    /// diagonal of every image in the full pass, one position of every image in a session):
    /// `input_to_state` `(n, 4h)` is the input-to-state map there (plus any conditioning),
    /// `neighbours` `(n, k·h)` the k neighbours' hidden states side by side in the kernel's tap
    /// order, `cell` `(n, h)` the cell state the LSTM carries on. Returns the new state.
    pub fn step(&self, input_to_state: &Tensor, neighbours: &Tensor, cell: &Tensor) -> Result<LstmState> {
        let recurrent = self.state_to_state.forward(neighbours)?;
        let state = match &self.state_bias {
            None => lstm_cell(input_to_state, &recurrent, cell)?,
            // (z + recurrent) + bias: the order of the earlier sessions, so compressed files decode.
            Some(bias) => lstm_update(&(input_to_state + recurrent)?.broadcast_add(bias)?, cell, 1)?,
        };
        Ok(state.into())
    }
}

/// What a row-by-row sampling session keeps of one LSTM of one layer: the states of the row above
/// and of the current row so far, per column, and a conditional layer's conditioning
/// pre-activations at every position.
pub struct RowStates {
    /// The states of the previous row, per column (zeros above row 0).
    pub above: Vec<LstmState>,
    /// The states of the current row, per column (those not yet computed: whatever they were).
    pub row: Vec<LstmState>,
    /// `(H, W, b, 4h)`: [`crate::conditioning::per_position`]'s layout.
    conditioning: Option<Tensor>,
}

impl RowStates {
    /// Zero states for `batch` images `width` pixels wide, and `cell`'s conditioning term of
    /// `cond` (the map `(batch, c, H, W)` of a conditional network).
    pub fn new(cell: &RecurrentCell, batch: usize, width: usize, cond: Option<&Tensor>) -> Result<Self> {
        let zeros = cell.zero_state(batch)?;
        let conditioning = per_position(conditioning_term(cell.conditioning.as_ref(), cond)?)?;
        Ok(Self { above: vec![zeros.clone(); width], row: vec![zeros; width], conditioning })
    }

    /// The current row is complete: it becomes the row above.
    pub fn next_row(&mut self) {
        std::mem::swap(&mut self.above, &mut self.row);
    }

    /// The conditioning pre-activations `(b, 4h)` at `(row, col)`, if the layer is conditional.
    pub fn conditioning_at(&self, row: usize, col: usize) -> Result<Option<Tensor>> {
        at_position(&self.conditioning, row, col)
    }
}

/// For serde: a `conditioning` of 0 (an unconditional network) is left out of a config.
pub fn is_zero(n: &usize) -> bool {
    *n == 0
}
