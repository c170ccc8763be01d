//! The library's table of the zoo's architectures: their names, how a configuration is parsed and
//! checked, how a network is built from one, and the third-party checkpoint formats. The
//! manifest, the registry and the command-line tool go through it rather than naming
//! architectures themselves.
//!
//! It is not the only place that names them. Adding an architecture means a crate under
//! `models/` (and its line in the workspace `Cargo.toml`), a variant of [`ModelConfig`] and a line
//! in each `match` below; a variant of `multiscale`'s `SmallStage` / `BigStage` if it can be a
//! stage of the multi-scale model; its model, presets and fixtures in the PyTorch reference
//! (`reference/`), which trains the weights and writes the test fixtures; and its entries in
//! `weights-manifest.toml`. Tests, examples (`examples/forward_profile.rs`) and scripts name
//! architectures too, as do the importer's third-party formats (a format converts to one
//! architecture).

use candle_core::Result;
use candle_nn::VarBuilder;
use pixel_ops::{ImageSpec, PixelModel};
use serde::Serialize;

/// The architectures the zoo can build, by their manifest names.
pub const ARCHITECTURES: &[&str] =
    &["pixelcnn", "row-lstm", "diagonal-bilstm", "multiscale", "mixture-pixelcnn", "gated-pixelcnn"];

/// The architectures that no model of the manifest uses yet (the zoo can build them from a weights
/// file; their trained weights are still to come).
pub const WITHOUT_WEIGHTS: &[&str] = &["mixture-pixelcnn"];

/// The third-party checkpoint formats the zoo can convert ([`crate::import`]).
pub const FORMATS: &[&str] = &["lasagne-npz"];

/// The configuration of a network of any architecture: what a manifest entry's `[model.config]` and
/// a weights file's `config` metadata (without its `architecture` key) describe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ModelConfig {
    PixelCnn(pixelcnn::Config),
    RowLstm(row_lstm::Config),
    DiagonalBiLstm(diagonal_bilstm::Config),
    MultiScale(multiscale::Config),
    MixturePixelCnn(mixture_pixelcnn::Config),
    GatedPixelCnn(gated_pixelcnn::Config),
}

/// Evaluates `$parse` (a `Result<$C, String>`) with `$C` the config type of architecture `$arch`
/// and wraps the value in its variant.
macro_rules! by_architecture {
    ($arch:expr, $C:ident => $parse:expr) => {
        match $arch {
            "pixelcnn" => {
                type $C = pixelcnn::Config;
                $parse.map(ModelConfig::PixelCnn)
            }
            "row-lstm" => {
                type $C = row_lstm::Config;
                $parse.map(ModelConfig::RowLstm)
            }
            "diagonal-bilstm" => {
                type $C = diagonal_bilstm::Config;
                $parse.map(ModelConfig::DiagonalBiLstm)
            }
            "multiscale" => {
                type $C = multiscale::Config;
                $parse.map(ModelConfig::MultiScale)
            }
            "mixture-pixelcnn" => {
                type $C = mixture_pixelcnn::Config;
                $parse.map(ModelConfig::MixturePixelCnn)
            }
            "gated-pixelcnn" => {
                type $C = gated_pixelcnn::Config;
                $parse.map(ModelConfig::GatedPixelCnn)
            }
            other => Err(format!("unknown architecture '{other}' (known: {})", ARCHITECTURES.join(", "))),
        }
    };
}

impl ModelConfig {
    /// Parses a manifest's `[model.config]` table as a config of `architecture`. The error is one
    /// line (toml puts the key on a line of its own).
    pub fn from_toml(architecture: &str, table: &toml::Table) -> std::result::Result<Self, String> {
        let value = toml::Value::Table(table.clone());
        by_architecture!(architecture, C => value.clone().try_into::<C>().map_err(|e| e.to_string().trim_end().replace('\n', " ")))
    }

    /// Parses the JSON config of a weights file's metadata (without its `architecture` key) as a
    /// config of `architecture`.
    pub fn from_json(architecture: &str, value: &serde_json::Value) -> std::result::Result<Self, String> {
        by_architecture!(architecture, C => serde_json::from_value::<C>(value.clone()).map_err(|e| e.to_string()))
    }

    /// The architecture's manifest name.
    pub fn architecture(&self) -> &'static str {
        match self {
            Self::PixelCnn(_) => "pixelcnn",
            Self::RowLstm(_) => "row-lstm",
            Self::DiagonalBiLstm(_) => "diagonal-bilstm",
            Self::MultiScale(_) => "multiscale",
            Self::MixturePixelCnn(_) => "mixture-pixelcnn",
            Self::GatedPixelCnn(_) => "gated-pixelcnn",
        }
    }

    /// The images the network describes.
    pub fn spec(&self) -> ImageSpec {
        match self {
            Self::PixelCnn(c) => c.spec(),
            Self::RowLstm(c) => c.spec(),
            Self::DiagonalBiLstm(c) => c.spec(),
            Self::MultiScale(c) => c.spec(),
            Self::MixturePixelCnn(c) => c.spec(),
            Self::GatedPixelCnn(c) => c.spec(),
        }
    }

    /// For a multi-scale model, n / s: the small image holds the pixels at rows and columns that
    /// are multiples of it.
    pub fn multiscale_factor(&self) -> Option<usize> {
        match self {
            Self::MultiScale(c) => Some(c.factor),
            _ => None,
        }
    }

    /// The class labels a class-conditional network is conditioned on; 0 for an unconditional one.
    pub fn classes(&self) -> usize {
        match self {
            Self::GatedPixelCnn(c) => c.classes,
            Self::PixelCnn(_) | Self::RowLstm(_) | Self::DiagonalBiLstm(_) | Self::MultiScale(_) => 0,
            Self::MixturePixelCnn(_) => 0,
        }
    }

    /// The config as JSON, with every field (defaults included) and the keys sorted.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("configs are plain data")
    }

    /// Builds the network from `vb` (tensor names as the reference's; masks applied here).
    pub fn build(&self, vb: VarBuilder) -> Result<Box<dyn PixelModel>> {
        Ok(match self {
            Self::PixelCnn(c) => Box::new(pixelcnn::PixelCnn::new(c, vb)?),
            Self::RowLstm(c) => Box::new(row_lstm::RowLstm::new(c, vb)?),
            Self::DiagonalBiLstm(c) => Box::new(diagonal_bilstm::DiagonalBiLstm::new(c, vb)?),
            Self::MultiScale(c) => Box::new(multiscale::MultiScale::new(c, vb)?),
            Self::MixturePixelCnn(c) => Box::new(mixture_pixelcnn::MixturePixelCnn::new(c, vb)?),
            Self::GatedPixelCnn(c) => Box::new(gated_pixelcnn::GatedPixelCnn::new(c, vb)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_architecture_parses_from_toml_and_json_alike() {
        let manifest = crate::Manifest::embedded().unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for entry in &manifest.models {
            let json = entry.config.to_json();
            let again = ModelConfig::from_json(entry.config.architecture(), &json).unwrap();
            assert_eq!(again, entry.config, "{}", entry.id);
            seen.insert(entry.config.architecture());
        }
        // Every architecture has a model in the manifest, except those listed as still without
        // weights, which must not have one (so that the list is kept up to date).
        let without: std::collections::BTreeSet<&str> = WITHOUT_WEIGHTS.iter().copied().collect();
        for arch in ARCHITECTURES {
            assert_eq!(seen.contains(arch), !without.contains(arch), "{arch}: in the manifest, or in WITHOUT_WEIGHTS");
        }
        assert!(without.iter().all(|a| ARCHITECTURES.contains(a)), "WITHOUT_WEIGHTS names unknown architectures");
        let err = ModelConfig::from_json("pixel-transformer", &serde_json::json!({})).unwrap_err();
        assert!(err.contains("unknown architecture 'pixel-transformer'"), "{err}");
    }

    /// Every random-weight fixture the reference wrote (`tests/fixtures/ARCH-random-NAME.safetensors`,
    /// one or more per architecture) names an architecture of [`ARCHITECTURES`], parses through
    /// this table (its arm of `by_architecture!` and of [`ModelConfig::architecture`] agree) and
    /// builds into a network of the right shape; and every architecture has one. So a new
    /// architecture whose fixture exists but whose name, arm or variant is missing here fails this
    /// test, not a user.
    #[test]
    fn every_reference_fixture_parses_and_builds_through_this_table() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut seen = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.contains("-random-") || name.ends_with(".logits.safetensors") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let meta = pixel_ops::weights_config::read_config(&bytes).unwrap();
            let arch = meta.architecture.as_ref().and_then(|a| a.as_str()).unwrap_or_default().to_string();
            assert!(name.starts_with(&format!("{arch}-random-")), "{name}: metadata says architecture {arch:?}");
            assert!(ARCHITECTURES.contains(&arch.as_str()), "{name}: add '{arch}' to ARCHITECTURES");
            let config = ModelConfig::from_json(&arch, &meta.config).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(config.architecture(), arch, "{name}: the name arm and `architecture()` disagree");
            assert_eq!(ModelConfig::from_json(&arch, &config.to_json()).unwrap(), config, "{name}");
            let vb = VarBuilder::from_buffered_safetensors(bytes, candle_core::DType::F32, &candle_core::Device::Cpu)
                .unwrap();
            let model = config.build(vb).unwrap();
            let s = model.spec();
            assert_eq!(s, config.spec(), "{name}");
            let x =
                candle_core::Tensor::zeros((1, s.channels, s.height, s.width), candle_core::DType::U8, model.device())
                    .unwrap();
            let logits = model.logits(&x).unwrap();
            assert_eq!(logits.dims(), &[1, s.channels, s.head.levels(), s.height, s.width], "{name}");
            seen.insert(arch);
        }
        for arch in ARCHITECTURES {
            assert!(seen.contains(*arch), "{arch}: no random fixture (python -m pixelzoo_ref.fixtures --only {arch})");
        }
    }
}
