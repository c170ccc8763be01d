//! Class conditioning (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN
//! Decoders", §2.3): a model p(x | c) of images of class c ∈ 0..C, whose layers each add a learned
//! bias of the class ([`ClassBias`], V^T h with h the one-hot label, an embedding), and what the
//! zoo derives from one:
//!
//! - [`GivenClasses`]: the model given one class per image, as a plain [`PixelModel`] (what the
//!   sampler steps through once each image's class is chosen);
//! - the marginal p(x) = Σ_c p(c) p(x | c) with the uniform prior p(c) = 1/C, which the plain
//!   [`PixelModel`] methods of a class-conditional model describe: its likelihood
//!   ([`marginal_nll`], −log p(x) = −logsumexp_c log p(x | c) + log C), its conditionals
//!   ([`marginal_logits`]) and a session ([`MarginalSession`]).
//!
//! The marginal conditionals are exact: p(x_i | x_<i) = Σ_c p(c | x_<i) p(x_i | x_<i, c), where the
//! class posterior p(c | x_<i) ∝ p(x_<i | c) comes from each class's log-likelihood of the values
//! before x_i in the model's factorisation order. Their product over the order is p(x), so they
//! are causal and normalised as every model's conditionals are, at C passes of the network.

use candle_core::{DType, Device, IndexOp, Result, Tensor};
use candle_nn::VarBuilder;

use crate::head::Head;
use crate::model::{ClassConditionalModel, ImageSpec, PixelModel, SamplingSession};

/// The learned per-class bias of one gated unit: `weight` `(C, features)` (row c is the bias that
/// class c adds to the unit's pre-activations; the reference's `nn.Embedding`).
#[derive(Debug, Clone)]
pub struct ClassBias {
    weight: Tensor,
}

impl ClassBias {
    /// `weight` `(classes, features)` under `vb`.
    pub fn new(classes: usize, features: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self { weight: vb.get((classes, features), "weight")? })
    }

    /// The biases of one class per image: `labels` `(b,)` u32 → `(b, features)`.
    pub fn forward(&self, labels: &Tensor) -> Result<Tensor> {
        self.weight.index_select(labels, 0)
    }
}

/// An error unless `classes` holds `batch` classes, each below `count`.
pub fn check_classes(classes: &[usize], count: usize, batch: usize) -> Result<()> {
    if classes.len() != batch {
        candle_core::bail!("{} classes given for {batch} images: one class per image", classes.len());
    }
    if let Some(c) = classes.iter().find(|&&c| c >= count) {
        candle_core::bail!("class {c} is out of range: the model's classes are 0..={}", count.saturating_sub(1));
    }
    Ok(())
}

/// One class per image as labels `(b,)` u32 on `device`, checked against `count` classes.
pub fn class_labels(classes: &[usize], count: usize, device: &Device) -> Result<Tensor> {
    check_classes(classes, count, classes.len())?;
    Tensor::from_vec(classes.iter().map(|&c| c as u32).collect::<Vec<_>>(), classes.len(), device)
}

/// The marginal negative log-likelihood of each image in nats, −log Σ_c p(c) p(x | c) with
/// p(c) = 1/C: `x` `(b, c, h, w)` → `(b,)` in the dtype and on the device of the per-class NLL
/// ([`ClassConditionalModel::nll_given_classes`]), as every model's NLL. Exact: a log-sum-exp
/// over the classes' log-likelihoods, taken in f64.
pub fn marginal_nll(model: &dyn ClassConditionalModel, x: &Tensor) -> Result<Tensor> {
    let b = x.dim(0)?;
    let mut per_image = vec![Vec::with_capacity(model.classes()); b];
    let mut like = None;
    for c in 0..model.classes() {
        let nll = model.nll_given_classes(x, &vec![c; b])?;
        for (ll, v) in per_image.iter_mut().zip(nll.to_device(&Device::Cpu)?.to_dtype(DType::F64)?.to_vec1::<f64>()?) {
            ll.push(-v);
        }
        like = Some(nll);
    }
    let like = like.ok_or_else(|| candle_core::Error::Msg("a class-conditional model with no classes".into()))?;
    let log_classes = (model.classes() as f64).ln();
    let nll: Vec<f64> = per_image.iter().map(|ll| log_classes - log_sum_exp(ll)).collect();
    Tensor::from_vec(nll, b, &Device::Cpu)?.to_dtype(like.dtype())?.to_device(like.device())
}

/// The class posterior p(c | x) from log p(x | c) under the uniform prior, as log-probabilities.
pub fn class_log_posterior(log_likelihoods: &[f64]) -> Vec<f64> {
    let total = log_sum_exp(log_likelihoods);
    log_likelihoods.iter().map(|l| l - total).collect()
}

/// log Σ exp(v), stable; −∞ for no values.
pub fn log_sum_exp(values: &[f64]) -> f64 {
    let max = values.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + values.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
}

/// The index in a row-major `(c, h, w)` image of each value in the factorisation order (the
/// model's pixel order, R→G→B within a pixel). Images of another size than the model's (the top
/// rows that [`PixelModel::step_logits`] runs on) are in raster order, the only order that
/// takes them.
fn value_order(model: &dyn PixelModel, (c, h, w): (usize, usize, usize)) -> Vec<usize> {
    let s = model.spec();
    let pixels = if (h, w) == (s.height, s.width) {
        model.pixel_order()
    } else {
        (0..h).flat_map(|r| (0..w).map(move |q| (r, q))).collect()
    };
    pixels.into_iter().flat_map(|(row, col)| (0..c).map(move |ch| (ch * h + row) * w + col)).collect()
}

/// The logits of the marginal conditionals p(x_i | x_<i) = Σ_c p(c | x_<i) p(x_i | x_<i, c):
/// `x` `(b, c, h, w)` → `(b, c, levels, h, w)` in the model's dtype. For the softmax heads they are
/// the marginal's log-probabilities (normalised), for the Bernoulli head log p(1) − log p(0).
///
/// Two passes of the network per class: the first gives each class's log-likelihood of every value,
/// whose sums over the values before each one in the factorisation order give the class posteriors
/// (in f64, on the CPU); the second mixes each class's conditionals with them, one class at a time
/// (memory for two classes' logits, whatever C).
pub fn marginal_logits(model: &dyn ClassConditionalModel, x: &Tensor) -> Result<Tensor> {
    let s = model.spec();
    let x = x.to_device(model.device())?;
    let (b, channels, height, width) = x.dims4()?;
    let classes = model.classes();
    let dims = channels * height * width;
    // log p(x_<i | c) for every value i and class c, in f64.
    let order = value_order(model, (channels, height, width));
    let mut before = vec![vec![0f64; b * dims]; classes];
    for (c, before) in before.iter_mut().enumerate() {
        let nll = s.head.nll_per_value(&model.logits_given_classes(&x, &vec![c; b])?, &x)?;
        let nll = nll.to_device(&Device::Cpu)?.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        for image in 0..b {
            let (ll, out) = (&nll[image * dims..(image + 1) * dims], &mut before[image * dims..(image + 1) * dims]);
            let mut sum = 0.0;
            for &k in &order {
                out[k] = sum;
                sum -= ll[k];
            }
        }
    }
    // log p(c | x_<i), normalised over the classes per value.
    let mut column = vec![0f64; classes];
    for k in 0..b * dims {
        for (c, v) in column.iter_mut().enumerate() {
            *v = before[c][k];
        }
        let total = log_sum_exp(&column);
        for (c, class) in before.iter_mut().enumerate() {
            class[k] = column[c] - total;
        }
    }
    // log Σ_c p(c | x_<i) p(x_i = v | x_<i, c), class by class.
    let mut mixed: Option<Tensor> = None;
    for (c, log_posterior) in before.into_iter().enumerate() {
        let log_probs = s.head.value_log_probs(&model.logits_given_classes(&x, &vec![c; b])?)?;
        let weight = Tensor::from_vec(log_posterior, (b, channels, 1, height, width), &Device::Cpu)?
            .to_dtype(log_probs.dtype())?
            .to_device(log_probs.device())?;
        let term = log_probs.broadcast_add(&weight)?;
        mixed = Some(match mixed {
            None => term,
            Some(m) => log_add_exp(&m, &term)?,
        });
    }
    let mixed = mixed.ok_or_else(|| candle_core::Error::Msg("a class-conditional model with no classes".into()))?;
    s.head.logits_from_value_log_probs(&mixed, 2)
}

/// log(e^a + e^b) elementwise, for finite values.
fn log_add_exp(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let max = a.maximum(b)?;
    let sum = ((a - &max)?.exp()? + (b - &max)?.exp()?)?;
    max + sum.log()?
}

/// The marginal's cached session: one session of p(x | c) per class (each for the whole batch),
/// and per image each class's log-likelihood of the values stepped so far, from which each step's
/// class posterior comes. A value's log-probabilities under every class are kept until the next
/// step, which reads the value from the images and adds them. Its logits equal
/// [`marginal_logits`]'s (computed on the host in f64, returned in the sessions' dtype).
pub struct MarginalSession<'a> {
    head: Head,
    batch: usize,
    sessions: Vec<Box<dyn SamplingSession + 'a>>,
    /// Per class, per image: log p(values so far | c).
    so_far: Vec<Vec<f64>>,
    /// The last value stepped and its log-probabilities under every class.
    last: Option<SteppedValue>,
}

/// A value that a [`MarginalSession`] has stepped: `(row, col, channel)` and, per class, per image,
/// the log-probability of each of the values it can take.
type SteppedValue = ((usize, usize, usize), Vec<Vec<Vec<f64>>>);

impl<'a> MarginalSession<'a> {
    /// The session of the marginal of `model` for `batch` images.
    pub fn new(model: &'a dyn ClassConditionalModel, batch: usize) -> Result<Self> {
        let classes = model.classes();
        let sessions =
            (0..classes).map(|c| model.session_given_classes(&vec![c; batch])).collect::<Result<Vec<_>>>()?;
        Ok(Self { head: model.spec().head, batch, sessions, so_far: vec![vec![0.0; batch]; classes], last: None })
    }
}

impl SamplingSession for MarginalSession<'_> {
    fn step(&mut self, x: &Tensor, row: usize, col: usize, channel: usize) -> Result<Tensor> {
        if let Some(((r, q, ch), log_probs)) = self.last.take() {
            let values = x.i((.., ch, r, q))?.to_device(&Device::Cpu)?.to_dtype(DType::U32)?.to_vec1::<u32>()?;
            for (so_far, class) in self.so_far.iter_mut().zip(&log_probs) {
                for ((total, image), &v) in so_far.iter_mut().zip(class).zip(&values) {
                    *total += image[v as usize];
                }
            }
        }
        let mut log_probs = Vec::with_capacity(self.sessions.len());
        let mut like = None;
        for session in &mut self.sessions {
            let logits = session.step(x, row, col, channel)?;
            let rows = logits.to_device(&Device::Cpu)?.to_dtype(DType::F64)?.to_vec2::<f64>()?;
            log_probs.push(rows.iter().map(|r| self.head.value_log_probs_host(r)).collect::<Vec<_>>());
            like = Some(logits);
        }
        let like = like.ok_or_else(|| candle_core::Error::Msg("a class-conditional model with no classes".into()))?;
        let values = self.head.values();
        let mut out = Vec::with_capacity(self.batch * self.head.levels());
        let mut terms = vec![0f64; self.sessions.len()];
        for image in 0..self.batch {
            let prior: Vec<f64> = self.so_far.iter().map(|class| class[image]).collect();
            let posterior = class_log_posterior(&prior);
            let mixed: Vec<f64> = (0..values)
                .map(|v| {
                    for (c, term) in terms.iter_mut().enumerate() {
                        *term = posterior[c] + log_probs[c][image][v];
                    }
                    log_sum_exp(&terms)
                })
                .collect();
            match self.head {
                Head::Bernoulli => out.push(mixed[1] - mixed[0]),
                Head::Softmax256 | Head::LogisticMixture => out.extend(mixed),
            }
        }
        self.last = Some(((row, col, channel), log_probs));
        Tensor::from_vec(out, (self.batch, self.head.levels()), &Device::Cpu)?
            .to_dtype(like.dtype())?
            .to_device(like.device())
    }
}

/// A class-conditional model given one class per image: a plain [`PixelModel`] of p(x | c) for a
/// batch of exactly `classes.len()` images (image `i` of class `classes[i]`).
pub struct GivenClasses<'a> {
    model: &'a dyn ClassConditionalModel,
    classes: Vec<usize>,
}

impl<'a> GivenClasses<'a> {
    /// An error if a class is out of range.
    pub fn new(model: &'a dyn ClassConditionalModel, classes: Vec<usize>) -> Result<Self> {
        check_classes(&classes, model.classes(), classes.len())?;
        Ok(Self { model, classes })
    }

    fn check_batch(&self, batch: usize) -> Result<()> {
        check_classes(&self.classes, self.model.classes(), batch)
    }
}

impl PixelModel for GivenClasses<'_> {
    fn spec(&self) -> ImageSpec {
        self.model.spec()
    }

    fn device(&self) -> &Device {
        self.model.device()
    }

    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        self.check_batch(x.dim(0)?)?;
        self.model.logits_given_classes(x, &self.classes)
    }

    fn pixel_order(&self) -> Vec<(usize, usize)> {
        self.model.pixel_order()
    }

    fn session(&self, batch: usize) -> Result<Option<Box<dyn SamplingSession + '_>>> {
        self.check_batch(batch)?;
        self.model.session_given_classes(&self.classes).map(Some)
    }

    fn nll(&self, x: &Tensor) -> Result<Tensor> {
        self.check_batch(x.dim(0)?)?;
        self.model.nll_given_classes(x, &self.classes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_sum_exp_and_the_posterior_by_hand() {
        assert!((log_sum_exp(&[0.0, 0.0]) - 2f64.ln()).abs() < 1e-15);
        assert!((log_sum_exp(&[-1000.0, -1000.0 + 3f64.ln()]) - (-1000.0 + 4f64.ln())).abs() < 1e-12);
        assert_eq!(log_sum_exp(&[]), f64::NEG_INFINITY);
        let post = class_log_posterior(&[1f64.ln(), 3f64.ln()]);
        assert!((post[0].exp() - 0.25).abs() < 1e-15 && (post[1].exp() - 0.75).abs() < 1e-15, "{post:?}");
    }

    #[test]
    fn classes_are_checked_against_the_batch_and_the_range() {
        assert!(check_classes(&[0, 3], 4, 2).is_ok());
        let err = check_classes(&[0, 4], 4, 2).unwrap_err().to_string();
        assert!(err.contains("class 4 is out of range") && err.contains("0..=3"), "{err}");
        let err = check_classes(&[0], 4, 2).unwrap_err().to_string();
        assert!(err.contains("1 classes given for 2 images"), "{err}");
    }
}
