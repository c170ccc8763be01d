//! Output heads (paper §2, §4): the output stack of two ReLU + 1×1 mask-B convolutions, and the
//! distribution each pixel value is drawn from: a Bernoulli (binary images, one logit) or a 256-way
//! softmax per colour channel. Log-likelihoods use log-softmax / softplus, so they never overflow.

use std::f64::consts::LN_2;

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::VarBuilder;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::conv::{masked_conv2d, Fused, MaskedConv2d};
use crate::kernels::softmax_nll::softmax_nll;
use crate::mask::MaskKind;

/// The distribution of one pixel value given its context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Head {
    /// Binary pixels {0, 1}; one logit `z`, p(1) = σ(z).
    Bernoulli,
    /// 8-bit pixels 0..=255; 256 logits, a softmax.
    Softmax256,
    /// 8-bit pixels 0..=255 from a discretized logistic mixture (PixelCNN++,
    /// [`crate::logistic_mixture`]). The network's parameters become each value's 256
    /// log-probabilities ([`crate::logistic_mixture::channel_log_probs`]), which are normalised, so
    /// their softmax is the distribution itself: downstream (likelihood, sampling, coding) this head
    /// behaves as [`Head::Softmax256`] on those logits. Only networks that output mixture
    /// parameters have it; the softmax [`OutputStack`] refuses it.
    #[serde(rename = "logistic-mixture")]
    LogisticMixture,
}

impl Head {
    /// Logits per colour channel: 1 or 256.
    pub fn levels(self) -> usize {
        match self {
            Head::Bernoulli => 1,
            Head::Softmax256 | Head::LogisticMixture => 256,
        }
    }

    /// Number of distinct pixel values: 2 or 256.
    pub fn values(self) -> usize {
        match self {
            Head::Bernoulli => 2,
            Head::Softmax256 | Head::LogisticMixture => 256,
        }
    }

    /// Negative log-likelihood in nats of each image: `logits` `(b, c, levels, h, w)`, `x` `(b, c, h, w)`
    /// pixel values → `(b,)`, in the logits' dtype.
    pub fn nll_per_image(self, logits: &Tensor, x: &Tensor) -> Result<Tensor> {
        let b = x.dim(0)?;
        self.nll_per_value(logits, x)?.reshape((b, ()))?.sum(D::Minus1)
    }

    /// Negative log-likelihood in nats of each value: `logits` `(b, c, levels, h, w)`, `x`
    /// `(b, c, h, w)` pixel values → `(b, c, h, w)`, in the logits' dtype.
    pub fn nll_per_value(self, logits: &Tensor, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Head::Bernoulli => {
                // −log p(x) = softplus(z) − x·z, with softplus(z) = max(z, 0) + ln(1 + e^{−|z|}).
                let z = logits.squeeze(2)?;
                let x = x.to_dtype(z.dtype())?;
                let softplus = (z.relu()? + (z.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
                (softplus - (x * z)?)?
            }
            Head::Softmax256 | Head::LogisticMixture => softmax_nll(logits, x)?,
        })
    }

    /// Log-probabilities of every value, `(b, c, values, h, w)`, from logits `(b, c, levels, h, w)`:
    /// the Bernoulli head's [log σ(−z), log σ(z)] (values 0 and 1), the softmax's log-softmax over
    /// the 256 levels (the logistic mixture's logits are log-probabilities already, which it leaves
    /// as they are).
    pub fn value_log_probs(self, logits: &Tensor) -> Result<Tensor> {
        match self {
            Head::Bernoulli => Tensor::cat(&[log_sigmoid(&logits.neg()?)?, log_sigmoid(logits)?], 2),
            Head::Softmax256 | Head::LogisticMixture => candle_nn::ops::log_softmax(logits, 2),
        }
    }

    /// As [`Head::value_log_probs`] for one value's `levels` logits on the host, in f64: the
    /// log-probability of each of the [`Head::values`] values.
    pub fn value_log_probs_host(self, logits: &[f64]) -> Vec<f64> {
        match self {
            Head::Bernoulli => vec![log_sigmoid_f64(-logits[0]), log_sigmoid_f64(logits[0])],
            Head::Softmax256 | Head::LogisticMixture => {
                let max = logits.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
                let log_total = max + logits.iter().map(|&v| (v - max).exp()).sum::<f64>().ln();
                logits.iter().map(|&v| v - log_total).collect()
            }
        }
    }

    /// Logits `(…, levels)` from the log-probabilities of every value `(…, values)` along `dim`:
    /// the inverse of [`Head::value_log_probs`] (for the softmax the log-probabilities themselves,
    /// for the Bernoulli head z = log p(1) − log p(0)).
    pub fn logits_from_value_log_probs(self, log_probs: &Tensor, dim: usize) -> Result<Tensor> {
        match self {
            Head::Bernoulli => log_probs.narrow(dim, 1, 1)? - log_probs.narrow(dim, 0, 1)?,
            Head::Softmax256 | Head::LogisticMixture => Ok(log_probs.clone()),
        }
    }

    /// The distribution of one value from its `levels` logits at `temperature`, as weights
    /// proportional to each value's probability, in f64 by fixed code (the same logits give the
    /// same bits on every machine with IEEE f64): the Bernoulli head's `[1 − p, p]` with
    /// p = σ(z / T); the softmax's e^((z − max) / T), unnormalised. The one place the heads' logits
    /// become probabilities, for the sampler and the compressor alike.
    pub fn value_weights(self, logits: &[f32], temperature: f64) -> Vec<f64> {
        debug_assert_eq!(logits.len(), self.levels());
        match self {
            Head::Bernoulli => {
                let p = 1.0 / (1.0 + (-(logits[0] as f64) / temperature).exp());
                vec![1.0 - p, p]
            }
            Head::Softmax256 | Head::LogisticMixture => {
                let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
                logits.iter().map(|&v| ((v as f64 - max) / temperature).exp()).collect()
            }
        }
    }

    /// Draws one value per row of `logits` `(n, levels)` (already on the CPU as f32), at `temperature`.
    pub fn sample_values<R: Rng>(self, logits: &[f32], n: usize, temperature: f64, rng: &mut R) -> Vec<u8> {
        let k = self.levels();
        debug_assert_eq!(logits.len(), n * k);
        logits
            .chunks(k)
            .map(|row| {
                let weights = self.value_weights(row, temperature);
                match self {
                    Head::Bernoulli => u8::from(rng.gen::<f64>() < weights[1]),
                    Head::Softmax256 | Head::LogisticMixture => {
                        let total: f64 = weights.iter().sum();
                        let mut u = rng.gen::<f64>() * total;
                        for (value, w) in weights.iter().enumerate() {
                            if u < *w {
                                return value as u8;
                            }
                            u -= w;
                        }
                        // Rounding left u past the last bucket: take the last value with non-zero weight.
                        weights.iter().rposition(|&w| w > 0.0).unwrap_or(0) as u8
                    }
                }
            })
            .collect()
    }
}

/// How pixel values become the network's input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputEncoding {
    /// Scaled and centred to [−1, 1] (the paper's; binary {0, 1} → {−1, 1}). The zoo's models.
    #[default]
    Centred,
    /// Scaled to [0, 1] (binary {0, 1} as is): how some third-party checkpoints were trained.
    Unit,
}

impl InputEncoding {
    /// Pixel values `x` (integers in `0..head.values()`) → network input in `dtype`.
    pub fn encode(self, head: Head, x: &Tensor, dtype: DType) -> Result<Tensor> {
        let x = x.to_dtype(dtype)?;
        match (self, head) {
            (InputEncoding::Centred, Head::Bernoulli) => x.affine(2.0, -1.0),
            (InputEncoding::Centred, Head::Softmax256 | Head::LogisticMixture) => x.affine(1.0 / 127.5, -1.0),
            (InputEncoding::Unit, Head::Bernoulli) => Ok(x),
            (InputEncoding::Unit, Head::Softmax256 | Head::LogisticMixture) => x.affine(1.0 / 255.0, 0.0),
        }
    }
}

/// log σ(z) = −softplus(−z) = min(z, 0) − ln(1 + e^{−|z|}), elementwise, without overflow.
pub fn log_sigmoid(z: &Tensor) -> Result<Tensor> {
    z.minimum(&z.zeros_like()?)? - (z.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// [`log_sigmoid`] of one f64.
fn log_sigmoid_f64(z: f64) -> f64 {
    z.min(0.0) - (-z.abs()).exp().ln_1p()
}

/// Nats per image → bits per dimension, for images of `dims` = c·h·w values.
pub fn bits_per_dim(nats_per_image: f64, dims: usize) -> f64 {
    nats_per_image / (dims as f64 * LN_2)
}

/// The output stack (paper §4, step 3): ReLU → 1×1 mask B (`in` → `d`) → ReLU → 1×1 mask B
/// (`d` → colours·levels), reshaped to logits `(b, colours, levels, h, w)`.
#[derive(Debug, Clone)]
pub struct OutputStack {
    hidden: MaskedConv2d,
    logits: MaskedConv2d,
    colours: usize,
    head: Head,
}

impl OutputStack {
    /// Tensors `hidden.{weight,bias}` and `logits.{weight,bias}` under `vb`.
    pub fn new(in_features: usize, d: usize, colours: usize, head: Head, vb: VarBuilder) -> Result<Self> {
        if head == Head::LogisticMixture {
            candle_core::bail!(
                "the output stack gives Bernoulli or softmax logits, not a logistic mixture's parameters"
            );
        }
        let hidden = masked_conv2d(MaskKind::B, in_features, d, (1, 1), colours, vb.pp("hidden"))?;
        let logits = masked_conv2d(MaskKind::B, d, colours * head.levels(), (1, 1), colours, vb.pp("logits"))?;
        Ok(Self { hidden, logits, colours, head })
    }

    /// The stack at one position: `x` `(b, in_features)` → logits `(b, colours, levels)`.
    pub fn forward_at(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.hidden.forward_at(&x.relu()?)?;
        let y = self.logits.forward_at(&y.relu()?)?;
        y.reshape((x.dim(0)?, self.colours, self.head.levels()))
    }

    /// The stack on a channels-last map: `x` `(b, h, w, in)` → logits `(b, colours, levels, h, w)`.
    pub fn forward_channels_last(&self, x: &Tensor) -> Result<Tensor> {
        let (b, h, w, _) = x.dims4()?;
        let y = self.hidden.forward_fused(x, Fused { relu_input: true, relu_output: true, residual: None })?;
        // The last layer writes the logits channels-first directly: (b, colours·levels, h, w).
        let y = self.logits.forward_1x1_to_channels_first(&y, false)?;
        y.reshape((b, self.colours, self.head.levels(), h, w))
    }
}

impl Module for OutputStack {
    /// `(b, in, h, w)` → logits `(b, colours, levels, h, w)`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_channels_last(&x.permute((0, 2, 3, 1))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use rand::SeedableRng;

    #[test]
    fn bernoulli_nll_is_exact_and_finite_for_extreme_logits() -> Result<()> {
        // logits (1, 1, 1, 1, 4): z = 0, 2, +1000, −1000; x = 1, 0, 1, 1.
        let z = Tensor::new(&[0f32, 2.0, 1000.0, -1000.0], &Device::Cpu)?.reshape((1, 1, 1, 1, 4))?;
        let x = Tensor::new(&[1u8, 0, 1, 1], &Device::Cpu)?.reshape((1, 1, 1, 4))?;
        let nll = Head::Bernoulli.nll_per_image(&z, &x)?.to_vec1::<f32>()?[0] as f64;
        let want = std::f64::consts::LN_2 + (1.0 + 2f64.exp()).ln() + 0.0 + 1000.0;
        assert!((nll - want).abs() < 1e-3, "{nll} vs {want}");
        Ok(())
    }

    #[test]
    fn softmax_nll_is_the_negative_log_softmax_and_finite_for_huge_logits() -> Result<()> {
        let mut v = vec![0f32; 256];
        v[7] = 1e4; // a huge logit must not overflow
        v[9] = 1e4;
        let z = Tensor::from_vec(v, (1, 1, 256, 1, 1), &Device::Cpu)?;
        let x = Tensor::new(&[9u8], &Device::Cpu)?.reshape((1, 1, 1, 1))?;
        let nll = Head::Softmax256.nll_per_image(&z, &x)?.to_vec1::<f32>()?[0];
        assert!((nll - std::f32::consts::LN_2).abs() < 1e-5, "{nll}");
        Ok(())
    }

    #[test]
    fn sampling_follows_the_logits_and_the_temperature() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let mut logits = vec![-1e4f32; 256];
        logits[200] = 0.0;
        assert!(Head::Softmax256.sample_values(&logits, 1, 1.0, &mut rng) == [200]);
        // Two equal logits: about half each; at a low temperature a slightly larger one wins.
        let mut two = vec![-1e4f32; 256];
        two[3] = 0.0;
        two[4] = 0.0;
        let draws = Head::Softmax256.sample_values(&two.repeat(2000), 2000, 1.0, &mut rng);
        let threes = draws.iter().filter(|&&v| v == 3).count();
        assert!((900..1100).contains(&threes), "{threes}");
        two[4] = 0.1;
        let cold = Head::Softmax256.sample_values(&two.repeat(200), 200, 0.001, &mut rng);
        assert!(cold.iter().all(|&v| v == 4));
        let ones =
            Head::Bernoulli.sample_values(&[0.0f32; 2000], 2000, 1.0, &mut rng).iter().filter(|&&v| v == 1).count();
        assert!((900..1100).contains(&ones), "{ones}");
    }
}
