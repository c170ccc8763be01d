//! The command line (clap): `zoo`'s global options and each subcommand's arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use pixel_ops::sampler::{Method, SampleOptions};

#[derive(Parser, Debug)]
#[command(name = "zoo", version, about = "PixelRNN-family image models: sample, eval, score, complete, upscale, compress", long_about = None)]
pub struct Cli {
    /// Where to run: auto picks cuda, then metal, then cpu.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto, global = true)]
    pub device: DeviceArg,
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    Auto,
    Cpu,
    Cuda,
    Metal,
}

/// Options shared by every command that loads a model.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// Model id (see `zoo list`).
    pub id: String,
    /// Use this weights file instead of the manifest's (its config must match the model's).
    #[arg(long)]
    pub weights: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the models: id, architecture, data set, parameters, test NLL, where the weights are.
    List(ListArgs),
    /// Draw new images and write them as a PNG grid.
    Sample(SampleArgs),
    /// Test-set NLL: nats/image (MNIST models) or bits/dim (CIFAR-10 models).
    Eval(EvalArgs),
    /// NLL of each image (PNG or any format the image crate reads).
    Score(ScoreArgs),
    /// Raw logits of images to a safetensors file: `logits` (n, c, levels, h, w) f32, `images`
    /// (n, c, h, w) u8; levels is 1 (Bernoulli logit) or 256 (softmax logits).
    Logits(ImagesToFileArgs),
    /// Keep the top rows of an image and sample the rest: original, occluded, completions side by side.
    Complete(CompleteArgs),
    /// Classify images with a class-conditional model, as a generative classifier: the class c
    /// that maximises p(x | c). Given images, or the test set (with its accuracy).
    Classify(ClassifyArgs),
    /// Upscale a low-resolution image with a multi-scale model: the image becomes the small image
    /// x[::f, ::f] and the model samples the other pixels given it (exact at the input's pixels).
    /// Writes the input (enlarged), the upscalings and, with --from-full, the original side by side.
    Upscale(UpscaleArgs),
    /// Put a model's weights in the local cache: download from the hub, or for a third-party model
    /// download the original checkpoint and convert it (as `zoo import` does).
    Fetch(FetchArgs),
    /// The data sets: `zoo data fetch mnist|cifar10` downloads the official archives, checks their
    /// published MD5s and unpacks them into the zoo's data cache ($PIXEL_ZOO_CACHE/data, default
    /// ~/.cache/pixel-zoo/data), where `eval` and `bench-compress` look last.
    #[command(subcommand)]
    Data(DataCommand),
    /// Sampling speed of each model on this machine: one forward pass of a batch, naive sampling
    /// (the network per value; estimated from timed steps), cached sampling (1 thread and all cores).
    Bench(BenchArgs),
    /// Compress images losslessly with a model (range coding of its probabilities) into one file.
    Compress(ImagesToFileArgs),
    /// Decode a file written by `zoo compress` into PNGs under their original names (the model is
    /// the one named in the file; its weights must be the ones it was coded with).
    Decompress(DecompressArgs),
    /// Compression benchmark: per model, on its test set, bits/dim of the compressed file beside
    /// the model's NLL, PNG (maximum compression) and lossless WebP; encode / decode images/s.
    BenchCompress(BenchCompressArgs),
    /// Convert a third-party checkpoint into the zoo's layout and install it in the local weights
    /// cache ($PIXEL_ZOO_CACHE, default ~/.cache/pixel-zoo/weights); every command then works on
    /// its id offline. The file's sha256 must be the manifest's.
    Import(ImportArgs),
}

// The arguments of each subcommand, in the order `--help` lists them; the subcommand's own help
// text is the doc comment of its `Command` variant above.

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[arg(long)]
    pub json: bool,
}

/// How the values are drawn: the options `sample`, `complete` and `upscale` share.
#[derive(clap::Args, Debug)]
pub struct DrawArgs {
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Logits are divided by this; 1 samples the model's distribution, below 1 gives sharper, more
    /// likely images.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// Run the network once per value instead of the cached sampler (the same images, slower:
    /// the reference the cached path is tested against).
    #[arg(long)]
    pub naive: bool,
}

impl DrawArgs {
    /// The sampler's options for `count` images (or completions of each given image).
    pub fn options(&self, count: usize) -> SampleOptions {
        let method = if self.naive { Method::Naive } else { Method::Cached };
        SampleOptions { count, seed: self.seed, temperature: self.temperature, method, ..Default::default() }
    }
}

#[derive(clap::Args, Debug)]
pub struct SampleArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Number of images.
    #[arg(short = 'n', long = "count", default_value_t = 16)]
    pub count: usize,
    #[command(flatten)]
    pub draw: DrawArgs,
    /// Class-conditional models: the class of every image, a name of the data set's classes
    /// (horse, 7) or an index; `all`: -n images of each class, one row per class. Without it each
    /// image's class is drawn from the uniform prior p(c) (logged with -v).
    #[arg(long, value_name = "CLASS")]
    pub class: Option<String>,
    #[arg(short, long, default_value = "samples.png")]
    pub output: PathBuf,
    /// Also write an animated GIF of the grid being drawn, value by value in the model's order
    /// (a frame per row's worth of pixels).
    #[arg(long, value_name = "FILE")]
    pub gif: Option<PathBuf>,
}

/// Where the test set is, how much of it, and how many images per forward pass: what `eval` and
/// `classify --test` share.
#[derive(clap::Args, Debug)]
pub struct TestSetArgs {
    /// Directory holding mnist/ and cifar10/ (default: $PIXEL_ZOO_DATA, else the data cache that
    /// `zoo data fetch` fills).
    #[arg(long, env = "PIXEL_ZOO_DATA")]
    pub data_dir: Option<PathBuf>,
    /// Only the first N test images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Images per forward pass (a class-conditional model's: per class).
    #[arg(long, default_value_t = 50)]
    pub batch: usize,
}

impl TestSetArgs {
    /// An error for a batch or a limit of 0.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.batch == 0 {
            anyhow::bail!("--batch must be at least 1");
        }
        if self.limit == Some(0) {
            anyhow::bail!("--limit must be at least 1");
        }
        Ok(())
    }
}

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub test_set: TestSetArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

/// A model, images and one output file: `logits` and `compress`.
#[derive(clap::Args, Debug)]
pub struct ImagesToFileArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Images of the model's size and channels (PNG or any format the image crate reads).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    #[arg(short, long)]
    pub output: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct CompleteArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub image: PathBuf,
    /// Rows kept from the top.
    #[arg(long)]
    pub keep_rows: usize,
    /// Completions.
    #[arg(short = 'n', long = "count", default_value_t = 4)]
    pub count: usize,
    #[command(flatten)]
    pub draw: DrawArgs,
    /// Class-conditional models: the class of the completions, a name or an index. Without it each
    /// completion's class is drawn from p(c | the kept rows) (logged with -v).
    #[arg(long, value_name = "CLASS")]
    pub class: Option<String>,
    #[arg(short, long, default_value = "completions.png")]
    pub output: PathBuf,
    /// Also write an animated GIF of the completions being drawn (a frame per row).
    #[arg(long, value_name = "FILE")]
    pub gif: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct ClassifyArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Images of the model's size and channels, or directories of them (their .png, .jpg, .jpeg,
    /// .bmp, .gif and .webp files, in name order).
    #[arg(long, value_name = "IMAGE|DIR", num_args = 1.., required_unless_present = "test", conflicts_with = "test")]
    pub images: Vec<PathBuf>,
    /// Classify the model's data set's test images instead, and print the accuracy
    /// (`--data-dir`, `--limit`).
    #[arg(long)]
    pub test: bool,
    #[command(flatten)]
    pub test_set: TestSetArgs,
    /// Per image: the class, and log p(x | c) and p(c | x) for every class.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct UpscaleArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The low-resolution image: the small stage's size and channels (14x14 grey for
    /// multiscale-mnist, 16x16 RGB for multiscale-cifar10). Several: one row of the grid each.
    #[arg(long, value_name = "SMALL", num_args = 1.., required_unless_present = "from_full", conflicts_with = "from_full")]
    pub image: Vec<PathBuf>,
    /// Instead of --image: full-size images whose pixels x[::f, ::f] are the inputs; each row of
    /// the grid then ends with the original, and the NLL of each given its small image is printed.
    #[arg(long, value_name = "IMAGE", num_args = 1..)]
    pub from_full: Vec<PathBuf>,
    /// Upscalings.
    #[arg(short = 'n', long = "count", default_value_t = 4)]
    pub count: usize,
    #[command(flatten)]
    pub draw: DrawArgs,
    #[arg(short, long, default_value = "upscaled.png")]
    pub output: PathBuf,
    /// Also write each upscaling as its own PNG in this directory (created if missing):
    /// upscaled-0.png, upscaled-1.png, ...; with several inputs upscaled-I-K.png (input I, upscaling K).
    #[arg(long, value_name = "DIR")]
    pub images: Option<PathBuf>,
    /// Also write an animated GIF of the upscalings being drawn (a frame per row's worth of pixels).
    #[arg(long, value_name = "FILE")]
    pub gif: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct FetchArgs {
    pub id: String,
    /// Third-party models: download the original from this URL (a mirror) instead of the manifest's.
    #[arg(long)]
    pub url: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Download a data set's official archives (MNIST: the four IDX .gz files from torchvision's
    /// mirrors; CIFAR-10: cifar-10-binary.tar.gz), check each against its published MD5, record
    /// its sha256, and unpack it into the data cache. Nothing is kept unless all of it checked out.
    Fetch(DataFetchArgs),
}

#[derive(clap::Args, Debug)]
pub struct DataFetchArgs {
    pub dataset: DataSetName,
    /// Download the files from this base URL (a mirror; each file name is appended) instead of the
    /// official ones. The published MD5s still apply.
    #[arg(long)]
    pub url: Option<String>,
    /// Download again even if the data cache already holds the data set.
    #[arg(long)]
    pub force: bool,
}

/// The data sets `zoo data fetch` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DataSetName {
    /// MNIST (60,000 + 10,000 images; the zoo binarizes or thresholds it).
    Mnist,
    /// CIFAR-10, binary version (50,000 + 10,000 images).
    Cifar10,
}

impl DataSetName {
    pub fn name(self) -> &'static str {
        match self {
            DataSetName::Mnist => "mnist",
            DataSetName::Cifar10 => "cifar10",
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Model ids (default: every model whose weights are here).
    pub ids: Vec<String>,
    /// Images per batch / sample.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Runs of the forward pass (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Time the forward pass only (the figure to compare with `reference/`'s bench_forward.py).
    #[arg(long)]
    pub forward_only: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct DecompressArgs {
    pub file: PathBuf,
    /// Directory for the images (created if missing).
    #[arg(short, long)]
    pub output: PathBuf,
    /// The weights the file was coded with, if not the manifest's.
    #[arg(long)]
    pub weights: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct BenchCompressArgs {
    /// Model ids (default: every model whose weights are here).
    pub ids: Vec<String>,
    /// Directory holding mnist/ and cifar10/ (default: $PIXEL_ZOO_DATA, else the data cache that
    /// `zoo data fetch` fills).
    #[arg(long, env = "PIXEL_ZOO_DATA")]
    pub data_dir: Option<PathBuf>,
    /// The first N test images.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The checkpoint's format.
    pub format: ImportFormat,
    /// The original file (e.g. best_params.npz of taimir/pixel-rnn-lasagne).
    pub file: PathBuf,
    /// The model id to import as (default: the manifest's model of this format).
    #[arg(long)]
    pub id: Option<String>,
    /// Write the converted safetensors file here instead of installing it.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// Third-party checkpoint formats `zoo import` converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFormat {
    /// Theano/Lasagne parameters in a numpy .npz (taimir/pixel-rnn-lasagne's Diagonal BiLSTM).
    LasagneNpz,
}

impl ImportFormat {
    pub fn name(self) -> &'static str {
        match self {
            ImportFormat::LasagneNpz => "lasagne-npz",
        }
    }
}
