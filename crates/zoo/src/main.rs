//! `zoo`: sample, evaluate, score and complete images with the pixel-zoo models.
//!
//! Every subcommand goes through the one registry ([`pixel_zoo::Zoo`]); each is a thin layer over
//! the library. Errors print their whole chain and exit with status 1; nothing half-written is
//! left behind (outputs are written to a temporary file and renamed).

mod bench;
mod cli;
mod commands;
mod compress;

use clap::Parser;

use crate::cli::{Cli, Command};

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
            Command::Sample(_)
            | Command::Complete(_)
            | Command::Bench(_)
            | Command::Compress(_)
            | Command::Decompress(_)
            | Command::BenchCompress(_) => 1,
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
