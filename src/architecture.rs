//! The library's table of the zoo's architectures: their names, how a configuration is parsed and
//! checked, how a network is built from one, and the third-party checkpoint formats. The
//! manifest, the registry and the command-line tool go through it rather than naming
//! architectures themselves.
//!
//! It is not the only place that names them. Adding an architecture means a crate under
//! `models/` (and its line in the workspace `Cargo.toml`), its line in the `architectures!` table
//! below (and an arm in [`ModelConfig::classes`] if it is class-conditional); a variant of `multiscale`'s `Stage` if it can be a
//! stage of the multi-scale model; its model, presets and fixtures in the PyTorch reference
//! (`reference/`), which trains the weights and writes the test fixtures; and its entries in
//! `weights-manifest.toml`. Tests, examples (`examples/forward_profile.rs`) and scripts name
//! architectures too, as do the importer's third-party formats (a format converts to one
//! architecture).

use candle_core::Result;
use candle_nn::VarBuilder;
use pixel_ops::{ImageSpec, PixelModel};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The zoo's architectures, one line each: the [`ModelConfig`] variant, the manifest name, the
/// config type and the network it builds (`NETWORK::new(&config, vb)`). From these lines
/// `architectures!` writes [`ARCHITECTURES`], [`ModelConfig`], the name → config parse behind
/// [`ModelConfig::from_toml`] / [`ModelConfig::from_json`], and [`ModelConfig::architecture`],
/// [`ModelConfig::spec`] and [`ModelConfig::build`].
macro_rules! architectures {
    ($($Variant:ident => $name:literal, $Config:ty, $Network:ty;)*) => {
        /// The architectures the zoo can build, by their manifest names.
        pub const ARCHITECTURES: &[&str] = &[$($name),*];

        /// The configuration of a network of any architecture: what a manifest entry's
        /// `[model.config]` and a weights file's `config` metadata (without its `architecture` key)
        /// describe.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
        #[serde(untagged)]
        pub enum ModelConfig {
            $($Variant($Config),)*
        }

        impl ModelConfig {
            /// Parses `value` as a config of `architecture` and wraps it in its variant.
            fn parse(architecture: &str, value: impl ParseConfig) -> std::result::Result<Self, String> {
                match architecture {
                    $($name => value.parse::<$Config>().map(Self::$Variant),)*
                    other => Err(format!("unknown architecture '{other}' (known: {})", ARCHITECTURES.join(", "))),
                }
            }

            /// The architecture's manifest name.
            pub fn architecture(&self) -> &'static str {
                match self {
                    $(Self::$Variant(_) => $name,)*
                }
            }

            /// The images the network describes.
            pub fn spec(&self) -> ImageSpec {
                match self {
                    $(Self::$Variant(c) => c.spec(),)*
                }
            }

            /// Builds the network from `vb` (tensor names as the reference's; masks applied here).
            pub fn build(&self, vb: VarBuilder) -> Result<Box<dyn PixelModel>> {
                Ok(match self {
                    $(Self::$Variant(c) => Box::new(<$Network>::new(c, vb)?),)*
                })
            }
        }
    };
}

architectures! {
    PixelCnn => "pixelcnn", pixelcnn::Config, pixelcnn::PixelCnn;
    RowLstm => "row-lstm", row_lstm::Config, row_lstm::RowLstm;
    DiagonalBiLstm => "diagonal-bilstm", diagonal_bilstm::Config, diagonal_bilstm::DiagonalBiLstm;
    MultiScale => "multiscale", multiscale::Config, multiscale::MultiScale;
    MixturePixelCnn => "mixture-pixelcnn", mixture_pixelcnn::Config, mixture_pixelcnn::MixturePixelCnn;
    GatedPixelCnn => "gated-pixelcnn", gated_pixelcnn::Config, gated_pixelcnn::GatedPixelCnn;
}

/// The architectures that no model of the manifest uses yet (the zoo can build them from a weights
/// file; their trained weights are still to come).
pub const WITHOUT_WEIGHTS: &[&str] = &[];

/// The third-party checkpoint formats the zoo can convert ([`crate::import`]).
pub const FORMATS: &[&str] = &["lasagne-npz"];

/// A manifest's TOML table or a weights file's JSON, parsed as any architecture's config.
trait ParseConfig {
    fn parse<C: DeserializeOwned>(self) -> std::result::Result<C, String>;
}

impl ParseConfig for toml::Value {
    /// The error is one line (toml puts the key on a line of its own).
    fn parse<C: DeserializeOwned>(self) -> std::result::Result<C, String> {
        self.try_into::<C>().map_err(|e| e.to_string().trim_end().replace('\n', " "))
    }
}

impl ParseConfig for &serde_json::Value {
    fn parse<C: DeserializeOwned>(self) -> std::result::Result<C, String> {
        serde_json::from_value::<C>(self.clone()).map_err(|e| e.to_string())
    }
}

impl ModelConfig {
    /// Parses a manifest's `[model.config]` table as a config of `architecture`. The error is one
    /// line (toml puts the key on a line of its own).
    pub fn from_toml(architecture: &str, table: &toml::Table) -> std::result::Result<Self, String> {
        Self::parse(architecture, toml::Value::Table(table.clone()))
    }

    /// Parses the JSON config of a weights file's metadata (without its `architecture` key) as a
    /// config of `architecture`.
    pub fn from_json(architecture: &str, value: &serde_json::Value) -> std::result::Result<Self, String> {
        Self::parse(architecture, value)
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
            _ => 0,
        }
    }

    /// The config as JSON, with every field (defaults included) and the keys sorted.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("configs are plain data")
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
    /// this table (its line of `architectures!` names it as the metadata does) and
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
