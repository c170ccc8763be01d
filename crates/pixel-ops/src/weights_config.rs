//! The config a weights file carries: the zoo's weights are safetensors files whose metadata
//! holds `config`, a JSON object of the architecture's config fields and `architecture`, the
//! architecture's name. Every reader of a weights file's config goes through [`read_config`].

/// A weights file's config, as its metadata holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightsConfig {
    /// The `architecture` entry (a string in the zoo's files), `None` if there is none.
    pub architecture: Option<serde_json::Value>,
    /// The other entries: the architecture's config fields.
    pub config: serde_json::Value,
}

/// Why a weights file's config cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file's header is not safetensors.
    #[error("{0}")]
    Safetensors(#[from] safetensors::SafeTensorError),
    #[error("no 'config' in the safetensors metadata")]
    NoConfig,
    #[error("metadata config is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
}

/// The config in the metadata of the safetensors file `bytes` (only its header is read).
pub fn read_config(bytes: &[u8]) -> Result<WeightsConfig, ConfigError> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)?;
    let json = meta.metadata().as_ref().and_then(|m| m.get("config")).ok_or(ConfigError::NoConfig)?;
    let mut config: serde_json::Value = serde_json::from_str(json)?;
    let architecture = config.as_object_mut().and_then(|o| o.remove("architecture"));
    Ok(WeightsConfig { architecture, config })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn file(metadata: Option<HashMap<String, String>>) -> Vec<u8> {
        let none: [(&str, safetensors::tensor::TensorView); 0] = [];
        safetensors::serialize(none, metadata).expect("serialise")
    }

    #[test]
    fn the_architecture_is_taken_out_of_the_config() {
        let meta = HashMap::from([("config".to_string(), r#"{"architecture":"pixelcnn","hidden":32}"#.to_string())]);
        let c = read_config(&file(Some(meta))).expect("a config");
        assert_eq!(c.architecture, Some(serde_json::json!("pixelcnn")));
        assert_eq!(c.config, serde_json::json!({"hidden": 32}));
    }

    #[test]
    fn a_missing_or_broken_config_says_so() {
        assert!(matches!(read_config(&file(None)), Err(ConfigError::NoConfig)));
        let meta = HashMap::from([("config".to_string(), "{not json".to_string())]);
        let err = read_config(&file(Some(meta))).expect_err("not JSON");
        assert!(err.to_string().starts_with("metadata config is not JSON: "), "{err}");
        assert!(matches!(read_config(b"\x05"), Err(ConfigError::Safetensors(_))));
    }
}
