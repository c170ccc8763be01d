//! The bad-input corpus (tests/bad-inputs/cases.toml): every case runs `zoo` on one bad input
//! (weights, manifests, images, data sets, flags, outputs, downloads) and must fail with a clear
//! error: the expected exit status, no panic, an `error: ` line saying each expected thing, and
//! nothing left behind. The bad files are generated here from the shipped ones, in a temporary
//! folder; only the few that the image crate cannot write are committed (tests/bad-inputs/*.png).

#[path = "../../../tests/support/gated.rs"]
mod gated;
#[path = "../../../tests/support/hub.rs"]
mod hub;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use hub::{Fault, HubServer};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

/// The commit the local hub answers with (tests/support/hub.rs), pinned in manifest-published.toml.
const PINNED: &str = "0123456789abcdef0123456789abcdef01234567";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One case of cases.toml.
#[derive(Debug)]
struct Case {
    name: String,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    expect: Vec<String>,
    exit: i32,
    hub: Option<String>,
}

fn parse_cases(text: &str) -> Vec<Case> {
    let table: toml::Table = toml::from_str(text).unwrap();
    let strings = |v: &toml::Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
    };
    table["case"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let c = c.as_table().unwrap();
            for k in c.keys() {
                assert!(["name", "args", "env", "expect", "exit", "hub"].contains(&k.as_str()), "unknown key {k}");
            }
            Case {
                name: c["name"].as_str().unwrap().to_string(),
                args: strings(&c["args"]),
                env: c.get("env").map_or_else(BTreeMap::new, |e| {
                    e.as_table().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect()
                }),
                expect: strings(&c["expect"]),
                exit: c.get("exit").map_or(1, |e| e.as_integer().unwrap() as i32),
                hub: c.get("hub").map(|h| h.as_str().unwrap().to_string()),
            }
        })
        .collect()
}

/// Every file (not folder) under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().unwrap().is_dir() {
                out.extend(files_under(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_bad_input_fails_clearly_and_leaves_nothing_behind() {
    let text = std::fs::read_to_string(root().join("tests/bad-inputs/cases.toml")).unwrap();
    let cases = parse_cases(&text);
    let inputs = tempfile::tempdir().unwrap();
    generate(inputs.path());
    let before = files_under(inputs.path());
    let weights = std::fs::read(root().join("weights/pixelcnn-mnist.safetensors")).unwrap();

    // Two at a time (the machine's cores); each case has its own output folder.
    let run = |part: &[Case]| -> Vec<String> {
        part.iter().filter_map(|c| run_case(c, inputs.path(), &weights).err()).collect()
    };
    let (first, second) = cases.split_at(cases.len() / 2);
    let failures: Vec<String> = std::thread::scope(|s| {
        let h = s.spawn(|| run(first));
        let mut f = run(second);
        f.extend(h.join().unwrap());
        f
    });
    assert!(failures.is_empty(), "{} of {} cases failed:\n\n{}", failures.len(), cases.len(), failures.join("\n\n"));
    assert_eq!(files_under(inputs.path()), before, "a case left a file among the inputs");
    eprintln!("{} bad-input cases", cases.len());
}

fn run_case(case: &Case, inputs: &Path, weights: &[u8]) -> Result<(), String> {
    let out = tempfile::tempdir().unwrap();
    let fill = |s: &str| {
        s.replace("{in}", inputs.to_str().unwrap())
            .replace("{out}", out.path().to_str().unwrap())
            .replace("{bad}", root().join("tests/bad-inputs").to_str().unwrap())
            .replace("{weights}", root().join("weights").to_str().unwrap())
    };
    if case.args.iter().any(|a| a.starts_with("/proc/")) && !Path::new("/proc/self").is_dir() {
        eprintln!("skipped '{}': no /proc", case.name);
        return Ok(());
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zoo"));
    cmd.args(case.args.iter().map(|a| fill(a)))
        .env_remove("RUST_LOG")
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HOME", out.path().join("hf"))
        .env("PIXEL_ZOO_CACHE", out.path().join("zoo-cache"));
    for (k, v) in &case.env {
        cmd.env(k, fill(v));
    }
    let _server = case.hub.as_deref().map(|mode| {
        let url = format!("/pixel-zoo/pixelcnn-mnist/resolve/{PINNED}/pixelcnn-mnist.safetensors");
        let mut wrong = weights.to_vec();
        *wrong.last_mut().unwrap() ^= 1;
        let server = match mode {
            "404" => HubServer::start(HashMap::new()),
            "500" => HubServer::with_faults(HashMap::from([(url, weights.to_vec())]), vec![Fault::Status(500); 3]),
            "wrong" => HubServer::start(HashMap::from([(url, wrong)])),
            "cut" => HubServer::with_faults(HashMap::from([(url, weights.to_vec())]), vec![Fault::CutAfter(4096); 3]),
            other => panic!("{}: unknown hub mode '{other}'", case.name),
        };
        cmd.env("HF_ENDPOINT", &server.endpoint)
            .env("PIXEL_ZOO_MANIFEST", inputs.join("manifest-published.toml"))
            .env("HF_HUB_OFFLINE", "0")
            .env("PIXEL_ZOO_WEIGHTS_DIR", inputs.join("empty-dir"));
        server
    });
    let o = cmd.output().expect("run zoo");
    let err = String::from_utf8_lossy(&o.stderr);
    let shown = format!("case '{}': zoo {}\n{err}", case.name, case.args.join(" "));
    if o.status.code() != Some(case.exit) {
        return Err(format!("exit status {:?}, expected {}: {shown}", o.status.code(), case.exit));
    }
    if err.contains("panicked") || err.contains("RUST_BACKTRACE") {
        return Err(format!("panic: {shown}"));
    }
    let Some(line) = err.lines().find(|l| l.starts_with("error: ")) else {
        return Err(format!("no 'error: ' line: {shown}"));
    };
    for want in &case.expect {
        let want = fill(want);
        if !line.contains(&want) {
            return Err(format!("the error lacks '{want}': {shown}"));
        }
    }
    let left = files_under(out.path());
    if !left.is_empty() {
        return Err(format!("left {left:?}: {shown}"));
    }
    Ok(())
}

/// A tensor of a safetensors file: name, dtype, shape, bytes.
type Tensor = (String, Dtype, Vec<usize>, Vec<u8>);
/// A change to a safetensors file's tensors and metadata.
type Edit = dyn Fn(&mut Vec<Tensor>, &mut Option<HashMap<String, String>>);

/// The index of tensor `name`.
fn find(ts: &[Tensor], name: &str) -> usize {
    ts.iter().position(|t| t.0 == name).unwrap_or_else(|| panic!("no tensor {name}"))
}

/// Writes every generated bad input into `dir`.
fn generate(dir: &Path) {
    let put = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    };
    std::fs::create_dir_all(dir.join("empty-dir")).unwrap();

    // Weights, from the shipped pixelcnn-mnist.
    let w = std::fs::read(root().join("weights/pixelcnn-mnist.safetensors")).unwrap();
    put("empty.safetensors", b"");
    put("truncated.safetensors", &w[..w.len() / 2]);
    put("text.safetensors", b"this is not a safetensors file\n");
    let mut tampered = w.clone();
    *tampered.last_mut().unwrap() ^= 1;
    put("tampered-weights/pixelcnn-mnist.safetensors", &tampered);
    let edit = |f: &Edit| {
        let st = SafeTensors::deserialize(&w).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&w).unwrap();
        let mut metadata = meta.metadata().clone();
        let mut tensors: Vec<_> =
            st.tensors().into_iter().map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect();
        f(&mut tensors, &mut metadata);
        let views: Vec<_> =
            tensors.iter().map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
        safetensors::serialize(views, metadata).unwrap()
    };
    put(
        "missing-tensor.safetensors",
        &edit(&|ts, _| {
            let i = find(ts, "output.logits.bias");
            ts.remove(i);
        }),
    );
    put(
        "extra-tensor.safetensors",
        &edit(&|ts, _| ts.push(("stowaway.weight".into(), Dtype::F32, vec![2], vec![0; 8]))),
    );
    put(
        "misshaped.safetensors",
        &edit(&|ts, _| {
            let i = find(ts, "output.logits.bias");
            ts[i].2 = vec![2];
            ts[i].3 = [ts[i].3.clone(), ts[i].3.clone()].concat();
        }),
    );
    put(
        "i32.safetensors",
        &edit(&|ts, _| {
            let i = find(ts, "output.logits.bias");
            ts[i].1 = Dtype::I32;
        }),
    );
    put(
        "inf-f16.safetensors",
        &edit(&|ts, _| {
            let i = find(ts, "output.logits.bias");
            ts[i].1 = Dtype::F16;
            ts[i].3 = vec![0, 0x7c]; // +infinity in f16
        }),
    );
    put(
        "nan.safetensors",
        &edit(&|ts, _| {
            let i = find(ts, "output.logits.weight");
            ts[i].3[..4].copy_from_slice(&f32::NAN.to_le_bytes());
        }),
    );
    put("no-config.safetensors", &edit(&|_, m| *m = None));

    // Manifests, from one entry of the shipped manifest.
    let entry = r#"
[[model]]
id = "pixelcnn-mnist"
architecture = "pixelcnn"
dataset = "mnist-binarized"
weights = "pixelcnn-mnist.safetensors"
sha256 = "7479360bc21c00e55a88768bc4e1dc12dd071c8d2b3cb481d9d3c504ab486302"
hf_repo = "pixel-zoo/pixelcnn-mnist"
hf_revision = "main"

[model.config]
channels = 1
height = 28
width = 28
head = "bernoulli"
hidden = 32
layers = 6
output_features = 64
input_kernel = 7
block_kernel = 3
"#;
    assert!(pixel_zoo::Manifest::parse(entry, "base").is_ok(), "the base entry must be valid");
    put("manifest-bad-toml.toml", b"[[model]]\nid = \"pixelcnn-mnist\"\narchitecture = [\"pixelcnn\"\n");
    put("manifest-duplicate.toml", format!("{entry}{entry}").as_bytes());
    put("manifest-architecture.toml", entry.replace("\"pixelcnn\"", "\"pixel-transformer\"").as_bytes());
    put("manifest-missing-field.toml", entry.replace("sha256 = ", "# sha256 = ").as_bytes());
    put("manifest-unknown-field.toml", entry.replace("sha256 = ", "sha265 = ").as_bytes());
    put("manifest-config.toml", entry.replace("hidden = 32", "hidden = \"32\"").as_bytes());
    put(
        "manifest-path.toml",
        entry.replace("weights = \"pixelcnn-mnist.safetensors\"", "weights = \"../../etc/passwd\"").as_bytes(),
    );
    put("manifest-sha.toml", entry.replace("sha256 = \"7479", "sha256 = \"xyz").as_bytes());
    // The shipped manifest with pixelcnn-mnist's repository published (pinned to the commit the
    // local hub answers with): what the download cases run against.
    let shipped = std::fs::read_to_string(root().join("weights-manifest.toml")).unwrap();
    let repo = "hf_repo = \"pixel-zoo/pixelcnn-mnist\"\n";
    assert_eq!(shipped.matches(repo).count(), 1);
    put("manifest-published.toml", shipped.replace(repo, &format!("{repo}hf_revision = \"{PINNED}\"\n")).as_bytes());

    // Images.
    let save = |name: &str, img: image::DynamicImage| img.save(dir.join(name)).unwrap();
    let grey = image::GrayImage::from_fn(28, 28, |x, y| image::Luma([((x * 9 + y) % 256) as u8]));
    save("grey-28x28.png", grey.clone().into());
    save("grey-10x10.png", image::GrayImage::new(10, 10).into());
    save("grey-14x14.png", image::GrayImage::new(14, 14).into());
    save("rgb-14x14.png", image::RgbImage::new(14, 14).into());
    save("grey-32x32.png", image::GrayImage::new(32, 32).into());
    save("rgb-28x28.png", image::RgbImage::new(28, 28).into());
    save("grey16-28x28.png", image::ImageBuffer::<image::Luma<u16>, _>::new(28, 28).into());
    save("rgb16-32x32.png", image::ImageBuffer::<image::Rgb<u16>, _>::new(32, 32).into());
    save("rgba-32x32.png", image::RgbaImage::new(32, 32).into());
    save("grey-alpha-28x28.png", image::GrayAlphaImage::new(28, 28).into());
    let noise = image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([(x * 7 + y * 13) as u8, (x * y) as u8, 9]));
    let mut png = Vec::new();
    image::DynamicImage::from(noise).write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    put("truncated-32x32.png", &png[..png.len() / 2]);
    put("noise-32x32.png", &png);
    // A class-conditional model (its manifest and weights folder), for the class cases.
    gated::install(&root(), &dir.join("gated"));
    put("text.png", b"GIF89a? no: plain text\n");
    put("empty.png", b"");

    // Data sets: MNIST IDX and CIFAR-10 batches, each in its own data folder.
    let idx = |magic: u32, n: u32, r: u32, c: u32, len: usize| {
        let mut b = [magic, n, r, c].iter().flat_map(|v| v.to_be_bytes()).collect::<Vec<u8>>();
        b.resize(16 + len, 7);
        b
    };
    let mnist = |name: &str, bytes: &[u8]| put(&format!("{name}/mnist/t10k-images-idx3-ubyte"), bytes);
    mnist("data-idx-magic", &idx(0x801, 3, 28, 28, 3 * 784));
    mnist("data-idx-truncated", &idx(0x803, 3, 28, 28, 2000 - 16));
    mnist("data-idx-32x32", &idx(0x803, 2, 32, 32, 2 * 1024));
    mnist("data-idx-none", &idx(0x803, 0, 28, 28, 0));
    mnist("data-idx-short", &idx(0x803, 3, 28, 28, 0)[..10]);
    put("data-idx-gz/mnist/t10k-images-idx3-ubyte.gz", b"\x1f\x8b\x08\x00 not really gzip");
    let cifar = |name: &str, bytes: &[u8]| put(&format!("{name}/cifar10/test_batch.bin"), bytes);
    cifar("data-cifar-truncated", &vec![1u8; 2 * 3073 - 5]);
    cifar("data-cifar-empty", b"");
    let mut labelled = vec![1u8; 2 * 3073];
    labelled[3073] = 200;
    cifar("data-cifar-label", &labelled);
}

/// The committed palette image is accepted by an RGB model (the decoder expands it to the RGB it
/// stands for), and scores as the same image saved as RGB.
#[test]
fn a_palette_image_reads_as_its_rgb_colours() {
    let dir = tempfile::tempdir().unwrap();
    let palette = root().join("tests/bad-inputs/palette-32x32.png");
    let rgb = dir.path().join("rgb.png");
    image::open(&palette).unwrap().into_rgb8().save(&rgb).unwrap();
    let score = |p: &Path| {
        let o = Command::new(env!("CARGO_BIN_EXE_zoo"))
            .args(["score", "pixelcnn-cifar10", "--json", p.to_str().unwrap()])
            .env("HF_HUB_OFFLINE", "1")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v[0]["nll_nats"].as_f64().unwrap()
    };
    assert_eq!(score(&palette), score(&rgb));
}
