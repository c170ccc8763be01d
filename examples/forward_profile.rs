//! Where the time of a forward pass goes: the input convolution, each layer (for a Row LSTM /
//! Diagonal BiLSTM: its recurrent scan — input-to-state map, one step per row / diagonal, gates —
//! and its residual 1×1; for a PixelCNN: each residual block), and the output stack. Medians of
//! --reps runs on one batch of random images (`RAYON_NUM_THREADS=1` for one thread, as the zoo
//! runs each part of a batch).
//!
//!     cargo run --release --example forward_profile -- weights/diagonal-bilstm-cifar10.safetensors --batch 16
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use pixel_zoo::ops::weights_config::read_config;
use pixel_zoo::{ModelConfig, PixelModel};

fn median_ms(reps: usize, mut f: impl FnMut() -> candle_core::Result<Tensor>) -> candle_core::Result<f64> {
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[reps / 2])
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: forward_profile WEIGHTS.safetensors [--batch N] [--reps N]";
    let path = args.first().ok_or_else(|| anyhow::anyhow!(usage))?;
    let opt = |name: &str, default: usize| -> anyhow::Result<usize> {
        match args.iter().position(|a| a == name) {
            Some(i) => Ok(args.get(i + 1).ok_or_else(|| anyhow::anyhow!(usage))?.parse()?),
            None => Ok(default),
        }
    };
    let (batch, reps) = (opt("--batch", 16)?, opt("--reps", 5)?);
    let bytes = std::fs::read(path)?;
    let file = read_config(&bytes)?;
    let arch = file.architecture.unwrap_or_default();
    let cfg = ModelConfig::from_json(arch.as_str().unwrap_or_default(), &file.config).map_err(anyhow::Error::msg)?;
    let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &Device::Cpu)?;
    let s = cfg.spec();
    let values = s.head.values() as u64;
    let px: Vec<u8> =
        (0..(batch * s.dims()) as u64).map(|k| (pixel_zoo::data::datasets::splitmix64(1, k) % values) as u8).collect();
    let x = Tensor::from_vec(px, (batch, s.channels, s.height, s.width), &Device::Cpu)?;
    println!("{path}: {}, batch {batch}, medians of {reps} runs (ms)", cfg.architecture());
    // (name, scan, whole layer) per layer, plus the input conv, output and total.
    macro_rules! profile {
        ($model:expr) => {{
            let model = $model;
            let total = median_ms(reps, || model.logits(&x))?;
            let input = median_ms(reps, || model.layer_input(&x))?;
            let mut y = model.layer_input(&x)?;
            let mut layers_ms = 0.0;
            for (i, layer) in model.layers().iter().enumerate() {
                let scan = median_ms(reps, || layer.scan(&y, None))?;
                let whole = median_ms(reps, || layer.forward(&y))?;
                println!(
                    "  layer {i}: {whole:8.1}  (recurrent scan {scan:.1}, residual 1x1 and add {:.1})",
                    whole - scan
                );
                layers_ms += whole;
                y = layer.forward(&y)?;
            }
            println!(
                "  input conv {input:.1}; layers {layers_ms:.1}; output stack and rest {:.1}; total logits {total:.1}",
                total - input - layers_ms
            );
        }};
    }
    match &cfg {
        ModelConfig::RowLstm(c) => profile!(row_lstm::RowLstm::new(c, vb)?),
        ModelConfig::DiagonalBiLstm(c) => profile!(diagonal_bilstm::DiagonalBiLstm::new(c, vb)?),
        ModelConfig::PixelCnn(c) => {
            let model = pixelcnn::PixelCnn::new(c, vb)?;
            let total = median_ms(reps, || model.logits(&x))?;
            let input = median_ms(reps, || model.layer_input(&x))?;
            let mut y = model.layer_input(&x)?;
            let mut blocks_ms = 0.0;
            for (i, block) in model.layers().iter().enumerate() {
                let ms = median_ms(reps, || block.forward_channels_last(&y))?;
                println!("  block {i}: {ms:8.1}");
                blocks_ms += ms;
                y = block.forward_channels_last(&y)?;
            }
            println!(
                "  input conv {input:.1}; blocks {blocks_ms:.1}; output stack {:.1}; total logits {total:.1}",
                total - input - blocks_ms
            );
        }
        other => anyhow::bail!("{path}: a {} has no profile here", other.architecture()),
    }
    Ok(())
}
