//! `data_fetch`: MNIST and CIFAR-10 archives from a local mirror (the hub test server), built here
//! from the data sets the tests have, with this test's own MD5s: a success for each data set, and
//! the failures that must leave nothing in the cache: a corrupt archive, a download cut short, a
//! wrong checksum, a 404, a server that cannot be reached. Mirrors are tried in order.

#![cfg(feature = "hub")]

#[path = "support/hub.rs"]
mod hub;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use hub::{unused_port, Fault, HubServer};
use md5::{Digest, Md5};
use pixel_zoo::data::datasets::Dataset;
use pixel_zoo::data_fetch::{fetch, DataSource, RemoteFile, Unpack, RECORD};
use pixel_zoo::ops::testing::data_dir;
use pixel_zoo::ZooError;

fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()).read_to_end(&mut out).unwrap();
    out
}

fn gunzip_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Every file (or link) under `dir`, hidden ones too: what a failed fetch must not leave.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let (p, t) = (e.path(), e.file_type().unwrap());
            if t.is_dir() {
                out.push(p.clone()); // an empty folder left behind counts too
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// `path` decompressed, read raw or from `path.gz`, as the zoo's readers take either.
fn read_either(path: &Path) -> Vec<u8> {
    match std::fs::read(path) {
        Ok(raw) => raw,
        Err(_) => gunzip(&PathBuf::from(format!("{}.gz", path.display()))),
    }
}

/// MNIST's test files as the official mirrors serve them (`X.gz`), from the data directory.
fn mnist_test_files(data: &Path) -> Vec<(String, Vec<u8>)> {
    ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
        .iter()
        .map(|n| (format!("{n}.gz"), gzip(&read_either(&data.join("mnist").join(n)))))
        .collect()
}

/// The first 1,000 CIFAR-10 test records (label byte and pixels) of the data directory.
fn cifar_test_records(data: &Path) -> Vec<u8> {
    let mut bytes = read_either(&Dataset::Cifar10.test_file(data));
    bytes.truncate(1000 * 3073);
    bytes
}

/// A source of `files` (name, bytes) with their own MD5s, on `mirrors`.
fn source(name: &str, files: &[(String, Vec<u8>)], mirrors: Vec<String>, unpack: Unpack) -> DataSource {
    DataSource {
        name: name.into(),
        mirrors,
        files: files.iter().map(|(n, b)| RemoteFile { name: n.clone(), md5: md5_hex(b) }).collect(),
        unpack,
    }
}

/// `files` served under `/prefix/`.
fn served(prefix: &str, files: &[(String, Vec<u8>)]) -> HashMap<String, Vec<u8>> {
    files.iter().map(|(n, b)| (format!("/{prefix}/{n}"), b.clone())).collect()
}

fn requests(server: &HubServer) -> usize {
    server.requests.load(std::sync::atomic::Ordering::SeqCst)
}

/// A CIFAR-10 binary archive as the official one is laid out, from the first test images: the test
/// batch is `test` (whole records), the five training batches 100 records each of it.
fn cifar_archive(test: &[u8], members: &[String]) -> Vec<u8> {
    const REC: usize = 3073;
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |path: &str, bytes: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        builder.append_data(&mut h, path, bytes).unwrap();
    };
    add("cifar-10-batches-bin/batches.meta.txt", b"airplane\nautomobile\n");
    for m in members {
        let bytes = match m.as_str() {
            "test_batch.bin" => test.to_vec(),
            b => {
                let k: usize = b["data_batch_".len()..b.len() - 4].parse().unwrap();
                test[(k - 1) * 100 * REC..k * 100 * REC].to_vec()
            }
        };
        add(&format!("cifar-10-batches-bin/{m}"), &bytes);
    }
    add("cifar-10-batches-bin/readme.html", b"<html></html>");
    gzip(&builder.into_inner().unwrap())
}

/// The members of the official archive's `cifar-10-batches-bin/` that the zoo reads, in order: five
/// training batches and the test batch (stated here apart from the library's list, which the
/// report must match).
fn all_batches() -> Vec<String> {
    (1..=5).map(|k| format!("data_batch_{k}.bin")).chain(["test_batch.bin".to_string()]).collect()
}

#[test]
#[cfg_attr(no_test_data, ignore = "needs the MNIST and CIFAR-10 data sets: set PIXEL_ZOO_DATA")]
fn mnist_from_a_mirror_unpacks_what_the_readers_read_and_records_the_checksums() {
    let Some(data) = data_dir() else { return };
    let files = mnist_test_files(&data);
    let server = HubServer::start(served("mnist", &files));
    let cache = tempfile::tempdir().unwrap();
    let src = source("mnist", &files, vec![format!("{}/mnist/", server.endpoint)], Unpack::IdxGz);
    assert!(!src.is_fetched(cache.path()));

    let report = fetch(&src, cache.path(), false).unwrap();
    assert_eq!(requests(&server), 2);
    let dir = cache.path().join("mnist");
    assert_eq!(report.dir, dir);
    assert_eq!(report.unpacked, ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]);
    // The raw files, byte for byte the decompressed downloads; the archives are not kept.
    for (name, bytes) in &files {
        let raw = std::fs::read(dir.join(name.strip_suffix(".gz").unwrap())).unwrap();
        assert_eq!(raw, gunzip_bytes(bytes), "{name}");
        let rec = report.downloaded.iter().find(|f| &f.name == name).unwrap();
        assert_eq!((rec.md5.as_str(), rec.bytes), (md5_hex(bytes).as_str(), bytes.len() as u64));
        assert_eq!(rec.sha256, pixel_zoo::checksum::sha256_hex(bytes));
    }
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join(RECORD)).unwrap()).unwrap();
    assert_eq!(record["downloaded"][0]["sha256"], report.downloaded[0].sha256.as_str());
    assert_eq!(files_under(cache.path()).len(), 1 + 3, "{:?}", files_under(cache.path()));
    assert!(src.is_fetched(cache.path()));
    // The cache is a data directory: the same test images as the data the archives were built from.
    let ours = Dataset::MnistBinarized.load_test(cache.path()).unwrap();
    assert_eq!(ours, Dataset::MnistBinarized.load_test(&data).unwrap());
    assert_eq!(ours.n, 10_000);
}

#[test]
#[cfg_attr(no_test_data, ignore = "needs the MNIST and CIFAR-10 data sets: set PIXEL_ZOO_DATA")]
fn cifar10_from_a_mirror_unpacks_the_six_batches_and_eval_reads_its_whole_test_batch() {
    let Some(data) = data_dir() else { return };
    let test = cifar_test_records(&data);
    let files = vec![("cifar-10-binary.tar.gz".to_string(), cifar_archive(&test, &all_batches()))];
    let server = HubServer::start(served("kriz", &files));
    let cache = tempfile::tempdir().unwrap();
    // The official source's layout, this test's archive and MD5 on the local mirror.
    let mut src = DataSource::official("cifar10").unwrap().with_mirror(&format!("{}/kriz", server.endpoint));
    src.files[0].md5 = md5_hex(&files[0].1);

    let report = fetch(&src, cache.path(), false).unwrap();
    assert_eq!(report.unpacked, all_batches());
    let dir = cache.path().join("cifar10");
    assert_eq!(std::fs::read(dir.join("test_batch.bin")).unwrap(), test);
    assert_eq!(std::fs::read(dir.join("data_batch_2.bin")).unwrap(), &test[100 * 3073..200 * 3073]);
    assert!(!dir.join("readme.html").exists() && !dir.join("batches.meta.txt").exists());
    // test_batch.bin is there, so it is what the test set is read from (all of it).
    assert_eq!(Dataset::Cifar10.test_file(cache.path()), dir.join("test_batch.bin"));
    let images = Dataset::Cifar10.load_test(cache.path()).unwrap();
    assert_eq!(images.n, 1000);
    let mut theirs = Dataset::Cifar10.load_test(&data).unwrap();
    theirs.truncate(1000);
    assert_eq!(images, theirs);
}

/// Runs `fetch` expecting a failure; checks that the cache is as it was and returns the message.
fn fails_and_keeps_nothing(src: &DataSource, cache: &Path) -> String {
    let before = files_under(cache);
    let err = fetch(src, cache, false).expect_err("the fetch must fail");
    assert!(matches!(err, ZooError::DataFetch { .. } | ZooError::Download { .. }), "{err}");
    assert_eq!(files_under(cache), before, "a failed fetch left something: {err}");
    err.to_string()
}

#[test]
#[cfg_attr(no_test_data, ignore = "needs the MNIST and CIFAR-10 data sets: set PIXEL_ZOO_DATA")]
fn a_corrupt_archive_with_the_right_checksum_is_refused_and_nothing_kept() {
    let Some(data) = data_dir() else { return };
    let mut files = mnist_test_files(&data);
    // A gzip stream cut in half: its MD5 is the one expected, its content is not whole.
    let half = files[0].1.len() / 2;
    files[0].1.truncate(half);
    let server = HubServer::start(served("mnist", &files));
    let cache = tempfile::tempdir().unwrap();
    let src = source("mnist", &files, vec![format!("{}/mnist/", server.endpoint)], Unpack::IdxGz);
    let msg = fails_and_keeps_nothing(&src, cache.path());
    assert!(msg.contains("t10k-images-idx3-ubyte.gz is not a valid gzip file") && msg.contains("corrupt"), "{msg}");

    // A valid gzip of an IDX file whose header promises more images than it holds.
    let raw = read_either(&data.join("mnist/t10k-images-idx3-ubyte"));
    let files = vec![("t10k-images-idx3-ubyte.gz".to_string(), gzip(&raw[..raw.len() - 784]))];
    let server = HubServer::start(served("mnist", &files));
    let src = source("mnist", &files, vec![format!("{}/mnist/", server.endpoint)], Unpack::IdxGz);
    let msg = fails_and_keeps_nothing(&src, cache.path());
    assert!(msg.contains("IDX header says 10000 images"), "{msg}");

    // CIFAR-10: an archive without the test batch, and one whose test batch is not whole records.
    let test = cifar_test_records(&data);
    for (archive, expect) in [
        (cifar_archive(&test, &all_batches()[..5]), "lacks cifar-10-batches-bin/test_batch.bin"),
        (cifar_archive(&test[..test.len() - 1], &all_batches()), "not a positive multiple of the 3073-byte record"),
    ] {
        let files = vec![("cifar-10-binary.tar.gz".to_string(), archive)];
        let server = HubServer::start(served("kriz", &files));
        let src = source("cifar10", &files, vec![format!("{}/kriz/", server.endpoint)], Unpack::Cifar10BinaryTarGz);
        let msg = fails_and_keeps_nothing(&src, cache.path());
        assert!(msg.contains(expect), "{msg}");
    }
}

#[test]
#[cfg_attr(no_test_data, ignore = "needs the MNIST and CIFAR-10 data sets: set PIXEL_ZOO_DATA")]
fn a_download_cut_short_is_retried_and_one_that_stays_cut_keeps_nothing() {
    let Some(data) = data_dir() else { return };
    let files = mnist_test_files(&data)[1..].to_vec(); // the labels: a few kB
    let cache = tempfile::tempdir().unwrap();

    let server = HubServer::with_faults(served("mnist", &files), vec![Fault::CutAfter(1000)]);
    let src = source("mnist", &files, vec![format!("{}/mnist/", server.endpoint)], Unpack::IdxGz);
    fetch(&src, cache.path(), false).unwrap();
    assert_eq!(requests(&server), 2, "one cut, one retry");
    std::fs::remove_dir_all(cache.path().join("mnist")).unwrap();

    let cut = vec![Fault::CutAfter(1000); 3];
    let server = HubServer::with_faults(served("mnist", &files), cut);
    let src = source("mnist", &files, vec![format!("{}/mnist/", server.endpoint)], Unpack::IdxGz);
    let msg = fails_and_keeps_nothing(&src, cache.path());
    assert!(
        msg.contains(&format!("the connection broke after 1000 of {} bytes", files[0].1.len()))
            && msg.contains("3 attempts"),
        "{msg}"
    );
    assert!(msg.contains("nothing was kept"), "{msg}");
    assert_eq!(requests(&server), 3);
}

#[test]
#[cfg_attr(no_test_data, ignore = "needs the MNIST and CIFAR-10 data sets: set PIXEL_ZOO_DATA")]
fn a_wrong_checksum_is_refused_then_the_next_mirror_is_tried() {
    let Some(data) = data_dir() else { return };
    let files = mnist_test_files(&data)[1..].to_vec();
    let mut wrong = files.clone();
    wrong[0].1 = gzip(b"not the labels");
    let mut served_files = served("bad", &wrong);
    served_files.extend(served("good", &files));
    let server = HubServer::start(served_files);
    let cache = tempfile::tempdir().unwrap();

    // The only mirror serves another file: refused, nothing kept.
    let bad = source("mnist", &files, vec![format!("{}/bad/", server.endpoint)], Unpack::IdxGz);
    let msg = fails_and_keeps_nothing(&bad, cache.path());
    assert!(
        msg.contains("MD5") && msg.contains(&md5_hex(&files[0].1)) && msg.contains("not the official file"),
        "{msg}"
    );
    assert_eq!(requests(&server), 1, "a wrong file is not downloaded again from the same mirror");

    // Another MD5 expected than the one the file has: the same refusal.
    let mut other = source("mnist", &files, vec![format!("{}/good/", server.endpoint)], Unpack::IdxGz);
    other.files[0].md5 = "0".repeat(32);
    let msg = fails_and_keeps_nothing(&other, cache.path());
    assert!(msg.contains(&"0".repeat(32)), "{msg}");

    // Mirrors in order: the bad one first, then the good one, which is used.
    let both = source(
        "mnist",
        &files,
        vec![format!("{}/bad/", server.endpoint), format!("{}/good/", server.endpoint)],
        Unpack::IdxGz,
    );
    let report = fetch(&both, cache.path(), false).unwrap();
    assert_eq!(report.downloaded[0].url, format!("{}/good/t10k-labels-idx1-ubyte.gz", server.endpoint));
}

#[test]
#[cfg_attr(no_test_data, ignore = "needs the MNIST and CIFAR-10 data sets: set PIXEL_ZOO_DATA")]
fn a_404_falls_through_to_the_next_mirror_and_on_the_last_keeps_nothing() {
    let Some(data) = data_dir() else { return };
    let files = mnist_test_files(&data)[1..].to_vec();
    let server = HubServer::start(served("good", &files));
    let cache = tempfile::tempdir().unwrap();
    let missing = source("mnist", &files, vec![format!("{}/gone/", server.endpoint)], Unpack::IdxGz);
    let msg = fails_and_keeps_nothing(&missing, cache.path());
    assert!(msg.contains("HTTP 404") && msg.contains("check the mirror's URL"), "{msg}");
    assert_eq!(requests(&server), 1, "a 404 is not retried");

    let second = DataSource {
        mirrors: vec![format!("{}/gone/", server.endpoint), format!("{}/good/", server.endpoint)],
        ..missing
    };
    fetch(&second, cache.path(), false).unwrap();
    assert!(second.is_fetched(cache.path()));
}

#[test]
#[cfg_attr(no_test_data, ignore = "needs the MNIST and CIFAR-10 data sets: set PIXEL_ZOO_DATA")]
fn an_unreachable_server_says_so_and_a_failure_keeps_the_data_already_there() {
    let Some(data) = data_dir() else { return };
    let files = mnist_test_files(&data)[1..].to_vec();
    // A port with nobody listening: the machine is offline as far as this fetch can tell.
    let port = unused_port();
    let cache = tempfile::tempdir().unwrap();
    let nested = cache.path().join("a/b/data");
    let offline = source("mnist", &files, vec![format!("http://127.0.0.1:{port}/mnist/")], Unpack::IdxGz);
    let msg = fails_and_keeps_nothing(&offline, &nested);
    assert!(msg.contains("no answer") && msg.contains("3 attempts") && msg.contains("network"), "{msg}");
    assert!(!cache.path().join("a").exists(), "the folders the fetch made are gone");

    // A data set already fetched stays as it was when a new fetch fails, and is replaced by one
    // that succeeds.
    let server = HubServer::start(served("mnist", &files));
    let good = DataSource { mirrors: vec![format!("{}/mnist/", server.endpoint)], ..offline.clone() };
    fetch(&good, cache.path(), false).unwrap();
    std::fs::write(cache.path().join("mnist/old-file"), b"from before").unwrap();
    fails_and_keeps_nothing(&offline, cache.path());
    assert!(cache.path().join("mnist/old-file").exists());
    fetch(&good, cache.path(), false).unwrap();
    assert!(!cache.path().join("mnist/old-file").exists(), "a successful fetch replaces the folder");
    assert!(good.is_fetched(cache.path()));
}
