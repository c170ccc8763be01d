//! The discretized logistic mixture head of PixelCNN++ (Salimans et al. 2017, arXiv:1701.05517,
//! §2.1 the discretized logistic mixture likelihood, §2.2 conditioning on whole pixels).
//!
//! Per pixel a network outputs the parameters of `K` mixture components: a mixture logit, and per
//! colour channel a mean and a log scale; the means of the later channels are linear in the
//! earlier sub-pixels `x ∈ [-1, 1]` of the same pixel:
//!
//! ```text
//! μ_G = μ'_G + a·x_R,    μ_B = μ'_B + b·x_R + c·x_G,    a, b, c = tanh(raw coefficients)
//! ```
//!
//! Given the component the channels are independent discretized logistics. Value `v ∈ 0..=255` has
//! the bin centre `x = v / 127.5 − 1` and half width `1/255`; its probability is
//! `σ((x + 1/255 − μ)/s) − σ((x − 1/255 − μ)/s)`, except at the edges, where `v = 0` takes all
//! the mass below its upper edge and `v = 255` all the mass above its lower edge, so the 256
//! probabilities sum to 1 exactly.
//!
//! Parameter layout, the channels of the network's `(b, P, h, w)` output with
//! `P = K·(1 + 2C + C(C−1)/2)`: `[logits (K) | means (C blocks of K) | log scales (C blocks of K)
//! | coefficients (C(C−1)/2 blocks of K: a; then b, c)]`; log scales are clamped below at
//! [`LOG_SCALE_MIN`]. This is the layout of the PyTorch reference
//! (`reference/pixelzoo_ref/nets/logistic_mixture.py`), whose values these functions reproduce.
//!
//! Logarithms are taken in a stable form: with `p`, `m` the upper and lower edges in units of the
//! scale, `log(σ(p) − σ(m)) = log σ(p) − softplus(m) + log(1 − e^{−(p−m)})`, where `p − m =
//! (2/255)/s` depends on the component only, and `log σ(z) = min(z, 0) − log(1 + e^{−|z|})`,
//! `softplus(z) = max(z, 0) + log(1 + e^{−|z|})`: no difference of two sigmoids near 1 and no
//! logarithm of an underflowed difference is ever taken, in f32 as in f64.

use candle_core::{Result, Tensor};

use crate::kernels::mixture_bins;

/// Log scales are clamped below at this value (PixelCNN++'s choice): a component is never
/// narrower than the scale `e^−7 ≈ 0.0009`, about a ninth of a bin's width `2/255`.
pub const LOG_SCALE_MIN: f64 = -7.0;

/// Half the width of a value's bin on the `[-1, 1]` scale of the bin centres.
pub const HALF_BIN: f64 = 1.0 / 255.0;

/// The values a sub-pixel takes (0..=255): the length of [`channel_log_probs`]'s level axis.
pub const VALUES: usize = 256;

/// Parameters per component for `channels` colour channels: the logit, `C` means, `C` log scales
/// and `C(C−1)/2` coefficients.
pub fn per_component(channels: usize) -> usize {
    1 + 2 * channels + channels * channels.saturating_sub(1) / 2
}

/// `P`, the parameter channels of a `(b, P, h, w)` output with `components` components over
/// `channels` colour channels.
pub fn param_count(components: usize, channels: usize) -> usize {
    components * per_component(channels)
}

/// The number of components `K` of `params` parameter channels over `channels` colour channels;
/// an error unless `params` is a whole, nonzero number of components.
pub fn components_of(params: usize, channels: usize) -> Result<usize> {
    let per = per_component(channels);
    if channels == 0 || params == 0 || !params.is_multiple_of(per) {
        candle_core::bail!(
            "{params} parameter channels are not a whole number of {channels}-channel mixture components \
             ({per} parameters each)"
        );
    }
    Ok(params / per)
}

/// Log-probabilities of every value of each channel, `(b, C, 256, h, w)`, given the true earlier
/// sub-pixels of `x`: channel `c`'s 256 values at a pixel are scored by the mixture whose means
/// take the true values of channels `< c` and whose weights are the components' posterior given
/// those values. Each `(b, c, ·, h, w)` slice is a normalised log-distribution (its log-softmax is
/// itself), the form of every other head's logits, so the likelihood, the sampler and the range
/// coder treat this head as a 256-way softmax; the value at `x`'s own entry is its conditional
/// log-probability, so their sum over channels and pixels is [`log_likelihood`].
///
/// `params`: `(b, P, h, w)` f32 or f64, the network's output (layout in the module docs);
/// `x`: `(b, C, h, w)` pixel values 0..=255, u8 or float; `components`: `K`. Candle tensor ops
/// only, so it runs on every device, in the dtype of `params`.
pub fn channel_log_probs(params: &Tensor, x: &Tensor, components: usize) -> Result<Tensor> {
    let mix = Mixture::new(params, x, components)?;
    let mut weight = candle_nn::ops::log_softmax(&mix.logits, 1)?; // (b, K, h, w)
    let mut out = Vec::with_capacity(mix.channels);
    for c in 0..mix.channels {
        let mu = mix.mean(c)?;
        let inv_s = mix.log_scales[c].neg()?.exp()?;
        out.push(bins(&mu, &inv_s, &weight)?);
        if c + 1 < mix.channels {
            weight = (weight + mix.log_prob_of_value(c, &mu, &inv_s)?)?;
        }
    }
    Tensor::stack(&out, 1)
}

/// Channel `channel`'s slice of [`channel_log_probs`], `(b, 256, h, w)`, the same values
/// computed alone: the 256 bins of that channel only (the earlier channels enter through their true
/// values' probabilities). What a sampling session needs, one channel at a time. Arguments as
/// [`channel_log_probs`]'s; an error unless `channel < C`.
pub fn channel_log_probs_of(params: &Tensor, x: &Tensor, components: usize, channel: usize) -> Result<Tensor> {
    let mix = Mixture::new(params, x, components)?;
    if channel >= mix.channels {
        candle_core::bail!("channel {channel} of a {}-channel mixture", mix.channels);
    }
    let mut weight = candle_nn::ops::log_softmax(&mix.logits, 1)?; // (b, K, h, w)
    for c in 0..channel {
        let mu = mix.mean(c)?;
        let inv_s = mix.log_scales[c].neg()?.exp()?;
        weight = (weight + mix.log_prob_of_value(c, &mu, &inv_s)?)?;
    }
    let mu = mix.mean(channel)?;
    let inv_s = mix.log_scales[channel].neg()?.exp()?;
    bins(&mu, &inv_s, &weight)
}

/// `log p(x)` in nats per image, `(b,)`: the sum over pixels of the log of the mixture of the
/// channels' joint probabilities, computed directly (no 256 bins). `params`: `(b, P, h, w)` f32 or
/// f64; `x`: `(b, C, h, w)` pixel values 0..=255, u8 or float; `components`: `K`.
pub fn log_likelihood(params: &Tensor, x: &Tensor, components: usize) -> Result<Tensor> {
    let mix = Mixture::new(params, x, components)?;
    let mut joint = candle_nn::ops::log_softmax(&mix.logits, 1)?; // (b, K, h, w)
    for c in 0..mix.channels {
        let mu = mix.mean(c)?;
        let inv_s = mix.log_scales[c].neg()?.exp()?;
        joint = (joint + mix.log_prob_of_value(c, &mu, &inv_s)?)?;
    }
    joint.log_sum_exp(1)?.flatten_from(1)?.sum(1)
}

/// One output of a mixture network, split into its parts, with the pixel values it scores.
struct Mixture {
    channels: usize,
    /// (b, K, h, w)
    logits: Tensor,
    /// Per channel (b, K, h, w), before the linear dependence on the earlier sub-pixels.
    means: Vec<Tensor>,
    /// Per channel (b, K, h, w), clamped below at [`LOG_SCALE_MIN`].
    log_scales: Vec<Tensor>,
    /// Per pair (c, e < c) in the order (1, 0), (2, 0), (2, 1), …: (b, K, h, w), tanh applied.
    coeffs: Vec<Tensor>,
    /// (b, C, h, w) the pixel values, in the dtype of the parameters.
    values: Tensor,
    /// (b, C, h, w) the bin centres `v / 127.5 − 1`.
    centred: Tensor,
}

impl Mixture {
    fn new(params: &Tensor, x: &Tensor, components: usize) -> Result<Self> {
        let (b, p, h, w) = params.dims4()?;
        let (xb, channels, xh, xw) = x.dims4()?;
        if (xb, xh, xw) != (b, h, w) {
            candle_core::bail!(
                "mixture parameters {:?} and pixel values {:?} differ in (b, h, w)",
                params.dims(),
                x.dims()
            );
        }
        if channels == 0 || components == 0 || p != param_count(components, channels) {
            candle_core::bail!(
                "{p} parameter channels do not fit {components} components over {channels} channels ({} expected)",
                param_count(components, channels)
            );
        }
        let k = components;
        let block = |i: usize| params.narrow(1, i * k, k);
        let means = (0..channels).map(|c| block(1 + c)).collect::<Result<Vec<_>>>()?;
        let log_scales =
            (0..channels).map(|c| block(1 + channels + c)?.maximum(LOG_SCALE_MIN)).collect::<Result<Vec<_>>>()?;
        let pairs = channels * (channels - 1) / 2;
        let coeffs = (0..pairs).map(|i| block(1 + 2 * channels + i)?.tanh()).collect::<Result<Vec<_>>>()?;
        let values = x.to_dtype(params.dtype())?;
        let centred = values.affine(1.0 / 127.5, -1.0)?;
        Ok(Self { channels, logits: block(0)?, means, log_scales, coeffs, values, centred })
    }

    /// (b, K, h, w): channel `c`'s means given the true earlier sub-pixels.
    fn mean(&self, c: usize) -> Result<Tensor> {
        let mut mu = self.means[c].clone();
        for e in 0..c {
            let coeff = &self.coeffs[c * (c - 1) / 2 + e];
            mu = (mu + coeff.broadcast_mul(&self.centred.narrow(1, e, 1)?)?)?;
        }
        Ok(mu)
    }

    /// (b, K, h, w): each component's log-probability of channel `c`'s true value, given its
    /// means `mu` and inverse scales `inv_s` (both (b, K, h, w)).
    fn log_prob_of_value(&self, c: usize, mu: &Tensor, inv_s: &Tensor) -> Result<Tensor> {
        let v = self.values.narrow(1, c, 1)?; // (b, 1, h, w)
        let edge = |offset: f64| v.affine(1.0 / 127.5, offset - 1.0)?.broadcast_sub(mu)?.mul(inv_s);
        let (log_below_upper, _) = log_sigmoid_and_softplus(&edge(HALF_BIN)?)?;
        let (_, softplus_lower) = log_sigmoid_and_softplus(&edge(-HALF_BIN)?)?;
        let gap = log_one_minus_exp_neg(&inv_s.affine(2.0 * HALF_BIN, 0.0)?)?;
        let inner = ((&log_below_upper - &softplus_lower)? + gap)?;
        let above_lower = softplus_lower.neg()?;
        let shape = mu.shape();
        let first = v.lt(0.5)?.broadcast_as(shape)?;
        let last = v.gt(254.5)?.broadcast_as(shape)?;
        first.where_cond(&log_below_upper, &last.where_cond(&above_lower, &inner)?)
    }
}

/// `(b, 256, h, w)`: the 256 values' log-probabilities of a channel whose components have
/// means `mu` and inverse scales `inv_s` (both (b, K, h, w)) and unnormalised log-weights
/// `weight` (b, K, h, w): the prior plus the earlier channels' true values' log-probabilities.
fn bins(mu: &Tensor, inv_s: &Tensor, weight: &Tensor) -> Result<Tensor> {
    if mixture_bins::applies(mu) {
        return mixture_bins::mixture_bins(mu, inv_s, weight);
    }
    bins_generic(mu, inv_s, weight)
}

/// [`bins`] from tensor operations, for every device and dtype (the CPU kernel
/// [`mixture_bins`](crate::kernels::mixture_bins) is tested against it): `(b, 256, h, w)` from
/// `mu`, `inv_s`, `weight` `(b, K, h, w)`.
pub(crate) fn bins_generic(mu: &Tensor, inv_s: &Tensor, weight: &Tensor) -> Result<Tensor> {
    // The inner bin edges e_j = (2j − 1)/255 − 1, j = 1..=255, on the level axis: (1, 1, 255, 1, 1).
    let edges = Tensor::arange(1u32, VALUES as u32, mu.device())?
        .to_dtype(mu.dtype())?
        .affine(2.0 * HALF_BIN, -1.0 - HALF_BIN)?
        .reshape((1, 1, VALUES - 1, 1, 1))?;
    // (b, K, 255, h, w): edge j in units of the scale.
    let z = edges.broadcast_sub(&mu.unsqueeze(2)?)?.broadcast_mul(&inv_s.unsqueeze(2)?)?;
    let (log_below, softplus) = log_sigmoid_and_softplus(&z)?;
    let gap = log_one_minus_exp_neg(&inv_s.affine(2.0 * HALF_BIN, 0.0)?)?.unsqueeze(2)?;
    let k = VALUES - 1;
    // v = 0: log σ(z_1); v = 1..=254: log σ(z_{v+1}) − softplus(z_v) + gap; v = 255: −softplus(z_255).
    let first = log_below.narrow(2, 0, 1)?;
    let inner = (log_below.narrow(2, 1, k - 1)? - softplus.narrow(2, 0, k - 1)?)?.broadcast_add(&gap)?;
    let last = softplus.narrow(2, k - 1, 1)?.neg()?;
    let bins = Tensor::cat(&[first, inner, last], 2)?; // (b, K, 256, h, w)
    let posterior = candle_nn::ops::log_softmax(weight, 1)?.unsqueeze(2)?;
    bins.broadcast_add(&posterior)?.log_sum_exp(1) // (b, 256, h, w)
}

/// `(log σ(z), softplus(z))`, elementwise, sharing `log(1 + e^{−|z|})`; neither overflows.
fn log_sigmoid_and_softplus(z: &Tensor) -> Result<(Tensor, Tensor)> {
    let tail = (z.abs()?.neg()?.exp()? + 1.0)?.log()?;
    Ok(((z.minimum(0.0)? - &tail)?, (z.relu()? + tail)?))
}

/// `log(1 − e^{−a})` for `a > 0`, elementwise, accurate for small `a` too: with `t = tanh(a/2)`,
/// `1 − e^{−a} = 2t / (1 + t)`, and `tanh` keeps its relative precision near 0 where `1 − e^{−a}`
/// would lose it to cancellation.
fn log_one_minus_exp_neg(a: &Tensor) -> Result<Tensor> {
    let t = a.affine(0.5, 0.0)?.tanh()?;
    t.affine(2.0, 0.0)?.log()? - (t + 1.0)?.log()?
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use candle_core::{DType, Device, IndexOp};
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::mask::{mask_values, MaskKind};

    /// Pseudo-random `(b, P, h, w)` parameters, uniform in `[-spread, spread]`, and `(b, C, h, w)`
    /// u8 pixel values, from `seed`. Every fifth value is 0 or 255, so the edge bins are scored.
    fn random_inputs(dims: (usize, usize, usize, usize), k: usize, spread: f64, seed: u64) -> Result<(Tensor, Tensor)> {
        let (b, c, h, w) = dims;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let p = param_count(k, c);
        let params: Vec<f64> = (0..b * p * h * w).map(|_| rng.gen_range(-spread..spread)).collect();
        let x: Vec<u8> = (0..b * c * h * w)
            .map(|i| match i % 10 {
                0 => 0,
                5 => 255,
                _ => rng.gen(),
            })
            .collect();
        Ok((Tensor::from_vec(params, (b, p, h, w), &Device::Cpu)?, Tensor::from_vec(x, (b, c, h, w), &Device::Cpu)?))
    }

    /// max |Σ_v p(v) − 1| over every channel and pixel.
    fn normalisation_error(log_probs: &Tensor) -> Result<f64> {
        let total = log_probs.to_dtype(DType::F64)?.exp()?.sum(2)?;
        (total - 1.0)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()
    }

    #[test]
    fn parameter_counts_follow_the_layout() -> Result<()> {
        assert_eq!(param_count(10, 3), 100); // 10 × (1 + 3 + 3 + 3)
        assert_eq!(param_count(5, 1), 15); // 5 × (1 + 1 + 1)
        assert_eq!(components_of(100, 3)?, 10);
        assert_eq!(components_of(15, 1)?, 5);
        assert!(components_of(99, 3).is_err());
        assert!(components_of(0, 3).is_err());
        assert!(components_of(10, 0).is_err());
        let (params, x) = random_inputs((1, 3, 2, 2), 2, 1.0, 0)?;
        assert!(channel_log_probs(&params, &x, 3).is_err(), "20 parameter channels are not 3 components");
        assert!(log_likelihood(&params, &x.narrow(1, 0, 2)?, 2).is_err(), "nor 2 components over 2 channels");
        assert!(log_likelihood(&params, &x.narrow(1, 0, 0)?, 20).is_err(), "an image has channels");
        Ok(())
    }

    #[test]
    fn the_256_probabilities_of_every_channel_sum_to_one() -> Result<()> {
        for (channels, k, spread, seed) in [(3, 4, 4.0, 1), (1, 3, 4.0, 2), (3, 10, 9.0, 3), (2, 1, 2.0, 4)] {
            let (params, x) = random_inputs((2, channels, 3, 4), k, spread, seed)?;
            let exact = normalisation_error(&channel_log_probs(&params, &x, k)?)?;
            assert!(exact < 1e-12, "f64, C = {channels}, K = {k}: max |Σp − 1| = {exact}");
            let lp = channel_log_probs(&params.to_dtype(DType::F32)?, &x, k)?;
            assert_eq!(lp.dtype(), DType::F32);
            let single = normalisation_error(&lp)?;
            assert!(single < 1e-5, "f32, C = {channels}, K = {k}: max |Σp − 1| = {single}");
        }
        Ok(())
    }

    #[test]
    fn one_channel_alone_is_the_same_slice_of_every_channel() -> Result<()> {
        let (params, x) = random_inputs((2, 3, 3, 2), 4, 3.0, 9)?;
        let all = channel_log_probs(&params, &x, 4)?;
        for c in 0..3 {
            let one = channel_log_probs_of(&params, &x, 4, c)?;
            let diff = (one - all.narrow(1, c, 1)?.squeeze(1)?)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?;
            assert_eq!(diff, 0.0, "channel {c}");
        }
        assert!(channel_log_probs_of(&params, &x, 4, 3).is_err(), "there is no channel 3");
        Ok(())
    }

    #[test]
    fn the_true_values_log_probabilities_sum_to_the_log_likelihood() -> Result<()> {
        for (channels, k, seed) in [(3, 5, 5), (1, 2, 6)] {
            let (params, x) = random_inputs((3, channels, 4, 3), k, 3.0, seed)?;
            for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
                let params = params.to_dtype(dtype)?;
                let lp = channel_log_probs(&params, &x, k)?;
                let picked = lp.gather(&x.to_dtype(DType::U32)?.unsqueeze(2)?, 2)?.flatten_from(1)?.sum(1)?;
                let picked = picked.to_dtype(DType::F64)?.to_vec1::<f64>()?;
                let ll = log_likelihood(&params, &x, k)?;
                assert_eq!(ll.dims(), [3]);
                for (a, b) in picked.iter().zip(ll.to_dtype(DType::F64)?.to_vec1::<f64>()?) {
                    assert!(
                        (a - b).abs() <= tol * b.abs().max(1.0),
                        "{dtype:?}, C = {channels}: Σ gathered {a}, log p(x) {b}"
                    );
                }
            }
        }
        // A float image gives the same values as its u8 original.
        let (params, x) = random_inputs((1, 3, 2, 3), 2, 3.0, 7)?;
        let diff = (log_likelihood(&params, &x, 2)? - log_likelihood(&params, &x.to_dtype(DType::F32)?, 2)?)?;
        assert_eq!(diff.abs()?.max(0)?.to_scalar::<f64>()?, 0.0);
        Ok(())
    }

    /// The channels' probabilities (b, C, 256, h, w) from the definition, in plain f64 loops:
    /// differences of sigmoids, σ(−∞) = 0 below value 0 and σ(∞) = 1 above value 255, the
    /// mixture weights the softmax of the logits times the earlier channels' probabilities of
    /// their true values, normalised. A difference of sigmoids of a broad component loses
    /// relative precision (its terms are ~0.5, its value ~(u − l)/4 with u − l = (2/255)/s), and
    /// through the weights so do the later channels' probabilities: with log scales up to 6 this
    /// is accurate to a few 1e-12 (measured against the functions under test: 2.0e-12 at worst,
    /// 5e-14 with log scales up to 2.5), not to rounding.
    fn probabilities_from_the_definition(params: &Tensor, x: &Tensor, k: usize) -> Result<Vec<f64>> {
        let (b, p, h, w) = params.dims4()?;
        let c_n = x.dim(1)?;
        let params = params.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        let x = x.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
        let mut out = vec![0f64; b * c_n * VALUES * h * w];
        for n in 0..b {
            for (i, j) in (0..h).flat_map(|i| (0..w).map(move |j| (i, j))) {
                let par = |q: usize| params[((n * p + q) * h + i) * w + j];
                let value = |c: usize| x[((n * c_n + c) * h + i) * w + j];
                let centre = |v: f64| v / 127.5 - 1.0;
                // Probability of value v of channel c under component m.
                let prob = |c: usize, m: usize, v: f64| {
                    let mut mu = par(k + c * k + m);
                    for e in 0..c {
                        // Coefficient pairs in the order (1, 0), (2, 0), (2, 1).
                        let pair = c * (c - 1) / 2 + e;
                        mu += par(k + 2 * c_n * k + pair * k + m).tanh() * centre(value(e));
                    }
                    let s = par(k + c_n * k + c * k + m).max(-7.0).exp();
                    let upper = if v == 255.0 { f64::INFINITY } else { (centre(v) + 1.0 / 255.0 - mu) / s };
                    let lower = if v == 0.0 { f64::NEG_INFINITY } else { (centre(v) - 1.0 / 255.0 - mu) / s };
                    // σ(u) − σ(l), as σ(−l) − σ(−u) on the right tail, where both are near 1.
                    if lower > 0.0 {
                        sigmoid(-lower) - sigmoid(-upper)
                    } else {
                        sigmoid(upper) - sigmoid(lower)
                    }
                };
                let mut weights: Vec<f64> = (0..k).map(|m| par(m).exp()).collect();
                for c in 0..c_n {
                    let total: f64 = weights.iter().sum();
                    for v in 0..VALUES {
                        let pv: f64 = (0..k).map(|m| weights[m] / total * prob(c, m, v as f64)).sum();
                        out[(((n * c_n + c) * VALUES + v) * h + i) * w + j] = pv;
                    }
                    for (m, wm) in weights.iter_mut().enumerate() {
                        *wm *= prob(c, m, value(c));
                    }
                }
            }
        }
        Ok(out)
    }

    #[test]
    fn log_probabilities_equal_a_direct_float64_computation_from_the_definition() -> Result<()> {
        for (channels, k, spread, seed) in [(3, 3, 2.5, 8), (1, 4, 2.5, 9), (3, 2, 6.0, 10)] {
            let (params, x) = random_inputs((2, channels, 3, 2), k, spread, seed)?;
            let want = probabilities_from_the_definition(&params, &x, k)?;
            let got = channel_log_probs(&params, &x, k)?.flatten_all()?.to_vec1::<f64>()?;
            let got32 = channel_log_probs(&params.to_dtype(DType::F32)?, &x, k)?.flatten_all()?.to_vec1::<f32>()?;
            let mut checked_logs = 0;
            for ((&p, &lp), &lp32) in want.iter().zip(&got).zip(&got32) {
                assert!((lp.exp() - p).abs() < 1e-11, "f64: p = {}, definition {p}", lp.exp());
                assert!((f64::from(lp32).exp() - p).abs() < 1e-6, "f32: p = {}, definition {p}", lp32.exp());
                // Where the difference of sigmoids keeps ample relative precision, the logs too.
                if p > 1e-4 {
                    assert!((lp - p.ln()).abs() < 1e-10, "f64: log p = {lp}, definition {}", p.ln());
                    checked_logs += 1;
                }
            }
            assert!(checked_logs > want.len() / 4, "only {checked_logs} values checked in log form");
        }
        Ok(())
    }

    #[test]
    fn one_sharp_component_on_a_bin_centre_gives_it_tanh_of_the_half_width_over_two_scales() -> Result<()> {
        // One grey channel, one component at the centre of value 100 with log scale −20, clamped
        // to −7: p(100) = σ(h/s) − σ(−h/s) = tanh(h/(2s)) with h = 1/255, s = e^−7.
        let mu = 100.0 / 127.5 - 1.0;
        let params = Tensor::new(&[0.0f64, mu, -20.0], &Device::Cpu)?.reshape((1, 3, 1, 1))?;
        let x = Tensor::new(&[100u8], &Device::Cpu)?.reshape((1, 1, 1, 1))?;
        let want = (HALF_BIN * 7f64.exp() / 2.0).tanh().ln();
        let lp = channel_log_probs(&params, &x, 1)?.i((0, 0, .., 0, 0))?.to_vec1::<f64>()?;
        assert!((lp[100] - want).abs() < 1e-14, "log p(100) = {}, want {want}", lp[100]);
        assert!((lp[99] - lp[101]).abs() < 1e-12, "the neighbours are symmetric: {} {}", lp[99], lp[101]);
        let ll = log_likelihood(&params, &x, 1)?.to_vec1::<f64>()?[0];
        assert!((ll - want).abs() < 1e-14, "log p(x) = {ll}, want {want}");
        Ok(())
    }

    #[test]
    fn extreme_log_scales_and_means_stay_finite_and_normalised() -> Result<()> {
        // Three channels, three components: log scales −20 (clamped), +10 and 0, means far
        // outside [-1, 1] and at the edges; raw coefficients large.
        let (c, k) = (3, 3);
        let mut p = vec![0f64; param_count(k, c)];
        p[..k].copy_from_slice(&[3.0, -2.0, 0.0]);
        for ch in 0..c {
            p[k + ch * k..k + ch * k + k].copy_from_slice(&[[-30.0, 1.0, 30.0][ch], -1.0, 1.0]);
            p[k + c * k + ch * k..k + c * k + ch * k + k].copy_from_slice(&[-20.0, 10.0, 0.0]);
        }
        for q in &mut p[k + 2 * c * k..] {
            *q = 50.0;
        }
        let params = Tensor::from_vec(p, (1, param_count(k, c), 1, 1), &Device::Cpu)?;
        for px in [[0u8, 0, 0], [255, 255, 255], [0, 128, 255], [17, 3, 250]] {
            let x = Tensor::new(&px, &Device::Cpu)?.reshape((1, 3, 1, 1))?;
            for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
                let params = params.to_dtype(dtype)?;
                let lp = channel_log_probs(&params, &x, k)?.to_dtype(DType::F64)?;
                let values = lp.flatten_all()?.to_vec1::<f64>()?;
                assert!(values.iter().all(|v| v.is_finite() && *v <= 1e-6), "{dtype:?} {px:?}: non-finite or > 0");
                let err = normalisation_error(&lp)?;
                assert!(err < tol, "{dtype:?} {px:?}: max |Σp − 1| = {err}");
                let ll = log_likelihood(&params, &x, k)?.to_dtype(DType::F64)?.to_vec1::<f64>()?[0];
                assert!(ll.is_finite() && ll <= 0.0, "{dtype:?} {px:?}: log p(x) = {ll}");
            }
        }
        // Clamping: log scale −20 scores exactly as −7.
        let (params, x) = random_inputs((1, 3, 2, 2), 2, 1.0, 11)?;
        let scales = 2 + 3 * 2..2 + 6 * 2;
        let with_log_scale = |v: f64| -> Result<Tensor> {
            let mut p = params.flatten_all()?.to_vec1::<f64>()?;
            for q in scales.clone() {
                for slot in &mut p[q * 4..q * 4 + 4] {
                    *slot = v;
                }
            }
            channel_log_probs(&Tensor::from_vec(p, params.shape(), &Device::Cpu)?, &x, 2)
        };
        let diff = (with_log_scale(-20.0)? - with_log_scale(LOG_SCALE_MIN)?)?.abs()?.flatten_all()?.max(0)?;
        assert_eq!(diff.to_scalar::<f64>()?, 0.0);
        Ok(())
    }

    /// The mixture network of the reference fixture (`mixture_pixelcnn.py`), in f64 from its
    /// weights: a `k × k` convolution with mask A over one colour group (the whole current pixel
    /// closed), `layers` blocks `y + outer(relu(inner(relu(y))))` of 1×1 convolutions, and the
    /// parameters `params(relu(y))`, on the input `x / 127.5 − 1`, "same" padding.
    fn fixture_network_params(weights: &Path, x: &Tensor) -> Result<(Tensor, usize)> {
        let bytes = std::fs::read(weights)?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(candle_core::Error::wrap)?;
        let config = meta.metadata().as_ref().and_then(|m| m.get("config").cloned()).expect("config metadata");
        let config: serde_json::Value = serde_json::from_str(&config).map_err(candle_core::Error::wrap)?;
        let size = |key: &str| config[key].as_u64().unwrap_or_else(|| panic!("config has no {key}")) as usize;
        assert_eq!(config["architecture"], "mixture-pixelcnn");
        assert_eq!(config["head"], "logistic-mixture");
        let (channels, components, kernel) = (size("channels"), size("components"), size("input_kernel"));
        let t = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)?;
        let get = |key: &str| t.get(key).unwrap_or_else(|| panic!("no tensor {key}")).to_dtype(DType::F64);
        let conv = |y: &Tensor, name: &str, pad: usize| -> Result<Tensor> {
            let mut weight = get(&format!("{name}.weight"))?;
            if name == "input_conv" {
                // Stored unmasked: apply mask A over a single colour group.
                let (o, i, kh, kw) = weight.dims4()?;
                let mask = Tensor::from_vec(mask_values(MaskKind::A, o, i, kh, kw, 1), (o, i, kh, kw), &Device::Cpu)?;
                weight = (weight * mask.to_dtype(DType::F64)?)?;
            }
            let bias = get(&format!("{name}.bias"))?;
            y.conv2d(&weight, pad, 1, 1, 1)?.broadcast_add(&bias.reshape((1, (), 1, 1))?)
        };
        let mut y = conv(&x.to_dtype(DType::F64)?.affine(1.0 / 127.5, -1.0)?, "input_conv", kernel / 2)?;
        for i in 0..size("layers") {
            let inner = conv(&y.relu()?, &format!("blocks.{i}.inner"), 0)?;
            y = (&y + conv(&inner.relu()?, &format!("blocks.{i}.outer"), 0)?)?;
        }
        let params = conv(&y.relu()?, "params", 0)?;
        assert_eq!(params.dim(1)?, param_count(components, channels));
        assert_eq!(components_of(params.dim(1)?, channels)?, components);
        Ok((params, components))
    }

    #[test]
    fn log_probabilities_match_the_pytorch_reference() -> Result<()> {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
        let t = candle_core::safetensors::load(
            fixtures.join("mixture-pixelcnn-random-rgb.logits.safetensors"),
            &Device::Cpu,
        )?;
        let get = |key: &str| t.get(key).unwrap_or_else(|| panic!("no tensor {key}")).to_dtype(DType::F64);
        let (x, want, want_nll) = (t["input"].clone(), get("logits")?, get("nll")?.to_vec1::<f64>()?);
        let (params, k) = fixture_network_params(&fixtures.join("mixture-pixelcnn-random-rgb.safetensors"), &x)?;

        let got = channel_log_probs(&params, &x, k)?;
        assert_eq!(got.dims(), want.dims());
        // Both compute softplus exactly and the bin width's term from the scale: float64 rounding
        // is all that separates them.
        let max_diff = (&got - &want)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?;
        assert!(max_diff < 1e-11, "f64: max |Δ log p| = {max_diff}");
        let nll = log_likelihood(&params, &x, k)?.neg()?.to_vec1::<f64>()?;
        for (a, b) in nll.iter().zip(&want_nll) {
            assert!((a - b).abs() < 1e-9 * b.abs(), "f64: NLL {a}, reference {b}");
        }

        // f32 (what the zoo runs): the probabilities agree to rounding.
        let params32 = params.to_dtype(DType::F32)?;
        let got32 = channel_log_probs(&params32, &x, k)?.to_dtype(DType::F64)?;
        let max_p_diff = (got32.exp()? - want.exp()?)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?;
        assert!(max_p_diff < 1e-5, "f32: max |Δp| = {max_p_diff}");
        let nll32 = log_likelihood(&params32, &x, k)?.neg()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        for (a, b) in nll32.iter().zip(&want_nll) {
            assert!((a - b).abs() < 1e-5 * b.abs(), "f32: NLL {a}, reference {b}");
        }
        Ok(())
    }
}
