//! Weights from the hub, through a local server that answers like the hub's file-resolve endpoint,
//! into a temporary Hugging Face cache: the download, its retries after server errors (5xx) and
//! connections closed half-way, and the failures that must leave nothing in the cache (404, a
//! wrong file, a server that keeps failing); a corrupt cached copy is replaced.

#![cfg(feature = "hub")]

#[path = "support/hub.rs"]
mod hub;

use std::collections::HashMap;
use std::path::Path;

use hub::{unused_port, Fault, HubServer};
use pixel_zoo::checksum::sha256_hex;
use pixel_zoo::manifest::ModelEntry;
use pixel_zoo::weights::{Resolver, WeightsSource};
use pixel_zoo::{Device, Manifest, ModelConfig, Zoo, ZooError};

const FIXTURE: &str = "tests/fixtures/pixelcnn-random-rgb.safetensors";
const URL: &str = "/pixel-zoo/test-model/resolve/main/pixelcnn-test.safetensors";

/// Every file (or link) under `dir`: what a failed download must not leave.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let (p, t) = (e.path(), e.file_type().unwrap());
            if t.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A zoo on a fresh cache whose hub is `server`; the cache folder comes back too.
fn zoo_on(server: &HubServer, bytes: &[u8]) -> (Zoo, tempfile::TempDir, tempfile::TempDir) {
    let (cache, weights) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let z = zoo(entry(bytes), &server.endpoint, cache.path(), weights.path());
    (z, cache, weights)
}

fn requests(server: &HubServer) -> usize {
    server.requests.load(std::sync::atomic::Ordering::SeqCst)
}

fn entry(bytes: &[u8]) -> ModelEntry {
    let config = pixel_zoo::ops::weights_config::read_config(bytes).unwrap().config;
    ModelEntry {
        id: "pixelcnn-test".into(),
        dataset: "cifar10".into(),
        weights: "pixelcnn-test.safetensors".into(),
        sha256: sha256_hex(bytes),
        hf_repo: Some("pixel-zoo/test-model".into()),
        hf_revision: Some("main".into()),
        upstream: None,
        config: ModelConfig::from_json("pixelcnn", &config).unwrap(),
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
fn downloads_from_the_hub_into_its_cache_then_loads_offline() {
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
    assert_eq!(requests(&server), 1);
    // The Hugging Face cache layout: the blob named by its sha256, the snapshot link, the ref.
    let repo = cache.path().join("models--pixel-zoo--test-model");
    assert_eq!(std::fs::read(repo.join("blobs").join(sha256_hex(&bytes))).unwrap(), bytes);
    let commit = std::fs::read_to_string(repo.join("refs/main")).unwrap();
    assert_eq!(m.source.path(), repo.join("snapshots").join(&commit).join("pixelcnn-test.safetensors"));
    assert_eq!(files_under(cache.path()).len(), 3, "{:?}", files_under(cache.path()));

    // Second time: from the cache, even offline, without a request.
    drop(server);
    z.resolver.offline = true;
    let m = z.load("pixelcnn-test", &Device::Cpu).unwrap();
    assert!(matches!(m.source, WeightsSource::Cache(_)), "{:?}", m.source);
}

#[test]
fn a_wrong_file_from_the_hub_is_refused_and_not_cached() {
    let bytes = std::fs::read(FIXTURE).unwrap();
    let mut wrong = bytes.clone();
    let last = wrong.len() - 1;
    wrong[last] ^= 0xff;
    let server = HubServer::start(HashMap::from([(URL.to_string(), wrong)]));
    let (z, cache, _w) = zoo_on(&server, &bytes);
    let err = z.load("pixelcnn-test", &Device::Cpu).err().expect("must fail");
    assert!(matches!(err, ZooError::Download { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("sha256")
            && msg.contains("nothing was cached")
            && msg.contains("give the weights file explicitly"),
        "{msg}"
    );
    assert_eq!(requests(&server), 1, "a wrong file is not retried");
    assert!(z.resolver.locate(z.entry("pixelcnn-test").unwrap()).is_none(), "a corrupt file stayed in the cache");
    assert!(files_under(cache.path()).is_empty(), "{:?}", files_under(cache.path()));
}

#[test]
fn missing_on_the_hub_and_offline_give_clear_errors() {
    let bytes = std::fs::read(FIXTURE).unwrap();
    let server = HubServer::start(HashMap::new());
    let (mut z, cache, _w) = zoo_on(&server, &bytes);
    let err = z.load("pixelcnn-test", &Device::Cpu).err().expect("404 must fail").to_string();
    assert!(err.contains("HTTP 404") && err.contains("give the weights file explicitly"), "{err}");
    assert_eq!(requests(&server), 1, "a 404 is not retried");
    assert!(files_under(cache.path()).is_empty(), "{:?}", files_under(cache.path()));
    z.resolver.offline = true;
    let err = z.load("pixelcnn-test", &Device::Cpu).err().expect("offline must fail").to_string();
    assert!(err.contains("HF_HUB_OFFLINE") && err.contains("fetch 'pixelcnn-test'"), "{err}");
}

#[test]
fn server_errors_and_dropped_connections_are_retried() {
    let bytes = std::fs::read(FIXTURE).unwrap();
    for faults in [vec![Fault::Status(500), Fault::Status(503)], vec![Fault::CutAfter(1000)], vec![Fault::CutAfter(0)]]
    {
        let server = HubServer::with_faults(HashMap::from([(URL.to_string(), bytes.clone())]), faults.clone());
        let (z, cache, _w) = zoo_on(&server, &bytes);
        let m = z.load("pixelcnn-test", &Device::Cpu).unwrap_or_else(|e| panic!("{faults:?}: {e}"));
        assert!(matches!(m.source, WeightsSource::Downloaded(_)), "{:?}", m.source);
        assert_eq!(std::fs::read(m.source.path()).unwrap(), bytes, "{faults:?}");
        assert_eq!(requests(&server), faults.len() + 1, "{faults:?}");
        assert_eq!(files_under(cache.path()).len(), 3, "{faults:?}: {:?}", files_under(cache.path()));
    }
}

#[test]
fn a_server_that_keeps_failing_gives_up_after_three_attempts_and_caches_nothing() {
    let bytes = std::fs::read(FIXTURE).unwrap();
    let cases: [(Fault, &[&str]); 2] = [
        (Fault::Status(500), &["HTTP 500", "3 attempts", "nothing was cached"]),
        (Fault::CutAfter(1000), &["after 1000 of", "bytes", "3 attempts", "nothing was cached"]),
    ];
    for (fault, wanted) in cases {
        let server = HubServer::with_faults(HashMap::from([(URL.to_string(), bytes.clone())]), vec![fault; 3]);
        let (z, cache, _w) = zoo_on(&server, &bytes);
        let err = z.load("pixelcnn-test", &Device::Cpu).err().expect("must fail").to_string();
        for w in wanted {
            assert!(err.contains(w), "{fault:?}: error lacks '{w}': {err}");
        }
        assert_eq!(requests(&server), 3, "{fault:?}");
        assert!(files_under(cache.path()).is_empty(), "{fault:?}: {:?}", files_under(cache.path()));
    }
    // No server at all: the same, after three attempts.
    let port = unused_port();
    let (cache, weights) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let z = zoo(entry(&bytes), &format!("http://127.0.0.1:{port}"), cache.path(), weights.path());
    let err = z.load("pixelcnn-test", &Device::Cpu).err().expect("must fail").to_string();
    assert!(err.contains("no answer") && err.contains("3 attempts"), "{err}");
    assert!(files_under(cache.path()).is_empty(), "{:?}", files_under(cache.path()));
}

#[test]
fn a_corrupt_cached_copy_is_replaced_online_and_refused_offline() {
    let bytes = std::fs::read(FIXTURE).unwrap();
    let server = HubServer::start(HashMap::from([(URL.to_string(), bytes.clone())]));
    let (mut z, cache, _w) = zoo_on(&server, &bytes);
    let first = z.load("pixelcnn-test", &Device::Cpu).unwrap();
    // Damage the cached blob (through its link), as a crashed copy or a bad disk would.
    let blob = std::fs::canonicalize(first.source.path()).unwrap();
    std::fs::write(&blob, b"damaged").unwrap();
    z.resolver.offline = true;
    let err = z.load("pixelcnn-test", &Device::Cpu).err().expect("offline must fail");
    assert!(matches!(err, ZooError::ChecksumMismatch { .. }), "{err}");
    assert!(err.to_string().contains("fetch 'pixelcnn-test'"), "{err}");
    z.resolver.offline = false;
    let again = z.load("pixelcnn-test", &Device::Cpu).unwrap();
    assert!(matches!(again.source, WeightsSource::Downloaded(_)), "{:?}", again.source);
    assert_eq!(std::fs::read(again.source.path()).unwrap(), bytes);
    assert_eq!(requests(&server), 2);
    assert_eq!(files_under(cache.path()).len(), 3, "{:?}", files_under(cache.path()));
}

#[test]
fn a_failed_third_party_download_installs_nothing() {
    let zoo = Zoo::new().unwrap();
    let entry = zoo.manifest.models.iter().find(|e| e.upstream.is_some()).expect("a third-party entry").clone();
    let server = HubServer::with_faults(HashMap::new(), vec![Fault::Status(502)]);
    let cache = tempfile::tempdir().unwrap();
    let resolver = Resolver { zoo_cache: cache.path().join("zoo"), offline: false, ..zoo.resolver.clone() };
    let err = resolver.import_from_url(&entry, &format!("{}/best_params.npz", server.endpoint)).err().unwrap();
    let msg = err.to_string();
    assert!(msg.contains("HTTP 404") && msg.contains("import it"), "{msg}");
    assert_eq!(requests(&server), 2, "the 502 is retried, the 404 is not");
    assert!(files_under(cache.path()).is_empty(), "{:?}", files_under(cache.path()));
}
