//! The gated activation unit of the Gated PixelCNN (van den Oord et al. 2016, "Conditional Image
//! Generation with PixelCNN Decoders", §2.2, eq. 2): y = tanh(W_f ∗ x) ⊙ σ(W_g ∗ x), one half of
//! the pre-activations through a tanh, gated by the sigmoid of the other half.

use candle_core::{Result, Tensor, D};

/// The gated unit over the last axis: pre-activations `(…, 2p)`, the f half first, then the g half
/// → `(…, p)`, tanh(a_f) ⊙ σ(a_g). Feature k of both halves belongs to output feature k (and has its
/// colour group, [`crate::mask::gated_colour_group`] with 2 gates). Channels-last maps
/// `(b, H, W, 2p)` and single positions `(b, 2p)` alike.
pub fn gated_activation(a: &Tensor) -> Result<Tensor> {
    let features = a.dim(D::Minus1)?;
    if features % 2 != 0 {
        candle_core::bail!("a gated unit takes an even number of pre-activations (f then g), got {features}");
    }
    let p = features / 2;
    a.narrow(D::Minus1, 0, p)?.tanh()? * candle_nn::ops::sigmoid(&a.narrow(D::Minus1, p, p)?)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn gate_by_hand() -> Result<()> {
        // (1, 4): f = [0.5, −1], g = [0, 2] → [tanh 0.5 · σ 0, tanh(−1) · σ 2].
        let a = Tensor::new(&[[0.5f64, -1.0, 0.0, 2.0]], &Device::Cpu)?;
        let y = gated_activation(&a)?.to_vec2::<f64>()?;
        let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
        let want = [0.5f64.tanh() * 0.5, (-1.0f64).tanh() * sigmoid(2.0)];
        for (got, want) in y[0].iter().zip(want) {
            assert!((got - want).abs() < 1e-15, "{got} vs {want}");
        }
        Ok(())
    }

    #[test]
    fn channels_last_maps_gate_per_position_and_odd_widths_are_refused() -> Result<()> {
        let a = Tensor::randn(0f64, 1.0, (2, 3, 4, 6), &Device::Cpu)?;
        let y = gated_activation(&a)?;
        assert_eq!(y.dims(), &[2, 3, 4, 3]);
        let at = gated_activation(&a.narrow(1, 1, 1)?.narrow(2, 2, 1)?.reshape((2, 6))?)?;
        let diff = (y.narrow(1, 1, 1)?.narrow(2, 2, 1)?.reshape((2, 3))? - at)?.abs()?.sum_all()?.to_scalar::<f64>()?;
        assert_eq!(diff, 0.0);
        assert!(gated_activation(&Tensor::zeros((1, 3), DType::F32, &Device::Cpu)?).is_err());
        Ok(())
    }
}
