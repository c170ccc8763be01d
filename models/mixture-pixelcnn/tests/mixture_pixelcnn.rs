//! Mixture PixelCNN checks ([`pixel_ops::model_tests!`]): causality, reference logits from the
//! PyTorch reference (`reference/pixelzoo_ref/fixtures.py`), the windowed sampling step and the
//! cached session; and, since the images are 8-bit (too many to enumerate), normalisation checked
//! per conditional and against the mixture's direct likelihood; masks applied at load time.

use candle_core::{DType, IndexOp, D};
use mixture_pixelcnn::{Config, MixturePixelCnn};
use pixel_ops::logistic_mixture::log_likelihood;
use pixel_ops::testing::{random_fixture, random_images, workspace_root};
use pixel_ops::{Head, PixelModel};

// The fixture `rgb`.
pixel_ops::model_tests! {
    network: ("mixture-pixelcnn", Config, MixturePixelCnn),
    causal: [("rgb", [1, 2, 3])],
    reference: ["rgb"],
    // 9x9 is larger than the receptive window (radius 1), so the window is really cut.
    naive_step: ("rgb", (9, 9)),
    sessions: [("rgb", (7, 6))],
}

#[test]
fn the_config_reads_the_reference_head() -> anyhow::Result<()> {
    let (cfg, _): (Config, _) = random_fixture("mixture-pixelcnn", "rgb")?;
    assert_eq!(cfg.image.head, Head::LogisticMixture);
    assert_eq!((cfg.hidden, cfg.layers, cfg.input_kernel, cfg.components), (16, 1, 3, 3));
    assert_eq!(cfg.params(), 30);
    assert_eq!(serde_json::to_value(&cfg)?["head"], "logistic-mixture");
    Ok(())
}

#[test]
fn every_conditional_sums_to_one_and_the_nll_is_the_mixtures_direct_likelihood() -> anyhow::Result<()> {
    // 8-bit images are too many to sum p over; instead: each conditional's 256 probabilities sum to
    // 1 (so, with causality, the product over the order is a normalised distribution), and the NLL
    // the zoo takes from the logits equals the mixture's joint likelihood computed without bins.
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
        let model = random_model("rgb", Some((5, 4)), dtype)?;
        let x = random_images(&model, 3, 7)?;
        let logits = model.logits(&x)?.to_dtype(DType::F64)?;
        let total = logits.exp()?.sum(2)?;
        let worst = (total - 1.0)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?;
        assert!(worst < tol, "{dtype:?}: max |Σ p − 1| = {worst}");
        let nll = model.nll(&x)?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        let params = model.mixture_params(&x)?;
        let direct = log_likelihood(&params, &x, model.config().components)?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        for (a, b) in nll.iter().zip(&direct) {
            assert!((a + b).abs() / b.abs().max(1.0) < tol, "{dtype:?}: NLL {a} vs −log p {b}");
        }
        // log_probs of this head are the logits themselves.
        let lp = model.log_probs(&x)?.to_dtype(DType::F64)?;
        let diff = (lp - &logits)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?;
        assert!(diff < tol, "{dtype:?}: log_probs differ from the logits by {diff}");
    }
    Ok(())
}

#[test]
fn the_session_computes_a_pixels_parameters_once_and_refuses_a_pixel_begun_late() -> anyhow::Result<()> {
    let model = random_model("rgb", Some((3, 3)), DType::F64)?;
    let x = random_images(&model, 1, 5)?;
    let mut session = model.session(1)?.expect("the model has a session");
    let first = session.step(&x, 0, 0, 0)?;
    assert_eq!(first.dims(), &[1, 256]);
    // Channel 1 from the parameters held since channel 0 equals the full pass's.
    let full = model.logits(&x)?;
    let one = session.step(&x, 0, 0, 1)?;
    let diff = (one - full.i((.., 1, .., 0, 0))?)?.abs()?.max(D::Minus1)?.to_vec1::<f64>()?[0];
    assert!(diff < 1e-12, "channel 1 from the held parameters differs by {diff}");
    let err = session.step(&x, 0, 1, 2).unwrap_err().to_string();
    assert!(err.contains("at channel 2"), "{err}");
    Ok(())
}

#[test]
fn fixture_weights_are_unmasked_so_the_causality_tests_check_masking_at_load() -> anyhow::Result<()> {
    // The random fixture stores unmasked weights: the input convolution's centre tap (out 0, in 0)
    // is non-zero in the file. The causality test passes only because the zoo multiplies the mask
    // in when it loads them.
    let bytes = std::fs::read(workspace_root().join("tests/fixtures/mixture-pixelcnn-random-rgb.safetensors"))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let w = st.tensor("input_conv.weight")?;
    assert_eq!(w.shape(), &[16, 3, 3, 3]);
    let vals: Vec<f32> = w.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let (centre_row, centre_col) = (1, 1);
    assert_ne!(vals[centre_row * 3 + centre_col], 0.0, "fixture should hold an unmasked value at the centre tap");
    Ok(())
}
