//! Conditioning of a recurrent layer on a map (the multi-scale PixelRNN, paper §3.6): a 1×1
//! unmasked convolution, no bias, maps a `(b, c, H, W)` conditioning map to the `4h` pre-activations
//! of an LSTM, added to its input-to-state map. Unmasked, because the map depends only on what
//! the network is given (the small image), never on the pixels it predicts.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::conv::{Fused, MaskedConv2d};
use crate::lstm::GATES;

/// The 1×1 map of a conditioning map to `4h` pre-activations: `conditioning.weight` `(4h, c, 1, 1)`.
#[derive(Debug, Clone)]
pub struct Conditioning {
    /// The unmasked 1×1 layer, `(4h, c, 1, 1)`, no bias.
    layer: MaskedConv2d,
}

impl Conditioning {
    /// `features` c of the conditioning map, `hidden` h of the LSTM; the weight is `vb`'s
    /// `conditioning.weight`.
    pub fn new(features: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        let weight = vb.pp("conditioning").get((GATES * hidden, features, 1, 1), "weight")?;
        Ok(Self { layer: MaskedConv2d::new(weight, None, None)? })
    }

    /// Built only if the config asks for conditioning (`features` > 0).
    pub fn optional(features: usize, hidden: usize, vb: VarBuilder) -> Result<Option<Self>> {
        if features == 0 {
            Ok(None)
        } else {
            Self::new(features, hidden, vb).map(Some)
        }
    }

    /// `(b, c, H, W)` → `(b, 4h, H, W)`.
    pub fn forward(&self, map: &Tensor) -> Result<Tensor> {
        self.layer.forward(map)
    }
}

/// A recurrent layer's input-to-state map of its input `x` `(b, H, W, features)` plus, for a
/// conditional layer, the conditioning term of `map` `(b, c, H, W)`: `(b, H, W, 4h)`. The term is
/// computed channels-last and taken into the input-to-state product as its residual (one kernel
/// on the CPU, no separate sum). An error if the map and the layer disagree (as
/// [`conditioning_term`]).
pub fn input_to_state_given(
    input_to_state: &MaskedConv2d,
    conditioning: Option<&Conditioning>,
    x: &Tensor,
    map: Option<&Tensor>,
) -> Result<Tensor> {
    match (conditioning, map) {
        (Some(c), Some(map)) => {
            let term = c.layer.forward_channels_last(&map.permute((0, 2, 3, 1))?)?;
            input_to_state.forward_fused(x, Fused { residual: Some(&term), ..Fused::default() })
        }
        _ => {
            conditioning_term(conditioning, map)?;
            input_to_state.forward_channels_last(x)
        }
    }
}

/// A layer's conditioning pre-activations `(b, 4h, H, W)` given its conditioning (if the config
/// has one) and the map (if the caller has one); an error if one is there without the other.
pub fn conditioning_term(conditioning: Option<&Conditioning>, map: Option<&Tensor>) -> Result<Option<Tensor>> {
    match (conditioning, map) {
        (Some(c), Some(map)) => Ok(Some(c.forward(map)?)),
        (None, None) => Ok(None),
        (Some(_), None) => candle_core::bail!("a conditional network needs its conditioning map"),
        (None, Some(_)) => candle_core::bail!("this network has no conditioning (config `conditioning` = 0)"),
    }
}

/// The pre-activations of every position laid out for a step-by-step session: `(b, 4h, H, W)` →
/// `(H, W, b, 4h)`, so that `.i((row, col))` is one contiguous `(b, 4h)` block.
pub fn per_position(term: Option<Tensor>) -> Result<Option<Tensor>> {
    term.map(|z| z.permute((2, 3, 0, 1))?.contiguous()).transpose()
}

/// The `(b, 4h)` block of [`per_position`]'s layout at `(row, col)`, if there is one.
pub fn at_position(per_position: &Option<Tensor>, row: usize, col: usize) -> Result<Option<Tensor>> {
    use candle_core::IndexOp;
    per_position.as_ref().map(|t| t.i((row, col))).transpose()
}

/// Adds a conditioning term to pre-activations when there is one.
pub fn add_conditioning(z: Tensor, term: Option<Tensor>) -> Result<Tensor> {
    match term {
        Some(t) => z + t,
        None => Ok(z),
    }
}
