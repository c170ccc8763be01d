//! Weights from the hub: the real `hf-hub` download, through a local server that answers like the
//! hub's file-resolve endpoint, into a temporary cache; checksum failures leave nothing cached.

#[path = "support/hub.rs"]
mod hub;

use std::collections::HashMap;
use std::path::Path;

use hub::HubServer;
use pixel_zoo::manifest::ModelEntry;
use pixel_zoo::weights::{sha256_hex, Resolver, WeightsSource};
use pixel_zoo::{Device, Manifest, Zoo, ZooError};

const FIXTURE: &str = "tests/fixtures/pixelcnn-random-rgb.safetensors";

fn entry(bytes: &[u8]) -> ModelEntry {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
    let json = meta.metadata().as_ref().unwrap()["config"].clone();
    let mut config: toml::Table = serde_json::from_str(&json).unwrap();
    config.remove("architecture");
    ModelEntry {
        id: "pixelcnn-test".into(),
        architecture: "pixelcnn".into(),
        dataset: "cifar10".into(),
        weights: "pixelcnn-test.safetensors".into(),
        sha256: sha256_hex(bytes),
        hf_repo: Some("pixel-zoo/test-model".into()),
        hf_revision: Some("main".into()),
        upstream: None,
        config,
        paper: None,
        metrics: None,
        training: None,
    }
}

fn zoo(entry: ModelEntry, endpoint: &str, cache: &Path, weights_dir: &Path) -> Zoo {
    let resolver = Resolver {
        weights_dir: weights_dir.to_path_buf(),
        zoo_cache: cache.join("pixel-zoo"),
        cache: hf_hub::Cache::new(cache.to_path_buf()),
        endpoint: endpoint.to_string(),
        offline: false,
        progress: false,
    };
    Zoo { manifest: Manifest { models: vec![entry] }, resolver }
}

#[test]
fn downloads_through_hf_hub_into_the_cache_then_loads_offline() {
    let bytes = std::fs::read(FIXTURE).unwrap();
    let e = entry(&bytes);
    let server = HubServer::start(HashMap::from([(
        "/pixel-zoo/test-model/resolve/main/pixelcnn-test.safetensors".to_string(),
        bytes.clone(),
    )]));
    let (cache, weights) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut z = zoo(e, &server.endpoint, cache.path(), weights.path());

    let m = z.load("pixelcnn-test", &Device::Cpu).unwrap();
    assert!(matches!(m.source, WeightsSource::Downloaded(_)), "{:?}", m.source);
    assert_eq!(std::fs::read(m.source.path()).unwrap(), bytes);
    assert!(server.requests.load(std::sync::atomic::Ordering::SeqCst) >= 2);

    // Second time: from the cache, even offline, without a request.
    drop(server);
    z.resolver.offline = true;
    let m = z.load("pixelcnn-test", &Device::Cpu).unwrap();
    assert!(matches!(m.source, WeightsSource::Cache(_)), "{:?}", m.source);
}

#[test]
fn a_wrong_file_from_the_hub_is_refused_and_not_cached() {
    let bytes = std::fs::read(FIXTURE).unwrap();
    let e = entry(&bytes);
    let mut wrong = bytes.clone();
    let last = wrong.len() - 1;
    wrong[last] ^= 0xff;
    let server = HubServer::start(HashMap::from([(
        "/pixel-zoo/test-model/resolve/main/pixelcnn-test.safetensors".to_string(),
        wrong,
    )]));
    let (cache, weights) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let z = zoo(e, &server.endpoint, cache.path(), weights.path());
    let err = z.load("pixelcnn-test", &Device::Cpu).err().expect("must fail");
    assert!(matches!(err, ZooError::ChecksumMismatch { .. }), "{err}");
    assert!(err.to_string().contains("sha256"), "{err}");
    assert!(z.resolver.locate(z.entry("pixelcnn-test").unwrap()).is_none(), "a corrupt file stayed in the cache");
}

#[test]
fn missing_on_the_hub_and_offline_give_clear_errors() {
    let bytes = std::fs::read(FIXTURE).unwrap();
    let server = HubServer::start(HashMap::new());
    let (cache, weights) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut z = zoo(entry(&bytes), &server.endpoint, cache.path(), weights.path());
    let err = z.load("pixelcnn-test", &Device::Cpu).err().expect("404 must fail").to_string();
    assert!(err.contains("404") && err.contains("--weights"), "{err}");
    z.resolver.offline = true;
    let err = z.load("pixelcnn-test", &Device::Cpu).err().expect("offline must fail").to_string();
    assert!(err.contains("HF_HUB_OFFLINE") && err.contains("zoo fetch pixelcnn-test"), "{err}");
}
