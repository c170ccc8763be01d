//! The registry: a model id → its manifest entry → verified weights → a [`PixelModel`] built as
//! [`crate::architecture`] says.

use std::collections::BTreeSet;
use std::ops::Deref;
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use pixel_ops::weights_config::{read_config, WeightsConfig};
use pixel_ops::PixelModel;
use safetensors::SafeTensors;

use crate::architecture::ModelConfig;
use crate::error::ZooError;
use crate::manifest::{Manifest, ModelEntry};
use crate::weights::{FetchedWeights, Resolver, WeightsSource};

/// A loaded model with where it came from. Derefs to the [`PixelModel`].
pub struct LoadedModel {
    pub entry: ModelEntry,
    pub source: WeightsSource,
    /// Hex sha256 of the weights loaded (the manifest's, unless an explicit file differs).
    pub weights_sha256: String,
    pub model: Box<dyn PixelModel>,
}

impl Deref for LoadedModel {
    type Target = dyn PixelModel;
    fn deref(&self) -> &Self::Target {
        self.model.as_ref()
    }
}

impl AsRef<dyn PixelModel> for LoadedModel {
    fn as_ref(&self) -> &(dyn PixelModel + 'static) {
        self.model.as_ref()
    }
}

/// The model zoo: the manifest and a weights resolver.
#[derive(Debug, Clone)]
pub struct Zoo {
    pub manifest: Manifest,
    pub resolver: Resolver,
}

impl Zoo {
    /// The embedded manifest (or the file `$PIXEL_ZOO_MANIFEST` names), weights resolved as
    /// [`Resolver::from_env`] says.
    pub fn new() -> Result<Self, ZooError> {
        let manifest = match std::env::var_os(crate::manifest::MANIFEST_ENV) {
            Some(p) if !p.is_empty() => Manifest::from_file(Path::new(&p))?,
            _ => Manifest::embedded()?,
        };
        Ok(Self { manifest, resolver: Resolver::from_env() })
    }

    /// The entry of `id`, or an error naming the nearest ids.
    pub fn entry(&self, id: &str) -> Result<&ModelEntry, ZooError> {
        self.manifest.get(id)
    }

    /// Loads `id` on `device`, finding (and if needed downloading) its weights.
    pub fn load(&self, id: &str, device: &Device) -> Result<LoadedModel, ZooError> {
        self.load_with(id, device, None)
    }

    /// Loads `id` on `device` from `weights` if given, else as [`Zoo::load`].
    pub fn load_with(&self, id: &str, device: &Device, weights: Option<&Path>) -> Result<LoadedModel, ZooError> {
        self.load_as(id, device, weights, DType::F32)
    }

    /// Loads `id` with its weights converted to `dtype` (F32 is the zoo's; F64 serves exact
    /// comparisons with the reference; F16/BF16 may serve GPUs).
    pub fn load_as(
        &self,
        id: &str,
        device: &Device,
        weights: Option<&Path>,
        dtype: DType,
    ) -> Result<LoadedModel, ZooError> {
        let entry = self.entry(id)?.clone();
        let FetchedWeights { source, bytes, sha256: weights_sha256 } = self.resolver.fetch(&entry, weights)?;
        let model = build(&entry, source.path(), bytes, device, dtype)?;
        tracing::debug!(id, path = %source.path().display(), "loaded");
        Ok(LoadedModel { entry, source, weights_sha256, model })
    }
}

/// Checks a safetensors file against its manifest entry and builds the network.
pub fn build(
    entry: &ModelEntry,
    path: &Path,
    bytes: Vec<u8>,
    device: &Device,
    dtype: DType,
) -> Result<Box<dyn PixelModel>, ZooError> {
    let unusable = |msg: String| ZooError::BadWeights { id: entry.id.clone(), path: path.to_path_buf(), msg };
    let st = SafeTensors::deserialize(&bytes).map_err(|e| unusable(format!("not a valid safetensors file ({e})")))?;
    for (name, view) in st.tensors() {
        let finite = match view.dtype() {
            safetensors::Dtype::F32 => {
                view.data().chunks_exact(4).all(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite())
            }
            safetensors::Dtype::F16 => view.data().chunks_exact(2).all(|b| f16_is_finite([b[0], b[1]])),
            other => {
                return Err(unusable(format!("tensor '{name}' is {other:?}; the zoo's weights are F32 or F16")));
            }
        };
        if !finite {
            return Err(unusable(format!("tensor '{name}' holds NaN or infinite values")));
        }
    }
    let WeightsConfig { architecture: file_arch, config } = read_config(&bytes).map_err(|e| unusable(e.to_string()))?;
    if file_arch.as_ref().and_then(|a| a.as_str()) != Some(entry.architecture()) {
        return Err(unusable(format!(
            "the file's architecture is {file_arch:?}, the manifest says '{}'",
            entry.architecture()
        )));
    }
    let from_file = ModelConfig::from_json(entry.architecture(), &config)
        .map_err(|e| unusable(format!("the file's config {config}: {e}")))?;
    if from_file != entry.config {
        return Err(unusable(format!(
            "the file's config {config} differs from the manifest's {}",
            entry.config.to_json()
        )));
    }
    let mut in_file: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    drop(st);
    let used = Arc::new(Mutex::new(BTreeSet::new()));
    let tensors = candle_core::safetensors::BufferedSafetensors::new(bytes).map_err(|e| unusable(e.to_string()))?;
    let vb =
        VarBuilder::from_backend(Box::new(ReadRecorder { inner: tensors, used: used.clone() }), dtype, device.clone());
    let model = entry.config.build(vb).map_err(|e| unusable(e.to_string()))?;
    let used = used.lock().unwrap_or_else(|p| p.into_inner());
    in_file.retain(|n| !used.contains(n));
    in_file.sort();
    if !in_file.is_empty() {
        return Err(unusable(format!(
            "{} tensor(s) the {} network does not have: {}; these are another model's weights, or the \
             config does not match them",
            in_file.len(),
            entry.architecture(),
            in_file.iter().take(5).map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(model)
}

/// Whether the little-endian IEEE half-precision number `bytes` is finite (its exponent bits are
/// not all ones). Weights files may store float16 (half the size of float32, for networks whose
/// scores it leaves unchanged); the network is built in the dtype asked for either way.
fn f16_is_finite(bytes: [u8; 2]) -> bool {
    u16::from_le_bytes(bytes) & 0x7c00 != 0x7c00
}

/// The safetensors backend of the [`VarBuilder`], recording which tensors the network reads, so
/// that tensors it does not read are found (a file of another model or config).
struct ReadRecorder {
    inner: candle_core::safetensors::BufferedSafetensors,
    used: Arc<Mutex<BTreeSet<String>>>,
}

impl ReadRecorder {
    fn record(&self, name: &str) {
        self.used.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_string());
    }
}

impl SimpleBackend for ReadRecorder {
    fn get(
        &self,
        s: candle_core::Shape,
        name: &str,
        h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<candle_core::Tensor> {
        self.record(name);
        SimpleBackend::get(&self.inner, s, name, h, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<candle_core::Tensor> {
        self.record(name);
        SimpleBackend::get_unchecked(&self.inner, name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        SimpleBackend::contains_tensor(&self.inner, name)
    }
}

#[cfg(test)]
mod tests {
    use super::f16_is_finite;

    #[test]
    fn float16_finiteness_is_read_from_the_exponent_bits() {
        // 1.0, the largest finite value, the smallest subnormal, -0.0: finite.
        for bits in [0x3c00u16, 0x7bff, 0x0001, 0x8000] {
            assert!(f16_is_finite(bits.to_le_bytes()), "{bits:#06x}");
        }
        // +inf, -inf, a quiet NaN, a NaN with a low payload bit: not.
        for bits in [0x7c00u16, 0xfc00, 0x7e00, 0x7c01] {
            assert!(!f16_is_finite(bits.to_le_bytes()), "{bits:#06x}");
        }
    }
}
