//! PixelCNN (van den Oord, Kalchbrenner, Kavukcuoglu 2016, arXiv:1601.06759, §3.5 and §4): a 7×7
//! mask-A convolution, a stack of residual blocks around a 3×3 mask-B convolution, the output stack
//! of two ReLU + 1×1 mask-B convolutions, and a Bernoulli or 256-way softmax head.
//!
//! Tensor names equal the PyTorch reference's (`reference/pixelzoo_ref/pixelcnn.py`):
//! `input_conv.*`, `blocks.{i}.{reduce,spatial,expand}.*`, `output.{hidden,logits}.*`.

use candle_core::{IndexOp, Result, Tensor};
use candle_nn::VarBuilder;
use pixel_ops::conv::{masked_conv2d, Fused, MaskedConv2d};
use pixel_ops::head::OutputStack;
use pixel_ops::network::{Layer, Network, Parts};
use pixel_ops::{ImageSpec, InputEncoding, InputStack, MaskKind, SamplingSession};

pixel_ops::architecture_config! {
    /// The PixelCNN configuration, stored as JSON in the weights' safetensors metadata.
    pub struct Config {
        /// h: the residual stream has 2h features, each block's inner layers h.
        pub hidden: usize,
        /// Number of residual blocks.
        pub layers: usize,
        /// Features d of the first output 1×1 convolution (1024 in the paper for CIFAR-10, 32 for MNIST).
        pub output_features: usize,
        /// Size of the first, mask-A, convolution (7).
        pub input_kernel: usize,
        /// Size of each block's mask-B convolution (3).
        pub block_kernel: usize,
    }
}

impl Config {
    /// Features of the residual stream between layers: 2h. (The zoo's one vocabulary for widths:
    /// `features` is the residual stream, `hidden` the h of a layer, `output_features` the d of the
    /// output stack; the recurrent configs store `features`, the PixelCNN's is fixed at 2h.)
    pub fn features(&self) -> usize {
        2 * self.hidden
    }

    /// The images this configuration describes.
    pub fn spec(&self) -> ImageSpec {
        self.image
    }

    /// How far (in rows up, and columns either side) the logits at one position can see:
    /// ⌊input_kernel/2⌋ + layers·⌊block_kernel/2⌋.
    pub fn receptive_radius(&self) -> usize {
        self.input_kernel / 2 + self.layers * (self.block_kernel / 2)
    }
}

/// A residual block: 2h →ReLU→ 1×1 → h →ReLU→ k×k mask B → h →ReLU→ 1×1 → 2h, plus the input.
#[derive(Debug, Clone)]
pub struct ResidualBlock {
    reduce: MaskedConv2d,
    spatial: MaskedConv2d,
    expand: MaskedConv2d,
}

impl ResidualBlock {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let (h, c, k) = (cfg.hidden, cfg.image.channels, cfg.block_kernel);
        Ok(Self {
            reduce: masked_conv2d(MaskKind::B, 2 * h, h, (1, 1), c, vb.pp("reduce"))?,
            spatial: masked_conv2d(MaskKind::B, h, h, (k, k), c, vb.pp("spatial"))?,
            expand: masked_conv2d(MaskKind::B, h, 2 * h, (1, 1), c, vb.pp("expand"))?,
        })
    }
}

impl ResidualBlock {
    /// Channels-last: `(b, H, W, 2h)` → `(b, H, W, 2h)`.
    pub fn forward_channels_last(&self, x: &Tensor) -> Result<Tensor> {
        // Each ReLU is taken on the output of the layer before it, so that the spatial and expand
        // layers read their inputs as they are.
        let y = self.reduce.forward_fused(x, Fused { relu_input: true, relu_output: true, residual: None })?;
        let y = self.spatial.forward_fused(&y, Fused { relu_output: true, ..Fused::default() })?;
        self.expand.forward_fused(&y, Fused { residual: Some(x), ..Fused::default() })
    }
}

/// The PixelCNN: [`pixel_ops::network::Network`] of residual blocks.
pub type PixelCnn = Network<ResidualBlock>;

/// What the PixelCNN adds to [`Network`]: its blocks, how it is built, its receptive field, its
/// session.
impl Layer for ResidualBlock {
    type Config = Config;

    fn network(cfg: &Config, vb: VarBuilder) -> Result<PixelCnn> {
        if cfg.image.channels != 1 && cfg.image.channels != 3 {
            candle_core::bail!("PixelCNN takes 1 or 3 colour channels, the config says {}", cfg.image.channels);
        }
        // The PixelCNN's inputs are always centred.
        let input = InputStack::new(cfg.spec(), InputEncoding::Centred, cfg.features(), cfg.input_kernel, vb.clone())?;
        let blocks =
            (0..cfg.layers).map(|i| ResidualBlock::new(cfg, vb.pp("blocks").pp(i))).collect::<Result<Vec<_>>>()?;
        let output =
            OutputStack::new(cfg.features(), cfg.output_features, cfg.image.channels, cfg.image.head, vb.pp("output"))?;
        let parts = Parts { spec: cfg.spec(), conditioning: 0, input, layers: blocks, output_projection: None, output };
        Ok(Network::from_parts(cfg, parts))
    }

    /// [`Config::receptive_radius`]: the naive step runs the network on the window the logits can
    /// see, rows `row−R..=row` and columns `col−R..=col+R`.
    fn receptive_radius(cfg: &Config) -> Option<usize> {
        Some(cfg.receptive_radius())
    }

    /// The block; the PixelCNN takes no conditioning map.
    fn forward_given(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        if cond.is_some() {
            candle_core::bail!("the PixelCNN takes no conditioning map");
        }
        self.forward_channels_last(x)
    }

    fn session<'a>(model: &'a PixelCnn, batch: usize, cond: Option<&Tensor>) -> Result<Box<dyn SamplingSession + 'a>> {
        if cond.is_some() {
            candle_core::bail!("the PixelCNN takes no conditioning map");
        }
        Ok(Box::new(Session::new(model, batch)?))
    }
}

/// The cached sampler of the PixelCNN: per value, one position of every block. Each block keeps the
/// map its k×k convolution reads (the reduced features, after ReLU) at every position computed so
/// far; the taps below and right of the centre are masked, so zeros stand in for them.
pub struct Session<'a> {
    model: &'a PixelCnn,
    /// Per block, per position `row * W + col`: the k×k convolution's input there, `(b, h)`.
    reduced: Vec<Vec<Option<Tensor>>>,
    zero: Tensor,
}

impl<'a> Session<'a> {
    pub fn new(model: &'a PixelCnn, batch: usize) -> Result<Self> {
        let (cfg, input) = (model.config(), model.input());
        let positions = cfg.image.height * cfg.image.width;
        let zero = Tensor::zeros((batch, cfg.hidden), input.dtype(), input.device())?;
        Ok(Self { model, reduced: vec![vec![None; positions]; model.layers().len()], zero })
    }
}

impl SamplingSession for Session<'_> {
    fn step(&mut self, x: &Tensor, row: usize, col: usize, channel: usize) -> Result<Tensor> {
        let (m, cfg) = (self.model, self.model.config());
        let (h, w) = (cfg.image.height, cfg.image.width);
        let mut y = m.input().forward_at(x, row, col)?;
        let r = cfg.block_kernel / 2;
        for (block, cache) in m.layers().iter().zip(&mut self.reduced) {
            let reduced = block.reduce.forward_at(&y.relu()?)?.relu()?;
            cache[row * w + col] = Some(reduced);
            // The k×k window around (row, col): computed positions (rows above, this row up to col).
            let mut taps = Vec::with_capacity((2 * r + 1) * (2 * r + 1));
            for dy in 0..=2 * r {
                for dx in 0..=2 * r {
                    let (yy, xx) = ((row + dy).checked_sub(r), (col + dx).checked_sub(r));
                    let tap = match (yy, xx) {
                        (Some(yy), Some(xx)) if yy < h && xx < w && (yy, xx) <= (row, col) => {
                            cache[yy * w + xx].as_ref()
                        }
                        _ => None,
                    };
                    taps.push(tap.unwrap_or(&self.zero));
                }
            }
            let window = Tensor::stack(&taps, 2)?.reshape((self.zero.dim(0)?, cfg.hidden, 2 * r + 1, 2 * r + 1))?;
            let spatial = block.spatial.forward_at(&window)?.relu()?;
            y = (y + block.expand.forward_at(&spatial)?)?;
        }
        m.output_stack().forward_at(&y)?.i((.., channel, ..))
    }
}
