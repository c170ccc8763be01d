//! The tool on a class-conditional model (tests/support/gated.rs: the reference's random-weight
//! Gated PixelCNN as a 10-class CIFAR-10 model): `sample --class` by name and index, a row per
//! class, classes drawn from p(c) and said so; `complete --class`; `classify` of images and of the
//! test set; `eval`'s marginal and true-class NLL. Refusals and bad classes are in the bad-input
//! corpus (bad_inputs.rs).

#[path = "../../../tests/support/gated.rs"]
mod gated;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gated::ID;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The test model installed in a temporary folder, and `zoo` run against it.
struct Gated {
    dir: tempfile::TempDir,
    manifest: PathBuf,
    weights: PathBuf,
}

impl Gated {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (manifest, weights) = gated::install(&root(), dir.path());
        Self { dir, manifest, weights }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    fn zoo(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_zoo"))
            .args(args)
            .env_remove("RUST_LOG")
            .env("HF_HUB_OFFLINE", "1")
            .env("PIXEL_ZOO_MANIFEST", &self.manifest)
            .env("PIXEL_ZOO_WEIGHTS_DIR", &self.weights)
            .output()
            .expect("run zoo")
    }
}

fn ok(o: &Output) -> (String, String) {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "zoo failed: {err}");
    assert!(!err.contains("panicked"), "{err}");
    (String::from_utf8_lossy(&o.stdout).into_owned(), err)
}

/// 32x32 RGB test images, each its own pattern, written as PNGs named `img-{i}.png` in `dir`.
fn write_images(dir: &Path, n: u32) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    (0..n)
        .map(|i| {
            let img = image::RgbImage::from_fn(32, 32, |x, y| {
                image::Rgb([(x * 7 + y * (i + 1)) as u8, (x * y + 40 * i) as u8, (200 - y * i) as u8])
            });
            let p = dir.join(format!("img-{i}.png"));
            img.save(&p).unwrap();
            p
        })
        .collect()
}

#[test]
fn sample_takes_a_class_by_name_or_index_a_row_per_class_or_draws_and_says_which() {
    let g = Gated::new();
    let (horse, seven, three) = (g.path("horse.png"), g.path("seven.png"), g.path("three.png"));
    let (_, said) = ok(&g.zoo(&["sample", ID, "-n", "2", "--seed", "1", "--class", "horse", "-o", &horse]));
    assert!(said.contains("of class horse (7)"), "{said}");
    ok(&g.zoo(&["sample", ID, "-n", "2", "--seed", "1", "--class", "7", "-o", &seven]));
    ok(&g.zoo(&["sample", ID, "-n", "2", "--seed", "1", "--class", "cat", "-o", &three]));
    let read = |p: &str| std::fs::read(p).unwrap();
    assert_eq!(read(&horse), read(&seven), "--class horse and --class 7 drew different images");
    assert_ne!(read(&horse), read(&three), "horse and cat drew the same images");

    // --class all: a row per class, -n images each: 10 rows of 1.
    let all = g.path("all.png");
    ok(&g.zoo(&["sample", ID, "-n", "1", "--seed", "1", "--class", "all", "-o", &all]));
    let (w, h) = image::image_dimensions(&all).unwrap();
    assert_eq!((w, h), (32 + 4, 10 * 34 + 2), "a column of 10 images");
    // Row 0 of the grid is class airplane's (image k of a call draws from stream k, so only the
    // first image compares with a call of one image).
    let grid = image::open(&all).unwrap().into_rgb8();
    let row_0 = |img: &image::RgbImage| -> Vec<u8> { (0..32).flat_map(|x| img.get_pixel(2 + x, 2).0).collect() };
    let airplane = g.path("airplane-one.png");
    ok(&g.zoo(&["sample", ID, "-n", "1", "--seed", "1", "--class", "airplane", "-o", &airplane]));
    let first = image::open(&airplane).unwrap().into_rgb8();
    assert_eq!(row_0(&grid), row_0(&first), "row 0 of --class all is not class airplane's first image");
    let horse = image::open(&horse).unwrap().into_rgb8();
    assert_ne!(row_0(&horse), row_0(&first), "horse and airplane begin alike");

    // Without --class: the classes are drawn, and -v says which.
    let drawn = g.path("drawn.png");
    let (_, said) = ok(&g.zoo(&["-v", "sample", ID, "-n", "3", "--seed", "4", "-o", &drawn]));
    assert!(said.contains("drawn from the uniform prior p(c)"), "{said}");
    let names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];
    let line = said.lines().find(|l| l.contains("uniform prior")).unwrap();
    assert_eq!(names.iter().map(|n| line.matches(&format!("{n} (")).count()).sum::<usize>(), 3, "{line}");
}

#[test]
fn complete_takes_a_class_and_otherwise_draws_it_given_the_kept_rows() {
    let g = Gated::new();
    let img = write_images(&g.dir.path().join("in"), 1).remove(0);
    let out = g.path("c.png");
    let args = ["complete", ID, "--image", img.to_str().unwrap(), "--keep-rows", "30", "-n", "2", "-o", &out];
    let mut with_class = args.to_vec();
    with_class.extend(["--class", "ship"]);
    ok(&g.zoo(&with_class));
    assert_eq!(image::image_dimensions(&out).unwrap(), (4 * 32 + 10, 36));
    let mut verbose = vec!["-v"];
    verbose.extend(args);
    let (_, said) = ok(&g.zoo(&verbose));
    assert!(said.contains("drawn from p(c | the kept rows)"), "{said}");
}

#[test]
fn classify_gives_each_images_most_likely_class_and_its_likelihoods_agree_with_score() {
    let g = Gated::new();
    let dir = g.dir.path().join("images");
    let paths = write_images(&dir, 3);
    let o = g.zoo(&["classify", ID, "--images", dir.to_str().unwrap(), "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&ok(&o).0).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    // The marginal NLL `zoo score` prints is −log (1/C) Σ_c p(x | c) of classify's log-likelihoods.
    let score_args: Vec<&str> =
        ["score", ID, "--json"].into_iter().chain(paths.iter().map(|p| p.to_str().unwrap())).collect();
    let scores: serde_json::Value = serde_json::from_str(&ok(&g.zoo(&score_args)).0).unwrap();
    for (row, score) in rows.iter().zip(scores.as_array().unwrap()) {
        let ll: Vec<f64> = row["log_likelihood_nats"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(ll.len(), 10);
        let best = (0..10).fold(0, |b, c| if ll[c] > ll[b] { c } else { b });
        assert_eq!(row["class"].as_u64().unwrap() as usize, best, "{row}");
        assert!(row["class_name"].is_string(), "{row}");
        let posterior: f64 = row["posterior"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).sum();
        assert!((posterior - 1.0).abs() < 1e-9, "Σ p(c | x) = {posterior}");
        let max = ll.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let marginal = 10f64.ln() - (max + ll.iter().map(|v| (v - max).exp()).sum::<f64>().ln());
        let scored = score["nll_nats"].as_f64().unwrap();
        assert!((marginal - scored).abs() / scored < 1e-5, "classify's marginal {marginal}, score's {scored}");
    }
    // Files named one by one: the same classes as the directory.
    let one_by_one: Vec<&str> =
        ["classify", ID].into_iter().chain(paths.iter().flat_map(|p| ["--images", p.to_str().unwrap()])).collect();
    let text = ok(&g.zoo(&one_by_one)).0;
    for (line, row) in text.lines().zip(rows) {
        let name = row["class_name"].as_str().unwrap();
        assert!(line.contains(&format!("\t{name} (")), "{line} vs {row}");
    }
}

#[test]
#[cfg_attr(no_test_data, ignore = "needs the MNIST and CIFAR-10 data sets: set PIXEL_ZOO_DATA")]
fn classify_test_prints_the_accuracy_and_eval_the_marginal_and_true_class_nll() {
    let Some(data) = pixel_ops::testing::data_dir() else { return };
    let data = data.to_str().unwrap();
    let g = Gated::new();
    let o = g.zoo(&["classify", ID, "--test", "--limit", "6", "--data-dir", data, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&ok(&o).0).unwrap();
    assert_eq!(v["images"], 6);
    let per_image = v["per_image"].as_array().unwrap();
    let correct = per_image.iter().filter(|r| r["class"] == r["label"]).count();
    assert_eq!(v["correct"].as_u64().unwrap() as usize, correct);
    assert!((v["accuracy"].as_f64().unwrap() - correct as f64 / 6.0).abs() < 1e-12);
    let text = ok(&g.zoo(&["classify", ID, "--test", "--limit", "6", "--data-dir", data])).0;
    assert!(text.contains(&format!("({correct} of 6 cifar10 test images)")), "{text}");

    // eval: the marginal over the classes as the headline, the true class's NLL beside it.
    let o = g.zoo(&["eval", ID, "--limit", "6", "--data-dir", data, "--json"]);
    let e: serde_json::Value = serde_json::from_str(&ok(&o).0).unwrap();
    let (marginal, given) =
        (e["nll_nats_per_image"].as_f64().unwrap(), e["given_true_class"]["nll_nats_per_image"].as_f64().unwrap());
    let ll = |r: &serde_json::Value| -> Vec<f64> {
        r["log_likelihood_nats"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
    };
    let (mut want_marginal, mut want_given) = (0.0, 0.0);
    for r in per_image {
        let l = ll(r);
        let max = l.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        want_marginal += 10f64.ln() - (max + l.iter().map(|v| (v - max).exp()).sum::<f64>().ln());
        want_given -= l[r["label"].as_u64().unwrap() as usize];
    }
    assert!(
        (marginal - want_marginal / 6.0).abs() < 1e-6 * marginal,
        "eval {marginal}, classify {}",
        want_marginal / 6.0
    );
    assert!((given - want_given / 6.0).abs() < 1e-6 * given, "eval {given}, classify {}", want_given / 6.0);
    let text = ok(&g.zoo(&["eval", ID, "--limit", "6", "--data-dir", data])).0;
    assert!(text.contains("given the true class"), "{text}");
}
