//! The subcommands, one module each, and [`run`], which hands the parsed command line to its
//! subcommand. Each subcommand parses its inputs, calls the library and writes its output
//! atomically; what they share is in [`crate::context`], never in one another.

mod bench;
mod bench_compress;
mod classify;
mod complete;
mod compress;
mod data;
mod decompress;
mod eval;
mod fetch;
mod import;
mod list;
mod logits;
mod sample;
mod score;
mod upscale;

use anyhow::Result;
use pixel_zoo::Zoo;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> Result<()> {
    let mut zoo = Zoo::new()?;
    zoo.resolver.progress = true;
    let device = cli.device;
    match cli.command {
        Command::List(args) => list::run(&zoo, args),
        Command::Fetch(args) => fetch::run(&zoo, args),
        Command::Data(command) => data::run(&zoo, command),
        Command::Bench(args) => bench::run(&zoo, device, args),
        Command::Import(args) => import::run(&zoo, args),
        Command::Compress(args) => compress::run(&zoo, device, args),
        Command::Decompress(args) => decompress::run(&zoo, device, args),
        Command::BenchCompress(args) => bench_compress::run(&zoo, device, args),
        Command::Sample(args) => sample::run(&zoo, device, args),
        Command::Eval(args) => eval::run(&zoo, device, args),
        Command::Score(args) => score::run(&zoo, device, args),
        Command::Logits(args) => logits::run(&zoo, device, args),
        Command::Complete(args) => complete::run(&zoo, device, args),
        Command::Classify(args) => classify::run(&zoo, device, args),
        Command::Upscale(args) => upscale::run(&zoo, device, args),
    }
}
