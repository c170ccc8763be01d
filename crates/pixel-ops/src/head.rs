//! Output heads (paper §2, §4): the output stack of two ReLU + 1×1 mask-B convolutions, and the
//! distribution each pixel value is drawn from: a Bernoulli (binary images, one logit) or a 256-way
//! softmax per colour channel. Log-likelihoods use log-softmax / softplus, so they never overflow.

use std::f64::consts::LN_2;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Module, Result, Shape, Tensor, WithDType, D};
use candle_nn::VarBuilder;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::conv::{masked_conv2d, Fused, MaskedConv2d};
use crate::mask::MaskKind;
use crate::vector_math::{exp_f32, with_avx2};

/// The distribution of one pixel value given its context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Head {
    /// Binary pixels {0, 1}; one logit `z`, p(1) = σ(z).
    Bernoulli,
    /// 8-bit pixels 0..=255; 256 logits, a softmax.
    Softmax256,
}

impl Head {
    /// Logits per colour channel: 1 or 256.
    pub fn levels(self) -> usize {
        match self {
            Head::Bernoulli => 1,
            Head::Softmax256 => 256,
        }
    }

    /// Number of distinct pixel values: 2 or 256.
    pub fn values(self) -> usize {
        match self {
            Head::Bernoulli => 2,
            Head::Softmax256 => 256,
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
            Head::Softmax256 if logits.device().is_cpu() => {
                let x = x.to_dtype(DType::U32)?.contiguous()?;
                return logits.contiguous()?.apply_op2_no_bwd(&x, &SoftmaxNll);
            }
            Head::Softmax256 => {
                let logp = candle_nn::ops::log_softmax(logits, 2)?;
                let idx = x.to_dtype(DType::U32)?.unsqueeze(2)?;
                logp.gather(&idx, 2)?.squeeze(2)?.neg()?
            }
        })
    }

    /// Draws one value per row of `logits` `(n, levels)` (already on the CPU as f32), at `temperature`.
    pub fn sample_values<R: Rng>(self, logits: &[f32], n: usize, temperature: f64, rng: &mut R) -> Vec<u8> {
        let k = self.levels();
        debug_assert_eq!(logits.len(), n * k);
        logits
            .chunks(k)
            .map(|row| match self {
                Head::Bernoulli => {
                    let p = 1.0 / (1.0 + (-(row[0] as f64) / temperature).exp());
                    u8::from(rng.gen::<f64>() < p)
                }
                Head::Softmax256 => {
                    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
                    let weights: Vec<f64> = row.iter().map(|&v| ((v as f64 - max) / temperature).exp()).collect();
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
            (InputEncoding::Centred, Head::Softmax256) => x.affine(1.0 / 127.5, -1.0),
            (InputEncoding::Unit, Head::Bernoulli) => Ok(x),
            (InputEncoding::Unit, Head::Softmax256) => x.affine(1.0 / 255.0, 0.0),
        }
    }
}

/// Nats per image → bits per dimension, for images of `dims` = c·h·w values.
pub fn bits_per_dim(nats_per_image: f64, dims: usize) -> f64 {
    nats_per_image / (dims as f64 * LN_2)
}

/// The CPU kernel of [`Head::nll_per_value`] for the softmax head: logits `(b, c, levels, h, w)`
/// and pixel values `(b, c, h, w)` (u32) → `(b, c, h, w)`. One pass per colour plane: the running
/// maximum and the sum of exponentials of every position together (the levels are `h·w` apart in
/// memory), in f64; for f32 logits, each exponential in f32 ([`exp_f32`], vectorised, within 1
/// ulp) and their sum in f64.
struct SoftmaxNll;

/// A float the softmax NLL kernel reads: e^(v − max) for a logit `v` at or below the maximum.
trait SoftmaxFloat: WithDType + num_traits::Float {
    fn exp_below_max(v: Self, max: Self) -> f64;
}

impl SoftmaxFloat for f64 {
    #[inline(always)]
    fn exp_below_max(v: f64, max: f64) -> f64 {
        (v - max).exp()
    }
}

impl SoftmaxFloat for f32 {
    /// In f32 ([`exp_f32`], vectorised), summed in f64.
    #[inline(always)]
    fn exp_below_max(v: f32, max: f32) -> f64 {
        exp_f32(v - max) as f64
    }
}

impl SoftmaxNll {
    /// The maxima in the logits' type (exact), the sums and the rest in f64; built for AVX2 when
    /// the CPU has it ([`with_avx2`]).
    fn nll<T: SoftmaxFloat>(z: &[T], x: &[u32], (planes, levels, hw): (usize, usize, usize)) -> Result<Vec<T>> {
        with_avx2(|| {
            let mut out = Vec::with_capacity(planes * hw);
            let (mut max, mut sum) = (vec![T::zero(); hw], vec![0f64; hw]);
            for k in 0..planes {
                let plane = &z[k * levels * hw..(k + 1) * levels * hw];
                max.copy_from_slice(&plane[..hw]);
                for level in plane.chunks_exact(hw).skip(1) {
                    for (m, &v) in max.iter_mut().zip(level) {
                        *m = num_traits::Float::max(*m, v);
                    }
                }
                sum.fill(0.0);
                for level in plane.chunks_exact(hw) {
                    for ((s, &v), &m) in sum.iter_mut().zip(level).zip(&max) {
                        *s += T::exp_below_max(v, m);
                    }
                }
                for (p, &value) in x[k * hw..(k + 1) * hw].iter().enumerate() {
                    if value as usize >= levels {
                        candle_core::bail!("pixel value {value} is not one of the {levels} levels");
                    }
                    let nll = sum[p].ln() + max[p].to_f64() - plane[value as usize * hw + p].to_f64();
                    out.push(<T as WithDType>::from_f64(nll));
                }
            }
            Ok(out)
        })
    }
}

impl CustomOp2 for SoftmaxNll {
    fn name(&self) -> &'static str {
        "softmax-nll"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let dims = l1.shape().dims();
        let [b, c, levels, h, w] = dims else {
            candle_core::bail!("softmax-nll: logits (b, c, levels, h, w), got {dims:?}")
        };
        if l2.shape().dims() != [*b, *c, *h, *w] {
            candle_core::bail!("softmax-nll: pixel values {:?} do not fit logits {dims:?}", l2.shape().dims());
        }
        let (Some((s, e)), Some((xs, xe))) = (l1.contiguous_offsets(), l2.contiguous_offsets()) else {
            candle_core::bail!("softmax-nll needs contiguous inputs");
        };
        let CpuStorage::U32(x) = s2 else { candle_core::bail!("softmax-nll: u32 pixel values, got {:?}", s2.dtype()) };
        let shape = (b * c, *levels, h * w);
        let out = match s1 {
            CpuStorage::F32(z) => CpuStorage::F32(Self::nll(&z[s..e], &x[xs..xe], shape)?),
            CpuStorage::F64(z) => CpuStorage::F64(Self::nll(&z[s..e], &x[xs..xe], shape)?),
            other => candle_core::bail!("softmax-nll: f32 or f64 logits, got {:?}", other.dtype()),
        };
        Ok((out, Shape::from((*b, *c, *h, *w))))
    }
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
    fn the_cpu_softmax_nll_equals_log_softmax_and_gather() -> Result<()> {
        let dev = Device::Cpu;
        let (b, c, h, w) = (3, 3, 4, 5);
        let z = (Tensor::randn(0f32, 1.0, (b, c, 256, h, w), &dev)? * 20.0)?;
        let x = Tensor::rand(0f32, 256.0, (b, c, h, w), &dev)?.floor()?.to_dtype(DType::U8)?;
        let fused = Head::Softmax256.nll_per_value(&z, &x)?;
        assert_eq!(fused.dims(), &[b, c, h, w]);
        let logp = candle_nn::ops::log_softmax(&z.to_dtype(DType::F64)?, 2)?;
        let want = logp.gather(&x.to_dtype(DType::U32)?.unsqueeze(2)?, 2)?.squeeze(2)?.neg()?;
        for (got, want) in fused.flatten_all()?.to_vec1::<f32>()?.iter().zip(want.flatten_all()?.to_vec1::<f64>()?) {
            assert!((*got as f64 - want).abs() < 2e-6 * want.abs().max(1.0), "{got} vs {want}");
        }
        let per_image = Head::Softmax256.nll_per_image(&z, &x)?;
        assert_eq!(per_image.dims(), &[b]);
        let bad = Tensor::zeros((b, c, 1, h, w), DType::F32, &dev)?;
        assert!(Head::Softmax256.nll_per_image(&bad, &x).is_err(), "a value beyond the levels is an error");
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
