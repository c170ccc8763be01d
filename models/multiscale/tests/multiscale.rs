//! Multi-scale checks ([`pixel_ops::model_tests!`] and more): causality in the multi-scale order
//! (the conditioning path included), normalisation on a 4×4 binary image (so the likelihood is
//! exact), reference logits from the PyTorch reference (`reference/pixelzoo_ref/fixtures.py`), the
//! sampling step and the cached session, with every inner architecture as a stage.

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use multiscale::{Config, MultiScale};
use pixel_ops::testing::{random_fixture, random_images};
use pixel_ops::PixelModel;

/// The random-weight reference model `name`: `rgb` (Row LSTM small stage, Diagonal BiLSTM big
/// stage, 6×6 RGB), `binary` (Diagonal BiLSTM → Row LSTM, 4×4), `pixelcnn` (PixelCNN → Diagonal
/// BiLSTM, 6×6 binary). Its size is the fixture's (the stages' sizes follow from it): `size`, if
/// given, must be that.
fn random_model(name: &str, size: Option<(usize, usize)>, dtype: DType) -> anyhow::Result<MultiScale> {
    let (cfg, bytes): (Config, _) = random_fixture("multiscale", name)?;
    if let Some(size) = size {
        anyhow::ensure!(size == (cfg.height, cfg.width), "the {name} fixture is {}x{}", cfg.height, cfg.width);
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
