//! `zoo`: sample, evaluate, score and complete images with the pixel-zoo models.
//!
//! Every subcommand goes through the one registry ([`pixel_zoo::Zoo`]); each is a thin layer over
//! the library. Errors print their whole chain and exit with status 1; nothing half-written is
//! left behind (outputs are written to a temporary file and renamed).

mod bench;
mod commands;
mod compress;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "zoo", version, about = "PixelRNN-family image models: sample, eval, score, complete", long_about = None)]
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
    List {
        #[arg(long)]
        json: bool,
    },
    /// Draw new images and write them as a PNG grid.
    Sample {
        #[command(flatten)]
        model: ModelArgs,
        /// Number of images.
        #[arg(short = 'n', long = "count", default_value_t = 16)]
        count: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Logits are divided by this; 1 samples the model's distribution.
        #[arg(long, default_value_t = 1.0)]
        temperature: f64,
        /// Run the network once per value instead of the cached sampler (the same images, slower:
        /// the reference the cached path is tested against).
        #[arg(long)]
        naive: bool,
        #[arg(short, long, default_value = "samples.png")]
        output: PathBuf,
    },
    /// Test-set NLL: nats/image (MNIST models) or bits/dim (CIFAR-10 models).
    Eval {
        #[command(flatten)]
        model: ModelArgs,
        /// Directory holding mnist/ and cifar10/ (default: $PIXEL_ZOO_DATA).
        #[arg(long, env = "PIXEL_ZOO_DATA")]
        data_dir: Option<PathBuf>,
        /// Only the first N test images.
        #[arg(long)]
        limit: Option<usize>,
        /// Images per forward pass.
        #[arg(long, default_value_t = 50)]
        batch: usize,
        #[arg(long)]
        json: bool,
    },
    /// NLL of each image (PNG or any format the image crate reads).
    Score {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(required = true)]
        images: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Raw logits of images to a safetensors file: `logits` (n, c, levels, h, w) f32, `images`
    /// (n, c, h, w) u8; levels is 1 (Bernoulli logit) or 256 (softmax logits).
    Logits {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(required = true)]
        images: Vec<PathBuf>,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Keep the top rows of an image and sample the rest: original, occluded, completions side by side.
    Complete {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        image: PathBuf,
        /// Rows kept from the top.
        #[arg(long)]
        keep_rows: usize,
        /// Completions.
        #[arg(short = 'n', long = "count", default_value_t = 4)]
        count: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value_t = 1.0)]
        temperature: f64,
        /// Run the network once per value instead of the cached sampler.
        #[arg(long)]
        naive: bool,
        #[arg(short, long, default_value = "completions.png")]
        output: PathBuf,
    },
    /// Put a model's weights in the local cache: download from the hub, or for a third-party model
    /// download the original checkpoint and convert it (as `zoo import` does).
    Fetch {
        id: String,
        /// Third-party models: download the original from this URL (a mirror) instead of the manifest's.
        #[arg(long)]
        url: Option<String>,
    },
    /// Sampling speed of each model on this machine: one forward pass of a batch, naive sampling
    /// (the network per value; estimated from timed steps), cached sampling (1 thread and all cores).
    Bench {
        /// Model ids (default: every model whose weights are here).
        ids: Vec<String>,
        /// Images per batch / sample.
        #[arg(long, default_value_t = 16)]
        batch: usize,
        /// Runs of the forward pass (the median is reported).
        #[arg(long, default_value_t = 5)]
        reps: usize,
        #[arg(long)]
        json: bool,
    },
    /// Compress images losslessly with a model (range coding of its probabilities) into one file.
    Compress {
        #[command(flatten)]
        model: ModelArgs,
        /// Images of the model's size and channels (PNG or any format the image crate reads).
        #[arg(required = true)]
        images: Vec<PathBuf>,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Decode a file written by `zoo compress` into PNGs under their original names (the model is
    /// the one named in the file; its weights must be the ones it was coded with).
    Decompress {
        file: PathBuf,
        /// Directory for the images (created if missing).
        #[arg(short, long)]
        output: PathBuf,
        /// The weights the file was coded with, if not the manifest's.
        #[arg(long)]
        weights: Option<PathBuf>,
    },
    /// Compression benchmark: per model, on its test set, bits/dim of the compressed file beside
    /// the model's NLL, PNG (maximum compression) and lossless WebP; encode / decode images/s.
    BenchCompress {
        /// Model ids (default: every model whose weights are here).
        ids: Vec<String>,
        /// Directory holding mnist/ and cifar10/ (default: $PIXEL_ZOO_DATA).
        #[arg(long, env = "PIXEL_ZOO_DATA")]
        data_dir: Option<PathBuf>,
        /// The first N test images.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Convert a third-party checkpoint into the zoo's layout and install it in the local weights
    /// cache ($PIXEL_ZOO_CACHE, default ~/.cache/pixel-zoo/weights); every command then works on
    /// its id offline. The file's sha256 must be the manifest's.
    Import {
        /// The checkpoint's format.
        format: ImportFormat,
        /// The original file (e.g. best_params.npz of taimir/pixel-rnn-lasagne).
        file: PathBuf,
        /// The model id to import as (default: the manifest's model of this format).
        #[arg(long)]
        id: Option<String>,
        /// Write the converted safetensors file here instead of installing it.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
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

/// `zoo list | head -1`: when the reader goes away, stop as other Unix tools do (SIGPIPE) instead of
/// panicking in `println!` (Rust ignores SIGPIPE, so the write fails and `println!` panics). Sockets
/// are unaffected: std sends with MSG_NOSIGNAL / SO_NOSIGPIPE.
#[cfg(unix)]
fn stop_quietly_on_a_closed_pipe() {
    extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
    }
    const SIGPIPE: i32 = 13; // Linux, macOS and the BSDs
    const SIG_DFL: usize = 0;
    // SAFETY: restores the default disposition of one signal, before any thread starts.
    unsafe {
        signal(SIGPIPE, SIG_DFL);
    }
}

fn main() {
    #[cfg(unix)]
    stop_quietly_on_a_closed_pipe();
    let cli = Cli::parse();
    // Candle's CPU matrix products ask for the thread count on every call, and without
    // RAYON_NUM_THREADS that re-reads the CPU topology from sysfs each time. Sampling splits the
    // batch over the cores itself, so there each product runs on one thread (3x faster measured:
    // 16 diagonal-bilstm-mnist samples 4.5 s → 1.6 s); elsewhere, one per core. Set before any
    // thread starts; the user's RAYON_NUM_THREADS wins.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let per_op = match cli.command {
            Command::Sample { .. }
            | Command::Complete { .. }
            | Command::Bench { .. }
            | Command::Compress { .. }
            | Command::Decompress { .. }
            | Command::BenchCompress { .. } => 1,
            _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        std::env::set_var("RAYON_NUM_THREADS", per_op.to_string());
    }
    let default_level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    if let Err(e) = commands::run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
