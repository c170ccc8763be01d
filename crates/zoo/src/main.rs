//! `zoo`: sample, evaluate, score and complete images with the pixel-zoo models.
//!
//! Every subcommand goes through the one registry ([`pixel_zoo::Zoo`]); each is a thin layer over
//! the library. Errors print their whole chain (and the command or flag that helps, which the
//! library's messages leave to the binary) and exit with status 1; nothing half-written is
//! left behind (outputs are written to a temporary file and renamed).
//!
//! [`cli`] is the command line, [`commands`] one module per subcommand and the dispatcher,
//! [`context`] what the subcommands share.

mod cli;
mod commands;
mod context;

use clap::Parser;

use crate::cli::Cli;

/// `zoo list | head -1`: when the reader goes away, stop as other Unix tools do (SIGPIPE) instead of
/// panicking in `println!` (Rust ignores SIGPIPE, so the write fails and `println!` panics). Sockets
/// are unaffected: std sends with MSG_NOSIGNAL / SO_NOSIGPIPE.
#[cfg(unix)]
fn stop_quietly_on_a_closed_pipe() {
    // SAFETY: restores the default disposition of one signal, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// glibc's malloc, left to itself, gives the memory at the top of its heap back to the system as
/// soon as more than 128 KiB of it is free, and takes it back page fault by page fault. A forward
/// pass allocates each layer's output (hundreds of KiB to a few MiB) and frees the one before, so
/// it paid that round trip at every layer: `pixelcnn-mnist`, batch 8, one thread, 11.0 → 9.5 ms a
/// pass. Here the heap keeps up to 256 MiB free at its top and grows 64 MiB at a time, and blocks
/// up to 32 MiB come from it rather than from their own mappings. Memory in use at once does not
/// change; freed memory stays with the process until it exits.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only changes the allocator's parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

fn main() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    keep_freed_memory();
    #[cfg(unix)]
    stop_quietly_on_a_closed_pipe();
    let cli = Cli::parse();
    context::set_threads_per_product(&cli.command);
    let default_level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    if let Err(e) = commands::run(cli) {
        match context::command_line_hint(&e) {
            Some(hint) => eprintln!("error: {e:#}; {hint}"),
            None => eprintln!("error: {e:#}"),
        }
        std::process::exit(1);
    }
}
