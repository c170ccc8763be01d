//! Third-party checkpoints converted into the zoo's own layout (`zoo import`, `zoo fetch`).
//!
//! A manifest entry with an `[model.upstream]` table names the original file (URL, sha256, format,
//! licence). The original is never part of the project, nor is the converted file: the user imports
//! it, and the result goes into the zoo's local weights cache ([`crate::weights::Resolver::zoo_cache`]).
//! The conversion is deterministic, so the converted file's sha256 is pinned in the manifest like
//! any other weights.
//!
//! Formats:
//! - `lasagne-npz`: taimir/pixel-rnn-lasagne's `best_params.npz` (Theano/Lasagne, a Diagonal BiLSTM
//!   on thresholded MNIST): arrays `arr_0 … arr_{n}` in network order; the zoo's Diagonal BiLSTM with
//!   `residual_conv = false`, `state_bias = "scalar"`, `output_projection = true`,
//!   `input_encoding = "unit"` computes the same network.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};

use crate::architecture::{ModelConfig, FORMATS};
use crate::checksum::sha256_hex;
use crate::error::ZooError;
use crate::manifest::ModelEntry;

/// Converts the third-party file at `path` for `entry`: checks its sha256 against the manifest's
/// `upstream.sha256`, converts it and checks the result against the manifest's `sha256`.
/// Returns the bytes of the zoo's safetensors file.
pub fn convert(entry: &ModelEntry, path: &Path) -> Result<Vec<u8>, ZooError> {
    let upstream = entry.upstream.as_ref().ok_or_else(|| ZooError::Import {
        path: path.to_path_buf(),
        format: "?".into(),
        msg: format!("'{}' is not a third-party model: its weights are the zoo's own (fetch '{}')", entry.id, entry.id),
    })?;
    let fail = |msg: String| ZooError::Import { path: path.to_path_buf(), format: upstream.format.clone(), msg };
    let original = std::fs::read(path).map_err(|source| ZooError::Io { path: path.to_path_buf(), source })?;
    let actual = sha256_hex(&original);
    if actual != upstream.sha256 {
        return Err(fail(format!(
            "sha256 is {actual}, not {} — the file published as {} ({} at commit {}); \
             download that file, unchanged",
            upstream.sha256, upstream.url, upstream.path, upstream.commit
        )));
    }
    let bytes = match upstream.format.as_str() {
        "lasagne-npz" => lasagne_npz(entry, path).map_err(|e| fail(e.to_string()))?,
        other => return Err(fail(format!("no converter for '{other}' (known: {})", FORMATS.join(", ")))),
    };
    let converted = sha256_hex(&bytes);
    if converted != entry.sha256 {
        return Err(fail(format!(
            "the converted weights have sha256 {converted}, the manifest expects {}: this zoo's converter \
             does not reproduce the pinned conversion",
            entry.sha256
        )));
    }
    Ok(bytes)
}

/// Converts `path` and writes the result to `out`, or installs it in the zoo's local weights cache
/// (`cache_dir/<entry.weights>`). Returns where it went. The write is atomic.
pub fn install(entry: &ModelEntry, path: &Path, cache_dir: &Path, out: Option<&Path>) -> Result<PathBuf, ZooError> {
    let bytes = convert(entry, path)?;
    let dest = match out {
        Some(p) => p.to_path_buf(),
        None => {
            std::fs::create_dir_all(cache_dir)
                .map_err(|source| ZooError::Io { path: cache_dir.to_path_buf(), source })?;
            cache_dir.join(&entry.weights)
        }
    };
    pixel_data::files::write_atomic(&dest, &bytes)?;
    Ok(dest)
}

/// taimir/pixel-rnn-lasagne's arrays → the zoo's Diagonal BiLSTM tensors. The npz holds the
/// network's parameters in construction order (`arr_0` …), each layer's two directions in turn;
/// `layout` below lists them with their shapes in the npz and in the zoo.
fn lasagne_npz(entry: &ModelEntry, path: &Path) -> Result<Vec<u8>, String> {
    let config = entry.config.to_json();
    let fits = |cfg: &diagonal_bilstm::Config| {
        !cfg.residual_conv
            && cfg.state_bias == diagonal_bilstm::StateBias::Scalar
            && cfg.output_projection
            && cfg.image.channels == 1
    };
    let cfg = match &entry.config {
        ModelConfig::DiagonalBiLstm(cfg) if fits(cfg) => cfg,
        _ => {
            return Err(format!(
                "lasagne-npz converts to a one-channel diagonal-bilstm with residual_conv = false, \
                 state_bias = \"scalar\", output_projection = true; '{}' is a {} with {config}",
                entry.id,
                entry.architecture()
            ))
        }
    };
    let arrays: HashMap<String, Tensor> = Tensor::read_npz(path)
        .map_err(|e| format!("not a readable .npz file ({e})"))?
        .into_iter()
        .map(|(name, t)| (name.trim_end_matches(".npy").to_string(), t))
        .collect();
    let (f, h, d) = (cfg.features, cfg.hidden, cfg.output_features);
    let k = cfg.input_kernel;
    // (zoo name, shape in the npz, shape in the zoo), in the npz's network order.
    let mut layout: Vec<(String, Vec<usize>, Vec<usize>)> = vec![
        ("input_conv.weight".into(), vec![f, 1, k, k], vec![f, 1, k, k]),
        ("input_conv.bias".into(), vec![f], vec![f]),
    ];
    for layer in 0..cfg.layers {
        for dir in ["left_to_right", "right_to_left"] {
            let p = format!("layers.{layer}.{dir}");
            layout.push((format!("{p}.input_to_state.weight"), vec![4 * h, f, 1, 1], vec![4 * h, f, 1, 1]));
            layout.push((format!("{p}.input_to_state.bias"), vec![4 * h], vec![4 * h]));
            // K (4h, h, 2): tap 0 reads the row above in the skewed map, tap 1 the same row.
            layout.push((format!("{p}.state_to_state"), vec![4 * h, h, 2], vec![4 * h, h, 2, 1]));
            layout.push((format!("{p}.state_bias"), vec![1], vec![1]));
        }
    }
    for (name, inp, out) in [("output_projection", f, f), ("output.hidden", f, d), ("output.logits", d, 1)] {
        layout.push((format!("{name}.weight"), vec![out, inp, 1, 1], vec![out, inp, 1, 1]));
        layout.push((format!("{name}.bias"), vec![out], vec![out]));
    }
    if arrays.len() != layout.len() {
        return Err(format!(
            "{} arrays, but a {}-layer network has {}: another checkpoint than this entry's",
            arrays.len(),
            cfg.layers,
            layout.len()
        ));
    }
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(layout.len());
    for (i, (name, npz_shape, zoo_shape)) in layout.into_iter().enumerate() {
        let key = format!("arr_{i}");
        let t = arrays.get(&key).ok_or_else(|| format!("no array '{key}'"))?;
        if t.dims() != npz_shape.as_slice() {
            return Err(format!("{key} ({name}) has shape {:?}, expected {npz_shape:?}", t.dims()));
        }
        if t.dtype() != DType::F32 {
            return Err(format!("{key} ({name}) is {:?}, expected f32", t.dtype()));
        }
        let values = t.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(|e| e.to_string())?;
        if !values.iter().all(|v| v.is_finite()) {
            return Err(format!("{key} ({name}) holds NaN or infinite values"));
        }
        tensors.push((name, zoo_shape, values.iter().flat_map(|v| v.to_le_bytes()).collect()));
    }
    let views = tensors
        .iter()
        .map(|(name, shape, data)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut with_arch = serde_json::Map::new();
    with_arch.insert("architecture".into(), serde_json::Value::from(entry.architecture()));
    with_arch.extend(config.as_object().cloned().unwrap_or_default());
    // One metadata key: safetensors writes metadata from a HashMap, so more keys would come out in
    // an arbitrary order and the converted file's sha256 would not be reproducible.
    let metadata = HashMap::from([("config".to_string(), serde_json::Value::Object(with_arch).to_string())]);
    safetensors::serialize(views, Some(metadata)).map_err(|e| e.to_string())
}
