//! Gated PixelCNN checks ([`pixel_ops::model_tests!`]): causality, normalisation, reference logits
//! from the PyTorch reference (`reference/pixelzoo_ref/fixtures.py`), the naive step and the cached
//! session equal to the full pass. The `rgb` fixture is class-conditional (4 classes): the suite
//! checks its marginal over the classes for causality, normalisation and the sessions, and its
//! logits given the fixture's labels and its marginal NLL against the reference's; below, the
//! per-class logits in float32 and float64, the marginal's own checks and the sampler's class
//! choices.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use gated_pixelcnn::{Config, GatedPixelCnn};
use pixel_ops::class_conditional::GivenClasses;
use pixel_ops::sampler::{complete, sample, ClassChoice, SampleOptions};
use pixel_ops::testing::{random_fixture, random_images, total_probability_binary, workspace_root};
use pixel_ops::{ClassConditionalModel, PixelModel};

// The fixtures `rgb` (4 classes) and `binary` (unconditional), and `random_model` for the tests
// below. The binary model is unconditional; the rgb model's fixture holds labels: its logits and
// NLL given them, and its marginal NLL, against the reference's.
pixel_ops::model_tests! {
    network: ("gated-pixelcnn", Config, GatedPixelCnn),
    naive_step: ("rgb", (7, 6)),
    sessions: [("rgb", (5, 4)), ("binary", (6, 5))],
}

/// The conditional model as a `dyn ClassConditionalModel`.
fn conditional(model: &GatedPixelCnn) -> &dyn ClassConditionalModel {
    model.class_conditional().expect("the rgb fixture is class-conditional")
}

/// The binary fixture made class-conditional with `classes` classes: its weights plus class
/// biases of size `scale` (a fixed pattern, different per class), so that the classes differ.
fn binary_with_classes(
    classes: usize,
    size: (usize, usize),
    scale: f64,
    dtype: DType,
) -> anyhow::Result<GatedPixelCnn> {
    let (mut cfg, bytes): (Config, _) = random_fixture("gated-pixelcnn", "binary")?;
    (cfg.image.height, cfg.image.width, cfg.classes) = (size.0, size.1, classes);
    let mut tensors: HashMap<String, Tensor> = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)?;
    let features = 2 * cfg.hidden;
    for layer in 0..=cfg.layers {
        for (k, stack) in ["vertical", "horizontal"].into_iter().enumerate() {
            let values: Vec<f64> = (0..classes * features)
                .map(|i| scale * (1.7 * i as f64 + 0.9 * (layer * 2 + k) as f64 + 0.3).sin())
                .collect();
            tensors.insert(
                format!("layers.{layer}.{stack}_class.weight"),
                Tensor::from_vec(values, (classes, features), &Device::Cpu)?,
            );
        }
    }
    Ok(GatedPixelCnn::new(&cfg, VarBuilder::from_tensors(tensors, dtype, &Device::Cpu))?)
}

#[test]
fn the_config_reads_the_reference_fixtures() -> anyhow::Result<()> {
    let (rgb, _): (Config, _) = random_fixture("gated-pixelcnn", "rgb")?;
    assert_eq!((rgb.hidden, rgb.layers, rgb.input_kernel, rgb.block_kernel, rgb.classes), (12, 2, 5, 3, 4));
    let (binary, _): (Config, _) = random_fixture("gated-pixelcnn", "binary")?;
    assert_eq!(binary.classes, 0);
    assert!(random_model("binary", None, DType::F32)?.class_conditional().is_none());
    assert_eq!(conditional(&random_model("rgb", None, DType::F32)?).classes(), 4);
    Ok(())
}

#[test]
fn per_class_logits_match_the_pytorch_reference_given_the_fixtures_labels() -> anyhow::Result<()> {
    let fixture = workspace_root().join("tests/fixtures/gated-pixelcnn-random-rgb.logits.safetensors");
    let t = candle_core::safetensors::load(&fixture, &Device::Cpu)?;
    let (x, want, want_nll) = (&t["input"], t["logits"].to_dtype(DType::F64)?, t["nll"].to_vec1::<f64>()?);
    let labels: Vec<usize> = t["labels"].to_vec1::<u8>()?.into_iter().map(usize::from).collect();
    assert_eq!(labels.len(), x.dim(0)?);
    for (dtype, abs_tol, nll_tol) in [(DType::F64, 1e-9, 1e-12), (DType::F32, 1e-4, 1e-5)] {
        let model = random_model("rgb", None, dtype)?;
        let model = conditional(&model);
        let logits = model.logits_given_classes(x, &labels)?.to_dtype(DType::F64)?;
        let diff = (logits - &want)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?;
        assert!(diff < abs_tol, "{dtype:?}: max |Δlogit| = {diff}");
        let nll = model.nll_given_classes(x, &labels)?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        for (a, b) in nll.iter().zip(&want_nll) {
            assert!((a - b).abs() / b.abs() < nll_tol, "{dtype:?}: NLL {a} vs the reference's {b}");
        }
        // Another class gives other logits than the reference's: the labels are really used.
        let other: Vec<usize> = labels.iter().map(|c| (c + 1) % 4).collect();
        let other = model.logits_given_classes(x, &other)?.to_dtype(DType::F64)?;
        let diff = (other - &want)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?;
        assert!(diff > 1e-3, "{dtype:?}: other classes give the reference's logits (max |Δ| = {diff})");
    }
    Ok(())
}

#[test]
fn the_class_changes_every_pixels_logits() -> anyhow::Result<()> {
    let model = random_model("rgb", None, DType::F64)?;
    let model = conditional(&model);
    let x = random_images(model, 1, 9)?;
    let by_class = (0..4).map(|c| model.logits_given_classes(&x, &[c])).collect::<candle_core::Result<Vec<_>>>()?;
    for a in 0..4 {
        for b in a + 1..4 {
            // Per pixel and channel, the largest change over the 256 logits.
            let change = (&by_class[a] - &by_class[b])?.abs()?.max(2)?.flatten_all()?.to_vec1::<f64>()?;
            let least = change.iter().fold(f64::INFINITY, |m, &v| m.min(v));
            assert!(least > 1e-6, "classes {a} and {b}: some conditional does not change (least change {least})");
        }
    }
    Ok(())
}

#[test]
fn the_marginal_nll_is_the_log_mean_of_the_class_likelihoods_and_the_product_of_its_conditionals() -> anyhow::Result<()>
{
    let model = random_model("rgb", None, DType::F64)?;
    let x = random_images(&model, 3, 5)?;
    let nll = model.nll(&x)?.to_vec1::<f64>()?;
    // log p(x) = log (1/C) Σ_c p(x | c), from each class's NLL.
    let per_class = (0..4)
        .map(|c| conditional(&model).nll_given_classes(&x, &[c; 3])?.to_vec1::<f64>())
        .collect::<candle_core::Result<Vec<_>>>()?;
    for i in 0..3 {
        let mean: f64 = per_class.iter().map(|nll| (-nll[i] + 500.0).exp()).sum::<f64>() / 4.0;
        let want = -(mean.ln() - 500.0);
        assert!((nll[i] - want).abs() < 1e-9, "image {i}: marginal NLL {} vs {want}", nll[i]);
        assert!(
            per_class.iter().any(|c| (c[i] - nll[i]).abs() > 1e-3),
            "image {i}: every class has the marginal's NLL"
        );
    }
    // The marginal conditionals: each sums to one, and their product over the order is p(x).
    let logits = model.logits(&x)?;
    let worst = (logits.exp()?.sum(2)? - 1.0)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?;
    assert!(worst < 1e-12, "max |Σ p − 1| = {worst}");
    let from_conditionals = model.spec().head.nll_per_image(&logits, &x)?.to_vec1::<f64>()?;
    for (a, b) in from_conditionals.iter().zip(&nll) {
        assert!((a - b).abs() < 1e-9, "Π marginal conditionals gives {a}, the marginal NLL {b}");
    }
    Ok(())
}

#[test]
fn a_conditional_binary_models_marginal_sums_to_one_over_every_image() -> anyhow::Result<()> {
    // 3 classes with random biases on the binary fixture, 3x4 = 12 pixels: 4,096 images.
    let model = binary_with_classes(3, (3, 4), 0.5, DType::F64)?;
    let total = total_probability_binary(&model)?;
    assert!((total - 1.0).abs() < 1e-9, "Σ p(x) over every image = {total}");
    // The same from the marginal conditionals (the logits), not from the class likelihoods.
    let s = model.spec();
    let px: Vec<u8> = (0..1usize << 12).flat_map(|img| (0..12).map(move |k| ((img >> k) & 1) as u8)).collect();
    let x = Tensor::from_vec(px, (4096, 1, s.height, s.width), &Device::Cpu)?;
    let nll = s.head.nll_per_image(&model.logits(&x)?, &x)?.to_vec1::<f64>()?;
    let total: f64 = nll.iter().map(|v| (-v).exp()).sum();
    assert!((total - 1.0).abs() < 1e-9, "Σ Π marginal conditionals over every image = {total}");
    // And the marginal session equals the full pass on a conditional binary model too.
    let worst = pixel_ops::testing::step_mismatch(&model, true)?;
    assert!(worst < 1e-9, "marginal session vs full pass: {worst}");
    Ok(())
}

#[test]
fn a_class_per_image_samples_each_image_given_its_class() -> anyhow::Result<()> {
    let model = random_model("rgb", Some((4, 3)), DType::F32)?;
    let classes = vec![3, 0, 2];
    let opts =
        SampleOptions { count: 3, seed: 7, classes: ClassChoice::PerImage(classes.clone()), ..Default::default() };
    let drawn = sample(&model, &opts, &mut |_, _| {})?;
    assert_eq!(drawn.classes.as_deref(), Some(&classes[..]));
    // The same images as the model given those classes, sampled as a plain model.
    let given = GivenClasses::new(conditional(&model), classes)?;
    // (On one thread: the wrapper takes exactly its 3 images, not parts of them.)
    let plain = SampleOptions { classes: ClassChoice::Drawn, threads: 1, ..opts.clone() };
    let want = sample(&given, &plain, &mut |_, _| {})?;
    assert_eq!(drawn.images.flatten_all()?.to_vec1::<u8>()?, want.images.flatten_all()?.to_vec1::<u8>()?);
    // One class for all is the same as that class per image.
    let one = sample(&model, &SampleOptions { classes: ClassChoice::One(2), ..opts.clone() }, &mut |_, _| {})?;
    let per =
        sample(&model, &SampleOptions { classes: ClassChoice::PerImage(vec![2; 3]), ..opts.clone() }, &mut |_, _| {})?;
    assert_eq!(one.images.flatten_all()?.to_vec1::<u8>()?, per.images.flatten_all()?.to_vec1::<u8>()?);
    Ok(())
}

#[test]
fn drawn_classes_follow_the_seed_and_the_prior() -> anyhow::Result<()> {
    let model = random_model("rgb", Some((1, 2)), DType::F32)?;
    let opts = |seed| SampleOptions { count: 400, seed, ..Default::default() };
    let a = sample(&model, &opts(1), &mut |_, _| {})?.classes.expect("classes");
    let again = sample(&model, &opts(1), &mut |_, _| {})?.classes.expect("classes");
    let other = sample(&model, &opts(2), &mut |_, _| {})?.classes.expect("classes");
    assert_eq!(a, again, "the same seed draws the same classes");
    assert_ne!(a, other, "another seed draws other classes");
    // Uniform over 4 classes: each about 100 of 400 (binomial sd ≈ 8.7).
    for c in 0..4 {
        let n = a.iter().filter(|&&v| v == c).count();
        assert!((60..=140).contains(&n), "class {c} drawn {n} times of 400");
    }
    Ok(())
}

#[test]
fn completion_draws_classes_from_the_posterior_given_the_kept_rows() -> anyhow::Result<()> {
    // On the binary fixture with 2 classes, images of class 1 completed from their top 3 rows of 5:
    // each completion's class is drawn from p(c | the kept rows), so the number of class-1 draws
    // is a sum of Bernoulli(p(1 | rows)) draws, whose mean and spread the posteriors give.
    let model = binary_with_classes(2, (5, 4), 3.0, DType::F32)?;
    let n = 300;
    let given = sample(
        &model,
        &SampleOptions { count: n, seed: 3, classes: ClassChoice::One(1), ..Default::default() },
        &mut |_, _| {},
    )?
    .images;
    // The kept rows come first in raster order: their likelihood is that of the 3-row images.
    let ll = conditional(&model).class_log_likelihoods(&given.narrow(2, 0, 3)?)?.to_vec2::<f64>()?;
    let posterior: Vec<f64> = ll.iter().map(|l| 1.0 / (1.0 + (l[0] - l[1]).exp())).collect();
    let (mean, var) = posterior.iter().fold((0.0, 0.0), |(m, v), p| (m + p, v + p * (1.0 - p)));
    assert!(mean > 0.6 * n as f64, "the kept rows hardly tell class 1: expected {mean} of {n}");
    let opts = SampleOptions { count: 1, seed: 4, ..Default::default() };
    let done = complete(&model, &given, 3, &opts, &mut |_, _| {})?;
    let drawn = done.classes.expect("classes").iter().filter(|&&c| c == 1).count() as f64;
    assert!((drawn - mean).abs() < 4.0 * var.sqrt() + 1.0, "{drawn} class-1 draws, expected {mean} ± {}", var.sqrt());
    // The prior would draw class 1 about half the time: far from what the rows say.
    assert!((drawn - 0.5 * n as f64).abs() > 4.0 * (0.25 * n as f64).sqrt(), "{drawn} of {n}: as the prior");
    Ok(())
}

#[test]
fn bad_class_choices_are_refused_with_what_to_do() -> anyhow::Result<()> {
    let model = random_model("rgb", Some((2, 2)), DType::F32)?;
    let err = |classes| {
        let opts = SampleOptions { count: 2, classes, ..Default::default() };
        sample(&model, &opts, &mut |_, _| {}).unwrap_err().to_string()
    };
    let e = err(ClassChoice::One(4));
    assert!(e.contains("class 4 is out of range") && e.contains("0..=3"), "{e}");
    let e = err(ClassChoice::PerImage(vec![1]));
    assert!(e.contains("1 classes given for 2 images"), "{e}");
    let binary = random_model("binary", None, DType::F32)?;
    let opts = SampleOptions { count: 2, classes: ClassChoice::One(0), ..Default::default() };
    let e = sample(&binary, &opts, &mut |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("not class-conditional"), "{e}");
    // And the conditional model's per-class logits check the labels.
    let x = random_images(&model, 2, 1)?;
    let e = conditional(&model).logits_given_classes(&x, &[0]).unwrap_err().to_string();
    assert!(e.contains("1 classes given for 2 images"), "{e}");
    Ok(())
}
