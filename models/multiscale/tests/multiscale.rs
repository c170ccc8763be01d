//! Multi-scale checks ([`pixel_ops::model_tests!`] and more): causality in the multi-scale order
//! (the conditioning path included), normalisation on a 4×4 binary image (so the likelihood is
//! exact), reference logits from the PyTorch reference (`reference/pixelzoo_ref/fixtures.py`), the
//! sampling step and the cached session, with every inner architecture as a stage.

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use multiscale::{Config, MultiScale, Stage};
use pixel_ops::testing::{random_fixture, random_images};
use pixel_ops::PixelModel;

/// The random-weight reference model `name`: `rgb` (Row LSTM small stage, Diagonal BiLSTM big
/// stage, 6×6 RGB), `binary` (Diagonal BiLSTM → Row LSTM, 4×4), `pixelcnn` (PixelCNN → Diagonal
/// BiLSTM, 6×6 binary). Its size is the fixture's (the stages' sizes follow from it): `size`, if
/// given, must be that.
fn random_model(name: &str, size: Option<(usize, usize)>, dtype: DType) -> anyhow::Result<MultiScale> {
    let (cfg, bytes): (Config, _) = random_fixture("multiscale", name)?;
    if let Some(size) = size {
        anyhow::ensure!(
            size == (cfg.image.height, cfg.image.width),
            "the {name} fixture is {}x{}",
            cfg.image.height,
            cfg.image.width
        );
    }
    Ok(MultiScale::new(&cfg, VarBuilder::from_buffered_safetensors(bytes, dtype, &Device::Cpu)?)?)
}

const ALL: [&str; 3] = ["rgb", "binary", "pixelcnn"];

pixel_ops::model_tests! {
    model: random_model,
    fixtures: "multiscale",
    causal: [("rgb", [1, 2]), ("binary", [1, 2]), ("pixelcnn", [1, 2])],
    normalised: ("binary", f32: (4, 4), f64: (4, 4)),
    reference: ["rgb", "binary", "pixelcnn"],
    naive_step: ("rgb", (6, 6)),
    sessions: [("rgb", (6, 6)), ("binary", (4, 4)), ("pixelcnn", (6, 6))],
}

#[test]
fn the_order_is_the_small_image_first_then_the_rest_in_raster_order() -> anyhow::Result<()> {
    let order = random_model("binary", None, DType::F32)?.pixel_order();
    let want = [(0, 0), (0, 2), (2, 0), (2, 2), (0, 1), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3), (2, 1), (2, 3)];
    assert_eq!(&order[..12], &want);
    assert_eq!(order.len(), 16);
    Ok(())
}

#[test]
fn the_conditioning_path_reaches_small_image_pixels_ahead() -> anyhow::Result<()> {
    for name in ALL {
        let model = random_model(name, None, DType::F64)?;
        let s = model.spec();
        let (h, w, c) = (s.height, s.width, s.channels);
        let x = random_images(&model, 1, 7)?.to_dtype(DType::U8)?;
        let base = model.logits(&x)?;
        let values = s.head.values() as u16;
        let mut checked = 0;
        for r in 0..h {
            for q in 0..w {
                let ahead = (r.div_ceil(2) * 2, q.div_ceil(2) * 2);
                if model.in_small_image(r, q) || ahead.0 >= h || ahead.1 >= w {
                    continue;
                }
                let mut px = x.flatten_all()?.to_vec1::<u8>()?;
                for ch in 0..c {
                    let k = (ch * h + ahead.0) * w + ahead.1;
                    px[k] = ((px[k] as u16 + values / 2) % values) as u8;
                }
                let changed = model.logits(&Tensor::from_vec(px, (1, c, h, w), &Device::Cpu)?)?;
                let d = (base.i((.., .., .., r, q))? - changed.i((.., .., .., r, q))?)?.abs()?.flatten_all()?.max(0)?;
                let d = d.to_scalar::<f64>()?;
                assert!(d > 0.0, "{name}: the logits at ({r},{q}) do not see the small image's pixel {ahead:?}");
                checked += 1;
            }
        }
        assert_eq!(checked, (h - 1) * (w - 1) - (h / 2) * (w / 2), "{name}: pixels checked");
    }
    Ok(())
}

#[test]
fn steps_out_of_order_are_an_error() -> anyhow::Result<()> {
    let model = random_model("binary", None, DType::F32)?;
    let x = random_images(&model, 1, 1)?;
    let mut session = model.session(1)?.expect("a session");
    // (0, 1) is outside the small image: asking it first skips the small stage's pixels (0, 2), …
    session.step(&x, 0, 0, 0)?;
    session.step(&x, 0, 1, 0)?;
    assert!(session.step(&x, 0, 2, 0).is_err(), "a small-image pixel after the big stage began");
    Ok(())
}

// ---- Upscaling (`pixel_ops::sampler::upscale`) and the split likelihood ----

use pixel_ops::sampler::{upscale, Method, SampleOptions};
use pixel_ops::MultiScaleModel;

/// `upscalings` images of `small` `(n, c, s, s)` with seed `seed` by `method`, as u8 `(n·count, c, h, w)`.
fn upscalings(model: &MultiScale, small: &Tensor, count: usize, seed: u64, method: Method) -> anyhow::Result<Tensor> {
    let opts = SampleOptions { count, seed, method, ..Default::default() };
    Ok(upscale(model, small, &opts, &mut |_, _| {})?)
}

#[test]
fn upscaling_keeps_the_small_image_exactly_and_draws_the_other_pixels() -> anyhow::Result<()> {
    for name in ALL {
        let model = random_model(name, None, DType::F32)?;
        let s = model.spec();
        let small = random_images(model.small_stage(), 2, 5)?.to_dtype(DType::U8)?;
        let up = upscalings(&model, &small, 3, 4, Method::Cached)?;
        assert_eq!(up.dims(), [6, s.channels, s.height, s.width], "{name}");
        for k in 0..6 {
            let kept = model.small_image(&up.i(k..k + 1)?)?.flatten_all()?.to_vec1::<u8>()?;
            let given = small.i(k / 3..k / 3 + 1)?.flatten_all()?.to_vec1::<u8>()?;
            assert_eq!(kept, given, "{name}: upscaling {k} changed its small image");
        }
        if name == "rgb" {
            // 256 levels drawn at 27 places: three draws for one input do not come out the same.
            let (a, b) = (up.i(0)?.flatten_all()?.to_vec1::<u8>()?, up.i(1)?.flatten_all()?.to_vec1::<u8>()?);
            assert_ne!(a, b, "two upscalings of one input are identical");
        }
    }
    Ok(())
}

#[test]
fn upscaling_with_the_same_seed_gives_the_same_images_and_cached_equals_naive() -> anyhow::Result<()> {
    for name in ALL {
        let model = random_model(name, None, DType::F32)?;
        let small = random_images(model.small_stage(), 2, 8)?;
        let once = upscalings(&model, &small, 2, 11, Method::Cached)?.flatten_all()?.to_vec1::<u8>()?;
        let again = upscalings(&model, &small, 2, 11, Method::Cached)?.flatten_all()?.to_vec1::<u8>()?;
        let naive = upscalings(&model, &small, 2, 11, Method::Naive)?.flatten_all()?.to_vec1::<u8>()?;
        assert_eq!(once, again, "{name}: the same seed, different images");
        assert_eq!(once, naive, "{name}: the cached and naive paths drew different images");
        if name == "rgb" {
            let other = upscalings(&model, &small, 2, 12, Method::Cached)?.flatten_all()?.to_vec1::<u8>()?;
            assert_ne!(once, other, "{name}: another seed, the same images");
        }
    }
    Ok(())
}

#[test]
fn upscaling_refuses_a_single_scale_model_a_small_image_of_the_wrong_size_and_values_out_of_range() -> anyhow::Result<()>
{
    let model = random_model("rgb", None, DType::F32)?;
    let small = random_images(model.small_stage(), 1, 1)?;
    let err = upscale(model.small_stage(), &small, &SampleOptions::default(), &mut |_, _| {}).unwrap_err().to_string();
    assert!(err.contains("a single-scale model of 3x3 images: upscaling needs a multi-scale model"), "{err}");
    let full = random_images(&model, 1, 1)?;
    let err = upscale(&model, &full, &SampleOptions::default(), &mut |_, _| {}).unwrap_err().to_string();
    assert!(err.contains("the small images to upscale are [1, 3, 6, 6]; the model takes (n, 3, 3, 3)"), "{err}");
    let binary = random_model("binary", None, DType::F32)?;
    let white = Tensor::full(255u8, (1, 1, 2, 2), &Device::Cpu)?;
    let err = upscale(&binary, &white, &SampleOptions::default(), &mut |_, _| {}).unwrap_err().to_string();
    assert!(
        err.contains("the small images to upscale hold the value 255; the model's pixel values are 0..=1"),
        "{err}"
    );
    Ok(())
}

#[test]
fn the_split_likelihood_is_the_small_stages_plus_the_upscalings() -> anyhow::Result<()> {
    for name in ALL {
        let model = random_model(name, None, DType::F64)?;
        let x = random_images(&model, 3, 21)?;
        let (small, up) = model.nll_split(&x)?;
        let (small, up) = (small.to_vec1::<f64>()?, up.to_vec1::<f64>()?);
        let total = model.nll(&x)?.to_vec1::<f64>()?;
        let small_stage = model.small_stage().nll(&model.small_image(&x)?)?.to_vec1::<f64>()?;
        for i in 0..3 {
            assert!(
                (small[i] - small_stage[i]).abs() < 1e-9,
                "{name}: {} vs the small stage's {}",
                small[i],
                small_stage[i]
            );
            assert!((small[i] + up[i] - total[i]).abs() < 1e-9, "{name}: {} + {} vs {}", small[i], up[i], total[i]);
            assert!(up[i] > 0.0, "{name}: the upscaling's NLL is {}", up[i]);
        }
        let s = model.spec();
        let small_values = s.channels * (s.height / 2) * (s.width / 2);
        assert_eq!(model.split_dims(), (small_values, s.dims() - small_values), "{name}");
    }
    Ok(())
}

/// On the 4×4 binary model, p(x | x[::2, ::2]) from the split likelihood sums to 1 over the 2^12
/// other pixels, and 4,000 upscalings of one small image draw each of those pixels as often as
/// that conditional says (within 4 standard deviations; the seed is fixed, so the test is
/// deterministic).
#[test]
fn upscalings_follow_the_conditional_distribution() -> anyhow::Result<()> {
    let model = random_model("binary", Some((4, 4)), DType::F64)?;
    let given = [1u8, 0, 0, 1]; // x[::2, ::2] in the small image's raster order
    let others: Vec<(usize, usize)> =
        (0..16).map(|k| (k / 4, k % 4)).filter(|&(r, q)| !model.in_small_image(r, q)).collect();
    let image = |bits: usize| -> Vec<u8> {
        let mut px = vec![0u8; 16];
        for (k, &(r, q)) in [(0, 0), (0, 2), (2, 0), (2, 2)].iter().enumerate() {
            px[r * 4 + q] = given[k];
        }
        for (k, &(r, q)) in others.iter().enumerate() {
            px[r * 4 + q] = ((bits >> k) & 1) as u8;
        }
        px
    };
    let all: Vec<u8> = (0..1usize << 12).flat_map(image).collect();
    let x = Tensor::from_vec(all.clone(), (1 << 12, 1, 4, 4), &Device::Cpu)?;
    let p: Vec<f64> = model.nll_split(&x)?.1.to_vec1::<f64>()?.iter().map(|n| (-n).exp()).collect();
    let total: f64 = p.iter().sum();
    assert!((total - 1.0).abs() < 1e-9, "Σ p(x | small) = {total}");
    let n = 4000;
    let small = Tensor::from_vec(given.to_vec(), (1, 1, 2, 2), &Device::Cpu)?;
    let drawn = upscalings(&model, &small, n, 2016, Method::Cached)?.flatten_all()?.to_vec1::<u8>()?;
    for &(r, q) in &others {
        let want: f64 = p.iter().enumerate().map(|(i, pi)| pi * f64::from(all[i * 16 + r * 4 + q])).sum();
        let got = (0..n).filter(|i| drawn[i * 16 + r * 4 + q] == 1).count() as f64 / n as f64;
        let sd = (want * (1.0 - want) / n as f64).sqrt();
        assert!((got - want).abs() < 4.0 * sd + 1e-9, "pixel ({r},{q}): drawn {got}, p = {want} (sd {sd})");
    }
    Ok(())
}

/// The configs keep their keys with the image part ([`pixel_ops::ImageSpec`]) flattened into them,
/// the stages' included: a config reads back as it is written, with `channels`, `height`, `width`
/// and `head` beside the other keys, and an unknown key is refused, at the top and in a stage.
#[test]
fn configs_keep_their_keys_and_refuse_unknown_ones() -> anyhow::Result<()> {
    let (cfg, _): (Config, _) = random_fixture("multiscale", "rgb")?;
    let json = serde_json::to_value(&cfg)?;
    for v in [&json, &json["small"], &json["big"]] {
        assert_eq!((v["channels"].as_u64(), v["head"].as_str()), (Some(3), Some("softmax256")), "{v}");
        assert!(v["height"].is_u64() && v["width"].is_u64() && v.get("image").is_none(), "{v}");
    }
    assert_eq!(serde_json::from_value::<Config>(json.clone())?, cfg);
    for at in [None, Some("small"), Some("big")] {
        let mut bad = json.clone();
        let place = match at {
            Some(stage) => &mut bad[stage],
            None => &mut bad,
        };
        place["colours"] = 3.into();
        let err = serde_json::from_value::<Config>(bad).unwrap_err().to_string();
        assert!(err.contains("colours"), "{at:?}: {err}");
    }
    Ok(())
}

/// Either stage may be any of the three networks in a config, but the big stage must take the
/// conditioning map (a recurrent network with `conditioning` > 0) and the small stage must not.
#[test]
fn a_pixelcnn_or_an_unconditional_big_stage_and_a_conditional_small_stage_are_refused() -> anyhow::Result<()> {
    let (cfg, bytes): (Config, _) = random_fixture("multiscale", "pixelcnn")?;
    let build = |cfg: &Config| {
        let vb = VarBuilder::from_buffered_safetensors(bytes.clone(), DType::F32, &Device::Cpu)?;
        MultiScale::new(cfg, vb).map(|_| ())
    };
    build(&cfg)?;
    let refused = |cfg: Config| build(&cfg).unwrap_err().to_string();

    let swapped = Config { small: cfg.big.clone(), big: cfg.small.clone(), ..cfg.clone() };
    let e = refused(swapped);
    assert!(e.contains("big stage must be a row-lstm or diagonal-bilstm, not a pixelcnn"), "{e}");

    let mut unconditional = cfg.clone();
    if let Stage::DiagonalBiLstm(c) = &mut unconditional.big {
        c.conditioning = 0;
    }
    let e = refused(unconditional);
    assert!(e.contains("big stage must be conditional"), "{e}");

    let binary: (Config, _) = random_fixture("multiscale", "binary")?;
    let mut conditional_small = binary.0.clone();
    if let Stage::DiagonalBiLstm(c) = &mut conditional_small.small {
        c.conditioning = 4;
    }
    let e = refused(conditional_small);
    assert!(e.contains("small stage must be unconditional"), "{e}");
    Ok(())
}
