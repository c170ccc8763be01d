//! The trait every architecture implements (paper §2: p(x) = Π p(x_i | x_<i), R→G→B within a pixel;
//! the pixels in raster order, or in the order a model states, as the multi-scale model's §3.6).

use candle_core::{Device, IndexOp, Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::head::{bits_per_dim, Head};
use crate::subset::Subset;

/// What images a model describes; also the image part of every architecture's config
/// (`#[serde(flatten)]`: the keys `channels`, `height`, `width`, `head` stand among the config's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSpec {
    /// 1 (grey / binary) or 3 (RGB).
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub head: Head,
}

impl ImageSpec {
    /// Values per image: c·h·w.
    pub fn dims(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// An error unless the images have 1 or 3 colour channels; `architecture` names the network.
    pub fn check_channels(&self, architecture: &str) -> Result<()> {
        if self.channels != 1 && self.channels != 3 {
            candle_core::bail!("{architecture} takes 1 or 3 colour channels, the config says {}", self.channels);
        }
        Ok(())
    }
}

/// Declares an architecture's configuration, stored as JSON in its weights' safetensors metadata:
/// the field `image` ([`ImageSpec`], whose keys `channels`, `height`, `width`, `head` stand among the
/// config's own), then the fields given; derives `Debug`, `Clone`, `PartialEq`, `Eq` and serde's
/// traits, and refuses unknown keys. The calling crate depends on `serde`.
///
/// ```
/// pixel_ops::architecture_config! {
///     /// A network of `layers` layers.
///     pub struct Config {
///         pub layers: usize,
///         #[serde(default)]
///         pub classes: usize,
///     }
/// }
/// let json = r#"{"channels": 1, "height": 28, "width": 28, "head": "bernoulli", "layers": 2}"#;
/// let config: Config = serde_json::from_str(json).unwrap();
/// assert_eq!((config.image.height, config.layers, config.classes), (28, 2, 0));
/// let unknown = json.replace('}', r#", "colours": 3}"#);
/// let err = serde_json::from_str::<Config>(&unknown).unwrap_err().to_string();
/// assert!(err.contains("colours"), "{err}");
/// ```
#[macro_export]
macro_rules! architecture_config {
    (
        $(#[$meta:meta])*
        pub struct $name:ident { $($(#[$field_meta:meta])* pub $field:ident: $ty:ty),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// The images: colour channels, height, width, head.
            #[serde(flatten)]
            pub image: $crate::ImageSpec,
            $($(#[$field_meta])* pub $field: $ty,)*
        }
    };
}

/// An autoregressive image model: logits of every conditional in one parallel pass.
///
/// The logit of channel `c` at pixel `(r, q)` may depend only on pixels before `(r, q)` in the
/// model's [`PixelModel::pixel_order`] (raster order unless the model says otherwise) and on
/// channels `< c` of pixel `(r, q)` itself. The causality tests check exactly that.
pub trait PixelModel: Send + Sync {
    /// The images this model describes.
    fn spec(&self) -> ImageSpec;

    /// The device the weights live on.
    fn device(&self) -> &Device;

    /// Logits of every conditional: `x` `(b, c, h, w)` pixel values (0/1 or 0..=255, any dtype)
    /// → `(b, c, levels, h, w)` in the weights' dtype (f32 for the zoo's models), where `levels` is
    /// 1 (Bernoulli) or 256 (softmax, or the logistic mixture's log-probabilities).
    fn logits(&self, x: &Tensor) -> Result<Tensor>;

    /// The pixels `(row, col)` in the factorisation order: every pixel once. The default is raster
    /// order, which every single-scale architecture uses.
    fn pixel_order(&self) -> Vec<(usize, usize)> {
        let s = self.spec();
        (0..s.height).flat_map(|r| (0..s.width).map(move |c| (r, c))).collect()
    }

    /// Logits `(b, levels)` of channel `channel` at pixel `(row, col)` given `x` `(b, c, h, w)`, whose
    /// values at and after that position (in the factorisation order) are ignored. The default runs
    /// the network on rows `0..=row` only, which raster-order causality makes exact; architectures
    /// may override it with a cheaper step (and must, if their order is not raster order).
    fn step_logits(&self, x: &Tensor, row: usize, col: usize, channel: usize) -> Result<Tensor> {
        let upto = x.narrow(2, 0, row + 1)?;
        self.logits(&upto)?.i((.., channel, .., row, col))
    }

    /// A cached sampling session for `batch` images, if the architecture has one: it computes each
    /// position of each layer once, as its inputs become known, instead of running the network per
    /// value. `None`: the sampler calls [`PixelModel::step_logits`].
    fn session(&self, batch: usize) -> Result<Option<Box<dyn SamplingSession + '_>>> {
        let _ = batch;
        Ok(None)
    }

    /// Negative log-likelihood of each image in nats: `x` `(b, c, h, w)` → `(b,)`.
    fn nll(&self, x: &Tensor) -> Result<Tensor> {
        self.spec().head.nll_per_image(&self.logits(x)?, x)
    }

    /// Log-probabilities of each conditional: `(b, c, levels, h, w)`: log-softmax over the 256
    /// values, or for the Bernoulli head log p(x = 1) = log σ(z).
    fn log_probs(&self, x: &Tensor) -> Result<Tensor> {
        let logits = self.logits(x)?;
        match self.spec().head {
            // The mixture's logits are log-probabilities already; their log-softmax is themselves.
            Head::Softmax256 | Head::LogisticMixture => candle_nn::ops::log_softmax(&logits, 2),
            Head::Bernoulli => crate::head::log_sigmoid(&logits),
        }
    }

    /// The model as a multi-scale model ([`MultiScaleModel`]), if it is one; `None` for a
    /// single-scale model.
    fn multi_scale(&self) -> Option<&dyn MultiScaleModel> {
        None
    }

    /// The model as a class-conditional model ([`ClassConditionalModel`]), if it is one; `None` for
    /// an unconditional model.
    fn class_conditional(&self) -> Option<&dyn ClassConditionalModel> {
        None
    }

    /// Bits per dimension of each image: `x` `(b, c, h, w)` → `Vec` of b values.
    fn bits_per_dim(&self, x: &Tensor) -> Result<Vec<f64>> {
        let dims = self.spec().dims();
        let nats =
            self.nll(x)?.to_device(&candle_core::Device::Cpu)?.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()?;
        Ok(nats.into_iter().map(|n| bits_per_dim(n, dims)).collect())
    }
}

/// A network that also takes a conditioning map `(b, c, H, W)` (the big stage of the multi-scale
/// PixelRNN, §3.6): each recurrent layer adds a 1×1 map of it to its input-to-state map
/// ([`crate::conditioning`]). Its [`PixelModel`] methods are those of the network without a map,
/// which a conditional network refuses.
pub trait ConditionalModel: PixelModel {
    /// Features c of the conditioning map it takes.
    fn conditioning_features(&self) -> usize;

    /// Logits `(b, c, levels, H, W)` given pixel values `x` `(b, c, H, W)` and the map `cond`.
    fn logits_given(&self, x: &Tensor, cond: &Tensor) -> Result<Tensor>;

    /// A cached sampling session for `batch` images given their map `cond` `(batch, c, H, W)`.
    fn session_given(&self, batch: usize, cond: &Tensor) -> Result<Box<dyn SamplingSession + '_>>;
}

/// A class-conditional model p(x | c) (Gated PixelCNN, van den Oord et al. 2016, "Conditional Image
/// Generation with PixelCNN Decoders", §2.3): every layer adds a learned bias of the image's class
/// c ∈ 0..[`ClassConditionalModel::classes`]. Its plain [`PixelModel`] methods describe the
/// *marginal* p(x) = Σ_c p(c) p(x | c) with the uniform prior p(c) = 1/C, exactly: `nll` is
/// −log Σ_c p(c) p(x | c), and `logits` / `session` give the marginal conditionals
/// p(x_i | x_<i) = Σ_c p(c | x_<i) p(x_i | x_<i, c) ([`crate::class_conditional`]), so sampling,
/// completion and compression with the plain methods use p(x). The methods here take one class
/// per image.
pub trait ClassConditionalModel: PixelModel {
    /// C: the classes are `0..C`.
    fn classes(&self) -> usize;

    /// Logits `(b, c, levels, h, w)` of p(x | class) given pixel values `x` `(b, c, h, w)` and one
    /// class per image (`classes.len() == b`, each `< C`).
    fn logits_given_classes(&self, x: &Tensor, classes: &[usize]) -> Result<Tensor>;

    /// A cached sampling session of p(x | class) for `classes.len()` images, image `i` of class
    /// `classes[i]`.
    fn session_given_classes(&self, classes: &[usize]) -> Result<Box<dyn SamplingSession + '_>>;

    /// −log p(x | class) of each image in nats: `x` `(b, c, h, w)` → `(b,)`.
    fn nll_given_classes(&self, x: &Tensor, classes: &[usize]) -> Result<Tensor> {
        self.spec().head.nll_per_image(&self.logits_given_classes(x, classes)?, &x.to_device(self.device())?)
    }

    /// log p(x | c) of each image for every class, in nats: `x` `(b, c, h, w)` → `(b, C)`, f64
    /// on the CPU. One pass of the network per class.
    fn class_log_likelihoods(&self, x: &Tensor) -> Result<Tensor> {
        let b = x.dim(0)?;
        let per_class = (0..self.classes())
            .map(|c| {
                self.nll_given_classes(x, &vec![c; b])?
                    .to_device(&Device::Cpu)?
                    .to_dtype(candle_core::DType::F64)?
                    .neg()
            })
            .collect::<Result<Vec<_>>>()?;
        Tensor::stack(&per_class, 1)
    }
}

/// A multi-scale model (§3.6): its factorisation order begins with the small image, the pixels
/// whose row and column are multiples of [`MultiScaleModel::factor`] (`x[::f, ::f]`), which its
/// small stage ([`MultiScaleModel::small`]) describes exactly; every other pixel follows in raster
/// order, given all of the small image. So log p(x) splits exactly into the small image's term and
/// the upscaling's term, log p(x | x[::f, ::f]), which [`MultiScaleModel::nll_split`] gives.
pub trait MultiScaleModel: PixelModel {
    /// f ≥ 2: the small image is `x[::f, ::f]`.
    fn factor(&self) -> usize;

    /// The small stage: a model of `(c, h / f, w / f)` images.
    fn small_stage(&self) -> &dyn PixelModel;

    /// The small image's pixels: `x[::f, ::f]` ([`Subset`]).
    fn subset(&self) -> Subset {
        Subset::new(self.factor())
    }

    /// Whether pixel `(row, col)` belongs to the small image.
    fn in_small_image(&self, row: usize, col: usize) -> bool {
        self.subset().contains(row, col)
    }

    /// The small image of `x` `(b, c, h, w)`: `x[:, :, ::f, ::f]`, `(b, c, h / f, w / f)` (rounded up).
    fn small_image(&self, x: &Tensor) -> Result<Tensor> {
        self.subset().extract(x)
    }

    /// The negative log-likelihood of each image in nats, split: `x` `(b, c, h, w)` →
    /// (−log p(x[::f, ::f]), −log p(x | x[::f, ::f])), each `(b,)`; their sum is
    /// [`PixelModel::nll`]. One pass of the network.
    fn nll_split(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let s = self.spec();
        let per_value = s.head.nll_per_value(&self.logits(x)?, &x.to_device(self.device())?)?;
        let mask = self.subset().mask(s.height, s.width, self.device())?.reshape((1, 1, s.height, s.width))?;
        let mask = mask.to_dtype(per_value.dtype())?;
        let b = per_value.dim(0)?;
        let small = per_value.broadcast_mul(&mask)?.reshape((b, ()))?.sum(1)?;
        let rest = per_value.broadcast_mul(&mask.affine(-1.0, 1.0)?)?.reshape((b, ()))?.sum(1)?;
        Ok((small, rest))
    }

    /// Values per image of the small image, c·(h/f)·(w/f), and of the upscaling, the others.
    fn split_dims(&self) -> (usize, usize) {
        let s = self.spec();
        let (sh, sw) = self.subset().small_size(s.height, s.width);
        let small = s.channels * sh * sw;
        (small, s.dims() - small)
    }
}

/// Incremental logits, one value at a time in the factorisation order ([`PixelModel::pixel_order`], R→G→B),
/// from per-layer caches of what earlier positions computed.
pub trait SamplingSession {
    /// Logits `(b, levels)` of channel `channel` at `(row, col)`, as [`PixelModel::step_logits`]
    /// gives them. Must be called for every value in the factorisation order, from the first;
    /// `x` `(b, c, h, w)` holds every earlier value (later ones are ignored).
    fn step(&mut self, x: &Tensor, row: usize, col: usize, channel: usize) -> Result<Tensor>;

    /// Steps over a given value, whose logits are not needed, in the same order as
    /// [`SamplingSession::step`]. The default computes them all the same; a session may do less
    /// (the multi-scale session leaves the small stage out when the whole small image is given),
    /// as long as later steps give the same logits.
    fn skip(&mut self, x: &Tensor, row: usize, col: usize, channel: usize) -> Result<()> {
        self.step(x, row, col, channel).map(|_| ())
    }
}

/// For a row-by-row session at row `current`: whether the step `(row, col, channel)` starts the
/// next row (the session must then close `current`); an error if the steps are out of order.
pub fn starts_next_row(current: usize, row: usize, col: usize, channel: usize) -> Result<bool> {
    if row == current + 1 && col == 0 && channel == 0 {
        Ok(true)
    } else if row == current {
        Ok(false)
    } else {
        candle_core::bail!("the session is at row {current}, asked for row {row}: steps must come in order")
    }
}

/// Stores a position's value in a row being built column by column: appended at a new column,
/// replaced when a later channel of the same pixel recomputes it.
pub fn record_at(row: &mut Vec<Tensor>, col: usize, value: &Tensor) {
    if row.len() == col {
        row.push(value.clone());
    } else {
        row[col] = value.clone();
    }
}
