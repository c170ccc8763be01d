//! The `zoo` tool end to end: list, sample, eval, score, logits, complete, fetch through a local
//! hub, a closed stdout, and determinism (the same seed: the same PNG bytes, whatever the thread
//! count). Bad input (a clear error, exit status 1, no panic, no output file) is the corpus of
//! bad_inputs.rs.

#[path = "../../../tests/support/hub.rs"]
mod hub;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The data directory, or None (a printed reason; under CI, a failure).
fn data_dir() -> Option<PathBuf> {
    pixel_ops::testing::data_dir()
}

fn zoo(args: &[&str]) -> Output {
    zoo_env(args, &[])
}

fn zoo_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    zoo_without(args, env, &[])
}

/// `zoo_env` with the variables `unset` removed from the environment.
fn zoo_without(args: &[&str], env: &[(&str, &str)], unset: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zoo"));
    c.args(args).env_remove("RUST_LOG").env("HF_HUB_OFFLINE", "1");
    for k in unset {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run zoo")
}

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "zoo failed: {err}");
    assert!(!err.contains("panicked"), "{err}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs a command that must fail cleanly; returns its stderr.
fn fails(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "expected exit 1, got {:?}: {err}", o.status);
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(err.lines().last().is_some_and(|l| l.starts_with("error: ")), "{err}");
    err
}

fn png_size(p: &Path) -> (u32, u32, image::ColorType) {
    let img = image::open(p).unwrap();
    (img.width(), img.height(), img.color())
}

#[test]
fn list_shows_every_model_with_its_figures() {
    let out = ok(&zoo(&["list", "--json"]));
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ids: Vec<&str> = rows.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"pixelcnn-mnist") && ids.contains(&"pixelcnn-cifar10"), "{ids:?}");
    for id in TRAINED.iter().chain(&[LASAGNE]) {
        assert!(ids.contains(id), "{id} missing: {ids:?}");
    }
    // The zoo's own models are in weights/; third-party ones are imported by the user.
    for r in rows.as_array().unwrap().iter().filter(|r| r["third_party"].is_null()) {
        assert!(r["parameters"].as_u64().unwrap() > 1000, "{r}");
        assert!(r["test_nll_nats"].as_f64().is_some(), "{r}");
        assert!(r["weights"].as_str().unwrap().starts_with("local"), "{r}");
        // Only the class-conditional architecture has classes: MNIST's and CIFAR-10's ten.
        let want = if r["architecture"] == "gated-pixelcnn" { 10 } else { 0 };
        assert_eq!(r["classes"], want, "{r}");
    }
    let table = ok(&zoo(&["list"]));
    assert!(table.contains("pixelcnn-cifar10") && table.contains("bits/dim"), "{table}");
}

#[test]
fn sample_writes_a_grid_and_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.png"), dir.path().join("b.png"));
    ok(&zoo(&["sample", "pixelcnn-mnist", "-n", "2", "--seed", "7", "--device", "cpu", "-o", a.to_str().unwrap()]));
    ok(&zoo(&["sample", "pixelcnn-mnist", "-n", "2", "--seed", "7", "-o", b.to_str().unwrap()]));
    // 2 images of 28x28 on a 2-column grid with a 2-pixel border.
    assert_eq!(png_size(&a), (62, 32, image::ColorType::L8));
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "same seed, different PNG");
    let img = image::open(&a).unwrap().into_luma8();
    let inner: Vec<u8> =
        (2..30).flat_map(|y| (2..30).map(move |x| (x, y))).map(|(x, y)| img.get_pixel(x, y)[0]).collect();
    assert!(inner.iter().all(|&v| v == 0 || v == 255), "binary samples must be black or white");
    assert!(inner.contains(&255), "a blank sample");
}

#[test]
#[cfg_attr(no_test_data, ignore = "needs the MNIST and CIFAR-10 data sets: set PIXEL_ZOO_DATA")]
fn eval_matches_the_pytorch_reference_on_the_first_test_images() {
    let Some(data) = data_dir() else { return };
    // The reference fixture holds the PyTorch NLL of the first 8 test images of each shipped model.
    for id in TRAINED {
        let t = reference_fixture(id);
        let want =
            t["nll"].to_dtype(candle_core::DType::F64).unwrap().to_vec1::<f64>().unwrap().iter().sum::<f64>() / 8.0;
        let out = ok(&zoo(&["eval", id, "--data-dir", data.to_str().unwrap(), "--limit", "8", "--json"]));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["images"], 8);
        let got = v["nll_nats_per_image"].as_f64().unwrap();
        assert!((got - want).abs() / want < 1e-5, "{id}: zoo eval {got} vs PyTorch {want}");
        let human = ok(&zoo(&["eval", id, "--data-dir", data.to_str().unwrap(), "--limit", "2"]));
        assert!(human.contains(if id.contains("cifar") { "bits/dim" } else { "nats/image" }), "{human}");
    }
}

/// The PyTorch reference's fixture of a shipped model: `input`, `logits`, `nll`.
fn reference_fixture(id: &str) -> HashMap<String, candle_core::Tensor> {
    let path = root().join(format!("tests/fixtures/{id}.logits.safetensors"));
    candle_core::safetensors::load(path, &candle_core::Device::Cpu).unwrap()
}

/// Writes test image `i` of the fixture of `id` as a PNG.
fn fixture_png(id: &str, i: usize, path: &Path) {
    let t = reference_fixture(id);
    let x = &t["input"];
    let (_, c, h, w) = x.dims4().unwrap();
    let px = x.get(i).unwrap().flatten_all().unwrap().to_vec1::<u8>().unwrap();
    if c == 1 {
        image::GrayImage::from_raw(w as u32, h as u32, px.iter().map(|&v| v * 255).collect())
            .unwrap()
            .save(path)
            .unwrap();
    } else {
        let hwc: Vec<u8> =
            (0..h * w).flat_map(|p| (0..3).map(move |ch| (p, ch))).map(|(p, ch)| px[ch * h * w + p]).collect();
        image::RgbImage::from_raw(w as u32, h as u32, hwc).unwrap().save(path).unwrap();
    }
}

#[test]
fn score_and_logits_of_png_images_match_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    for id in TRAINED {
        let t = reference_fixture(id);
        let want = t["nll"].to_dtype(candle_core::DType::F32).unwrap().to_vec1::<f32>().unwrap();
        let (p0, p1) = (dir.path().join(format!("{id}-0.png")), dir.path().join(format!("{id}-1.png")));
        fixture_png(id, 0, &p0);
        fixture_png(id, 1, &p1);
        let out = ok(&zoo(&["score", id, p0.to_str().unwrap(), p1.to_str().unwrap(), "--json"]));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        for i in 0..2 {
            let got = v[i]["nll_nats"].as_f64().unwrap();
            assert!((got - want[i] as f64).abs() / (want[i] as f64) < 1e-5, "{id} image {i}: {got} vs {}", want[i]);
        }
        let lp = dir.path().join(format!("{id}.safetensors"));
        ok(&zoo(&["logits", id, p0.to_str().unwrap(), "-o", lp.to_str().unwrap()]));
        let l = candle_core::safetensors::load(&lp, &candle_core::Device::Cpu).unwrap();
        let levels = if id.contains("cifar") { 256 } else { 1 };
        let (c, h, w) = if id.contains("cifar") { (3, 32, 32) } else { (1, 28, 28) };
        assert_eq!(l["logits"].dims(), &[1, c, levels, h, w]);
        assert_eq!(l["images"].dims(), &[1, c, h, w]);
        let got = l["logits"].narrow(3, 0, 4).unwrap().get(0).unwrap();
        let want = t["logits"].get(0).unwrap().to_dtype(candle_core::DType::F32).unwrap();
        let max = |t: &candle_core::Tensor| {
            t.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
        };
        let (d, scale) = (max(&(got - &want).unwrap()), max(&want).max(1.0));
        // float32 against the float64 reference: relative to the logits' scale (see tests/shipped.rs).
        assert!(d / scale < 1e-5, "{id}: max |Δlogit| {d} at logit scale {scale}");
    }
}

#[test]
fn complete_keeps_the_top_rows() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("in.png");
    fixture_png("pixelcnn-cifar10", 0, &img);
    let out = dir.path().join("c.png");
    ok(&zoo(&[
        "complete",
        "pixelcnn-cifar10",
        "--image",
        img.to_str().unwrap(),
        "--keep-rows",
        "30",
        "-n",
        "2",
        "-o",
        out.to_str().unwrap(),
    ]));
    // original, occluded, 2 completions: 4 columns of 32 + 5 borders of 2.
    assert_eq!(png_size(&out), (4 * 32 + 10, 36, image::ColorType::Rgb8));
    let g = image::open(&out).unwrap().into_rgb8();
    for y in 0..30 {
        for x in 0..32 {
            assert_eq!(g.get_pixel(2 + x, 2 + y), g.get_pixel(2 + 2 * 34 + x, 2 + y), "kept row {y} changed");
        }
    }
}

#[test]
fn fetch_downloads_through_a_local_hub_and_offline_without_weights_fails_clearly() {
    let bytes = std::fs::read(root().join("weights/pixelcnn-mnist.safetensors")).unwrap();
    let mut manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(root().join("weights-manifest.toml")).unwrap()).unwrap();
    // The shipped repositories are not published yet (no pinned revision): pin this one to the
    // commit the local hub answers with, in a manifest of our own.
    let models = manifest.get_mut("model").unwrap().as_array_mut().unwrap();
    let entry = models.iter_mut().find(|m| m["id"].as_str() == Some("pixelcnn-mnist")).unwrap();
    assert!(entry.get("hf_revision").is_none(), "published now: use the shipped revision here");
    entry.as_table_mut().unwrap().insert("hf_revision".into(), "0123456789abcdef0123456789abcdef01234567".into());
    let entry = entry.clone();
    let (home, empty) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let pinned = home.path().join("manifest.toml");
    std::fs::write(&pinned, toml::to_string(&manifest).unwrap()).unwrap();
    let url = format!(
        "/{}/resolve/{}/{}",
        entry["hf_repo"].as_str().unwrap(),
        entry["hf_revision"].as_str().unwrap(),
        entry["weights"].as_str().unwrap()
    );
    let server = hub::HubServer::start(HashMap::from([(url, bytes)]));
    let env = [
        ("PIXEL_ZOO_MANIFEST", pinned.to_str().unwrap()),
        ("HF_HOME", home.path().to_str().unwrap()),
        ("HF_ENDPOINT", server.endpoint.as_str()),
        ("HF_HUB_OFFLINE", "0"),
        ("PIXEL_ZOO_WEIGHTS_DIR", empty.path().to_str().unwrap()),
    ];
    let o = zoo_env(&["fetch", "pixelcnn-mnist"], &env);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("sha256 verified"));
    let listed = ok(&zoo_env(&["list", "--json"], &env));
    assert!(listed.contains("\"cache ("), "{listed}");
    drop(server);

    let fresh = tempfile::tempdir().unwrap();
    let out = fresh.path().join("s.png");
    let err = fails(&zoo_env(
        &["sample", "pixelcnn-mnist", "-n", "1", "-o", out.to_str().unwrap()],
        &[
            ("PIXEL_ZOO_MANIFEST", pinned.to_str().unwrap()),
            ("HF_HOME", fresh.path().to_str().unwrap()),
            ("PIXEL_ZOO_WEIGHTS_DIR", empty.path().to_str().unwrap()),
        ],
    ));
    assert!(err.contains("HF_HUB_OFFLINE") && err.contains("zoo fetch pixelcnn-mnist"), "{err}");
    assert!(!out.exists());
    // With the shipped manifest (no revision), the error says the repository is not published.
    let err = fails(&zoo_env(
        &["sample", "pixelcnn-mnist", "-n", "1", "-o", out.to_str().unwrap()],
        &[("HF_HOME", fresh.path().to_str().unwrap()), ("PIXEL_ZOO_WEIGHTS_DIR", empty.path().to_str().unwrap())],
    ));
    assert!(err.contains("pixel-zoo/pixelcnn-mnist is not yet published") && err.contains("weights/"), "{err}");
}

#[test]
#[cfg_attr(no_test_data, ignore = "needs the MNIST and CIFAR-10 data sets: set PIXEL_ZOO_DATA")]
fn eval_looks_in_the_data_cache_last_and_without_any_data_says_to_fetch_it() {
    let cache = tempfile::tempdir().unwrap();
    let env = [("PIXEL_ZOO_CACHE", cache.path().to_str().unwrap())];
    // No --data-dir, no PIXEL_ZOO_DATA, an empty cache.
    let err = fails(&zoo_without(&["eval", "pixelcnn-mnist", "--limit", "2"], &env, &["PIXEL_ZOO_DATA"]));
    assert!(err.contains("no mnist data") && err.contains(&cache.path().join("data").display().to_string()), "{err}");
    assert!(err.contains("run `zoo data fetch mnist`"), "{err}");
    let err = fails(&zoo_without(&["bench-compress", "pixelcnn-cifar10"], &env, &["PIXEL_ZOO_DATA"]));
    assert!(err.contains("run `zoo data fetch cifar10`"), "{err}");

    let Some(data) = data_dir() else { return };
    // The cache as `zoo data fetch` leaves it (here: the test images only, gz as the readers take).
    let mnist = cache.path().join("data/mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    for file in ["t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz"] {
        if data.join("mnist").join(file).is_file() {
            std::fs::copy(data.join("mnist").join(file), mnist.join(file)).unwrap();
        }
    }
    let args = ["eval", "pixelcnn-mnist", "--limit", "8", "--json"];
    let out: serde_json::Value = serde_json::from_str(&ok(&zoo_without(&args, &env, &["PIXEL_ZOO_DATA"]))).unwrap();
    assert_eq!(out["data_dir"].as_str().unwrap(), cache.path().join("data").to_str().unwrap());
    assert_eq!((out["images"].as_u64(), out["test_file"].as_str()), (Some(8), Some("t10k-images-idx3-ubyte")));
    // PIXEL_ZOO_DATA comes before the cache, --data-dir before both.
    let elsewhere = tempfile::tempdir().unwrap();
    let with_env = [env[0], ("PIXEL_ZOO_DATA", elsewhere.path().to_str().unwrap())];
    let err = fails(&zoo_env(&args, &with_env));
    assert!(err.contains("t10k-images-idx3-ubyte") && err.contains("not found"), "{err}");
    let mut flag = args.to_vec();
    flag.extend(["--data-dir", data.to_str().unwrap()]);
    let out: serde_json::Value = serde_json::from_str(&ok(&zoo_env(&flag, &with_env))).unwrap();
    assert_eq!(out["data_dir"].as_str().unwrap(), data.to_str().unwrap());
}

#[test]
#[cfg_attr(no_test_data, ignore = "needs the MNIST and CIFAR-10 data sets: set PIXEL_ZOO_DATA")]
fn eval_reads_the_whole_cifar10_test_batch_when_the_data_directory_has_it() {
    let Some(data) = data_dir() else { return };
    let args = |dir: &Path| {
        let out = ok(&zoo(&["eval", "pixelcnn-cifar10", "--limit", "4", "--data-dir", dir.to_str().unwrap()]));
        out.trim().to_string()
    };
    // What the data directory holds: the first 1,000 test images (test_batch_first1000.bin), or all.
    let file = pixel_data::datasets::Dataset::Cifar10.test_file(&data);
    let name = file.file_name().unwrap().to_str().unwrap();
    assert!(args(&data).contains(&format!("on 4 cifar10 test images ({name})")), "{}", args(&data));
    // A data directory with a 10,000-image test_batch.bin (here the first 1,000 ten times over).
    let full = tempfile::tempdir().unwrap();
    std::fs::create_dir(full.path().join("cifar10")).unwrap();
    let mut first = std::fs::read(&file).unwrap_or_else(|_| {
        let gz = std::fs::File::open(format!("{}.gz", file.display())).unwrap();
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz), &mut out).unwrap();
        out
    });
    first.truncate(1000 * 3073);
    std::fs::write(full.path().join("cifar10/test_batch.bin"), first.repeat(10)).unwrap();
    let out = args(full.path());
    assert!(out.contains("on 4 cifar10 test images (test_batch.bin)"), "{out}");
    // The same first images: the same figure.
    let figure = |s: &str| s.split(" bits/dim").next().unwrap().to_string();
    assert_eq!(figure(&out), figure(&args(&data)));
}

#[test]
fn data_fetch_from_a_mirror_holds_it_to_the_published_md5_and_keeps_nothing() {
    // A mirror serving MNIST files built here: not the official bytes, so their MD5s differ.
    let files: HashMap<String, Vec<u8>> = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
        .iter()
        .map(|n| (format!("/mnist/{n}"), format!("not {n}").into_bytes()))
        .collect();
    let server = hub::HubServer::start(files);
    let cache = tempfile::tempdir().unwrap();
    let env = [("PIXEL_ZOO_CACHE", cache.path().to_str().unwrap())];
    let url = format!("{}/mnist", server.endpoint);
    let err = fails(&zoo_env(&["data", "fetch", "mnist", "--url", &url], &env));
    assert!(err.contains("fetching mnist: train-images-idx3-ubyte.gz could not be downloaded: "), "{err}");
    assert!(
        err.contains("the published MD5 of train-images-idx3-ubyte.gz is f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        "{err}"
    );
    assert!(err.contains("--url MIRROR") && err.contains("--data-dir"), "{err}");
    let left: Vec<_> = std::fs::read_dir(cache.path()).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "{left:?}");
    // A 404 for CIFAR-10's archive: the same, with the URL tried.
    let err = fails(&zoo_env(&["data", "fetch", "cifar10", "--url", &url], &env));
    assert!(err.contains(&format!("{url}/cifar-10-binary.tar.gz: the server answered HTTP 404")), "{err}");
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0);

    // A data set already in the cache is not downloaded again without --force.
    let mnist = cache.path().join("data/mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    for f in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    {
        std::fs::write(mnist.join(f), b"").unwrap();
    }
    std::fs::write(mnist.join("fetched.json"), b"{}").unwrap();
    let before = server.requests.load(std::sync::atomic::Ordering::SeqCst);
    let o = zoo_env(&["data", "fetch", "mnist", "--url", &url], &env);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("already in"), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(server.requests.load(std::sync::atomic::Ordering::SeqCst), before);
    fails(&zoo_env(&["data", "fetch", "mnist", "--url", &url, "--force"], &env));
    assert!(mnist.join("fetched.json").is_file(), "a failed --force keeps what was there");
}

/// The models trained by the PyTorch reference and shipped in weights/.
const TRAINED: [&str; 8] = [
    "pixelcnn-mnist",
    "pixelcnn-cifar10",
    "row-lstm-mnist",
    "row-lstm-cifar10",
    "diagonal-bilstm-mnist",
    "diagonal-bilstm-cifar10",
    "multiscale-mnist",
    "multiscale-cifar10",
];

const LASAGNE: &str = "diagonal-bilstm-mnist-lasagne";

#[test]
#[cfg_attr(no_third_party_checkpoint, ignore = "needs the third-party checkpoint in ../shared/third_party")]
fn import_installs_the_third_party_checkpoint_and_refuses_a_wrong_file() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let env = [("PIXEL_ZOO_CACHE", cache.to_str().unwrap())];
    let (fake, out) = (dir.path().join("best_params.npz"), dir.path().join("converted.safetensors"));
    std::fs::write(&fake, b"not the checkpoint").unwrap();
    let err = fails(&zoo_env(&["import", "lasagne-npz", fake.to_str().unwrap(), "-o", out.to_str().unwrap()], &env));
    assert!(err.contains("sha256") && err.contains("taimir/pixel-rnn-lasagne"), "{err}");
    assert!(!out.exists() && !cache.exists(), "a refused import left files");
    let err = fails(&zoo_env(&["sample", LASAGNE, "-n", "1", "-o", out.to_str().unwrap()], &env));
    assert!(err.contains("zoo import lasagne-npz"), "{err}");

    let Some(npz) = pixel_ops::testing::third_party_checkpoint() else { return };
    let o = zoo_env(&["import", "lasagne-npz", npz.to_str().unwrap()], &env);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("sha256 verified"));
    let listed = ok(&zoo_env(&["list", "--json"], &env));
    assert!(listed.contains(&format!("cache ({}", cache.display())), "{listed}");
    let png = dir.path().join("s.png");
    ok(&zoo_env(&["sample", LASAGNE, "-n", "1", "-o", png.to_str().unwrap()], &env));
    assert_eq!(png_size(&png), (32, 32, image::ColorType::L8));
}

/// The same seed gives byte-identical PNGs across runs and thread counts: the batch split over 1
/// or 2 cores (`taskset`, where there is one) and candle's own threads (RAYON_NUM_THREADS); and the
/// logits file does not depend on RAYON_NUM_THREADS (1, 2, 4) either.
#[test]
fn the_same_seed_gives_the_same_png_bytes_across_runs_and_thread_counts() {
    let dir = tempfile::tempdir().unwrap();
    let taskset = Command::new("taskset").arg("-c").arg("0").arg("true").status().is_ok_and(|s| s.success());
    for id in ["pixelcnn-mnist", "row-lstm-mnist", "diagonal-bilstm-cifar10"] {
        let run = |tag: &str, env: &[(&str, &str)], one_core: bool| {
            let out = dir.path().join(format!("{id}-{tag}.png"));
            let args = ["sample", id, "-n", "3", "--seed", "99", "--device", "cpu", "-o", out.to_str().unwrap()];
            let o = if one_core {
                let mut c = Command::new("taskset");
                c.args(["-c", "0", env!("CARGO_BIN_EXE_zoo")]).args(args).env("HF_HUB_OFFLINE", "1");
                c.output().unwrap()
            } else {
                zoo_env(&args, env)
            };
            ok(&o);
            std::fs::read(out).unwrap()
        };
        let first = run("a", &[], false);
        assert!(run("b", &[], false) == first, "{id}: a second run differs");
        assert!(run("rayon2", &[("RAYON_NUM_THREADS", "2")], false) == first, "{id}: RAYON_NUM_THREADS=2 differs");
        if taskset {
            assert!(run("one-core", &[], true) == first, "{id}: on one core the PNG differs");
        } else {
            eprintln!("skipped the one-core run: no taskset");
        }
    }
    let img = dir.path().join("in.png");
    fixture_png("pixelcnn-cifar10", 0, &img);
    let logits = |threads: &str| {
        let out = dir.path().join(format!("logits-{threads}.safetensors"));
        ok(&zoo_env(
            &["logits", "pixelcnn-cifar10", img.to_str().unwrap(), "-o", out.to_str().unwrap()],
            &[("RAYON_NUM_THREADS", threads)],
        ));
        std::fs::read(out).unwrap()
    };
    let one = logits("1");
    for threads in ["2", "4"] {
        assert!(logits(threads) == one, "the logits differ between 1 and {threads} threads");
    }
}

/// `zoo list | head -1`: a reader that goes away stops zoo quietly (as SIGPIPE stops other tools),
/// not with a panic in `println!`.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    for args in [&["list"][..], &["list", "--json"][..]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_zoo"))
            .args(args)
            .env("HF_HUB_OFFLINE", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked") && o.status.code() != Some(101), "{:?}: {err}", o.status);
    }
}
