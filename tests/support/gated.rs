//! A class-conditional model for the tool's tests, while no Gated PixelCNN weights ship: the
//! reference's random-weight fixture `gated-pixelcnn-random-rgb` (4 classes) made a 10-class
//! CIFAR-10 model of 32x32 images (its class biases repeated and scaled so that every class has
//! its own; the network's other weights do not depend on the image size), installed under the id
//! [`ID`] in a manifest of its own.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The test model's id.
pub const ID: &str = "gated-pixelcnn-cifar10-test";

/// Writes the model's weights into `dir/weights/` and a manifest naming it into
/// `dir/manifest.toml`; returns (the manifest, the weights folder): what `PIXEL_ZOO_MANIFEST` and
/// `PIXEL_ZOO_WEIGHTS_DIR` take.
pub fn install(root: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    let fixture = std::fs::read(root.join("tests/fixtures/gated-pixelcnn-random-rgb.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&fixture).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&fixture).unwrap();
    let mut metadata = meta.metadata().clone().unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&metadata["config"]).unwrap();
    assert_eq!(config["classes"], 4);
    config["classes"] = 10.into();
    config["height"] = 32.into();
    config["width"] = 32.into();
    metadata.insert("config".into(), config.to_string());
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in st.tensors() {
        let (shape, data) = (view.shape().to_vec(), view.data().to_vec());
        if name.ends_with("_class.weight") {
            // (4, f) → (10, f): row c is row c mod 4 times 1 + c / 4.
            let f = shape[1];
            let rows: Vec<f32> = data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            let bytes: Vec<u8> = (0..10)
                .flat_map(|c| rows[(c % 4) * f..(c % 4 + 1) * f].iter().map(move |v| v * (1 + c / 4) as f32))
                .flat_map(f32::to_le_bytes)
                .collect();
            tensors.push((name, vec![10, f], bytes));
        } else {
            tensors.push((name, shape, data));
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, s, d)| {
            (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap())
        })
        .collect();
    let bytes = safetensors::serialize(views, Some(metadata)).unwrap();
    let weights = dir.join("weights");
    std::fs::create_dir_all(&weights).unwrap();
    std::fs::write(weights.join(format!("{ID}.safetensors")), &bytes).unwrap();
    let config_toml: String = config
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.as_str() != "architecture")
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    let manifest = format!(
        "[[model]]\nid = \"{ID}\"\narchitecture = \"gated-pixelcnn\"\ndataset = \"cifar10\"\n\
         weights = \"{ID}.safetensors\"\nsha256 = \"{}\"\nhf_repo = \"pixel-zoo/{ID}\"\n\n[model.config]\n{config_toml}",
        pixel_zoo::checksum::sha256_hex(&bytes)
    );
    let path = dir.join("manifest.toml");
    std::fs::write(&path, manifest).unwrap();
    (path, weights)
}
