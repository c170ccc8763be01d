//! Property checks every architecture's tests run (causality, normalisation, reference logits).
//! They live here, once, and take any [`PixelModel`].

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, IndexOp, Tensor};

use crate::head::Head;
use crate::model::PixelModel;
use crate::stepper::{step_through, Given, Method};
use crate::weights_config::read_config;

/// Checks causality on random `(1, c, h, w)` inputs, one per seed: each input value is changed
/// (to several other values) and the logits recomputed. Any logit that changes must come after
/// that value in the factorisation order ([`PixelModel::pixel_order`]: later pixel, or same pixel
/// and later channel). And, on some input and change: every logit but the first changes for some
/// earlier input and for the value just before it in the order when that is in the same row (the
/// pixel's previous channel, or the last channel of the previous pixel), and every input but the
/// last changes some logit. Several inputs and
/// changes keep a ReLU that happens to be off from hiding a dependency of a random-weight model.
/// Returns a description of every violation (empty: causal).
// `src` and `dst` are positions in the factorisation order, used for arithmetic as well as indexing.
#[allow(clippy::needless_range_loop)]
pub fn causality_violations(model: &dyn PixelModel, seeds: &[u64]) -> candle_core::Result<Vec<String>> {
    let s = model.spec();
    let (c, h, w) = (s.channels, s.height, s.width);
    let n = c * h * w;
    let values = s.head.values() as u64;
    let deltas: Vec<u64> = if values == 2 { vec![1] } else { vec![values / 2, values / 4, 1] };
    let levels = s.head.levels();
    let logits_of = |px: &[u8]| -> candle_core::Result<Vec<f32>> {
        let x = Tensor::from_slice(px, (1, c, h, w), model.device())?;
        // (1, c, levels, h, w), flattened as (ch, level, row, col)
        model.logits(&x)?.to_dtype(DType::F32)?.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()
    };
    // Orders are rank·c + ch, where rank is the pixel's place in the pixel order; `slot` maps an
    // order to its (ch, row, col) memory index.
    let pixels = model.pixel_order();
    assert_eq!(pixels.len(), h * w, "the pixel order must hold every pixel once");
    let slot = |o: usize| {
        let (row, col) = pixels[o / c];
        ((o % c) * h + row) * w + col
    };
    let describe = |o: usize| format!("channel {} at ({},{})", o % c, pixels[o / c].0, pixels[o / c].1);
    let mut forbidden = Vec::new();
    let mut affects_any = vec![false; n];
    let mut depends_on_earlier = vec![false; n];
    let mut depends_on_previous = vec![false; n];
    for &seed in seeds {
        // A pseudo-random image.
        let base = random_values(seed, n, values);
        let reference = logits_of(&base)?;
        for src in 0..n {
            for &delta in &deltas {
                let mut px = base.clone();
                let k = slot(src);
                px[k] = ((px[k] as u64 + delta) % values) as u8;
                let changed = logits_of(&px)?;
                for dst in 0..n {
                    let (ch, pos) = (dst % c, slot(dst) % (h * w));
                    let moved = (0..levels).any(|l| {
                        let i = (ch * levels + l) * h * w + pos;
                        reference[i] != changed[i]
                    });
                    if !moved {
                        continue;
                    }
                    affects_any[src] = true;
                    if src >= dst {
                        forbidden.push(format!("logit of {} depends on {}", describe(dst), describe(src)));
                    } else {
                        depends_on_earlier[dst] = true;
                        depends_on_previous[dst] |= src + 1 == dst;
                    }
                }
            }
        }
    }
    forbidden.sort();
    forbidden.dedup();
    let mut violations = forbidden;
    for o in 0..n {
        if o + 1 < n && !affects_any[o] {
            violations.push(format!("changing {} changes no logit", describe(o)));
        }
        if o > 0 && !depends_on_earlier[o] {
            violations.push(format!("logit of {} depends on no earlier input", describe(o)));
        }
        let same_row = o % c > 0 || (o >= c && pixels[o / c - 1].0 == pixels[o / c].0);
        if same_row && !depends_on_previous[o] {
            violations.push(format!("logit of {} does not depend on the value just before it", describe(o)));
        }
    }
    Ok(violations)
}

/// Σ over every possible binary image of p(x): must be 1. Only for Bernoulli models of at most
/// 20 pixels (2^20 images, scored in batches of 4096).
pub fn total_probability_binary(model: &dyn PixelModel) -> candle_core::Result<f64> {
    let s = model.spec();
    assert_eq!(s.head, Head::Bernoulli, "normalisation by enumeration needs a binary model");
    let n = s.dims();
    assert!(n <= 20, "{n} binary values: too many images to enumerate");
    let count = 1usize << n;
    let mut total = 0f64;
    for start in (0..count).step_by(4096) {
        let b = 4096.min(count - start);
        let px: Vec<u8> = (start..start + b).flat_map(|img| (0..n).map(move |k| ((img >> k) & 1) as u8)).collect();
        let x = Tensor::from_vec(px, (b, s.channels, s.height, s.width), model.device())?;
        let nll = model.nll(&x)?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        total += nll.iter().map(|v| (-v).exp()).sum::<f64>();
    }
    Ok(total)
}

/// A pseudo-random batch of `n` images the model describes (ChaCha8 from `seed`).
pub fn random_images(model: &dyn PixelModel, n: usize, seed: u64) -> candle_core::Result<Tensor> {
    let s = model.spec();
    let values = s.head.values() as u64;
    let px = random_values(seed, n * s.dims(), values);
    Tensor::from_vec(px, (n, s.channels, s.height, s.width), model.device())
}

/// `n` pseudo-random pixel values below `values` (ChaCha8 from `seed`).
fn random_values(seed: u64, n: usize, values: u64) -> Vec<u8> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.gen_range(0..values) as u8).collect()
}

/// The largest |Δlogit| between a step path and the full pass over every value of two random
/// images, in the model's order: its cached session if `cached`, else [`PixelModel::step_logits`].
pub fn step_mismatch(model: &dyn PixelModel, cached: bool) -> candle_core::Result<f64> {
    let x = random_images(model, 2, 3)?;
    let full = model.logits(&x)?.to_dtype(DType::F64)?;
    let method = if cached {
        if model.session(2)?.is_none() {
            candle_core::bail!("the model has no cached session");
        }
        Method::Cached
    } else {
        Method::Naive
    };
    let mut worst = 0f64;
    let mut pixels = x.flatten_all()?.to_vec1::<u8>()?;
    step_through(model, method, &mut pixels, Given::Nothing, |v, step, _: &mut [u8]| -> candle_core::Result<()> {
        let diff = (step.to_dtype(DType::F64)? - full.i((.., v.channel, .., v.row, v.col))?)?;
        worst = worst.max(diff.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?);
        Ok(())
    })?;
    Ok(worst)
}

/// Samples 3 images with `seed` by the cached and by the naive path: `(cached, naive)` pixels.
pub fn cached_and_naive_samples(model: &dyn PixelModel, seed: u64) -> crate::Result<(Vec<u8>, Vec<u8>)> {
    use crate::sampler::{sample, SampleOptions};
    let opts = |method| SampleOptions { count: 3, seed, method, ..Default::default() };
    let cached = sample(model, &opts(Method::Cached), &mut |_, _| {})?.images.flatten_all()?.to_vec1::<u8>()?;
    let naive = sample(model, &opts(Method::Naive), &mut |_, _| {})?.images.flatten_all()?.to_vec1::<u8>()?;
    Ok((cached, naive))
}

/// A weights file's config (its `config` metadata without the `architecture` key, parsed as the
/// architecture's config type `C`) and its bytes (the fixtures of the PyTorch reference).
pub fn weights_with_config<C: serde::de::DeserializeOwned>(path: &Path) -> candle_core::Result<(C, Vec<u8>)> {
    let fail = |e: &dyn std::fmt::Display| candle_core::Error::Msg(format!("{}: {e}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| fail(&e))?;
    let config = read_config(&bytes).map_err(|e| fail(&e))?.config;
    Ok((serde_json::from_value(config).map_err(candle_core::Error::wrap)?, bytes))
}

/// How far a model's logits and NLL are from the reference's.
#[derive(Debug, Clone, Copy)]
pub struct ReferenceDiff {
    /// max |Δlogit|.
    pub max_abs_logit: f64,
    /// max |Δlogit| / max(1, max |reference logit|): the error relative to the logits' scale, the
    /// measure that suits float32, whose rounding grows with the magnitudes inside the network.
    pub max_rel_logit: f64,
    /// max |ΔNLL| / max(1, |reference NLL|).
    pub max_rel_nll: f64,
}

/// Compares a model with reference logits from the PyTorch reference: the fixture file holds
/// `input` (n, c, h, w) u8, `logits` (m, c, levels, r, w) for the first m images and rows, and
/// `nll` (n,) nats, computed in float64. A class-conditional model's fixture also holds `labels`
/// (n,) u8: its logits and `nll` are given those classes; and, if it has one, `marginal_nll` (n,),
/// which the model's own NLL (the marginal over classes) is compared with too (`max_rel_nll` is
/// the larger of the two).
pub fn compare_with_reference(model: &dyn PixelModel, fixture: &Path) -> candle_core::Result<ReferenceDiff> {
    let t = candle_core::safetensors::load(fixture, &Device::Cpu)?;
    let get = |k: &str| {
        t.get(k).cloned().ok_or_else(|| candle_core::Error::Msg(format!("{}: no tensor '{k}'", fixture.display())))
    };
    let (input, want_logits, want_nll) = (get("input")?, get("logits")?.to_dtype(DType::F64)?, get("nll")?);
    let x = input.to_device(model.device())?;
    let to_f64 = |t: Tensor| t.to_device(&Device::Cpu)?.to_dtype(DType::F64);
    let (logits, nll) = match t.get("labels") {
        None => (to_f64(model.logits(&x)?)?, to_f64(model.nll(&x)?)?),
        Some(labels) => {
            let conditional = model.class_conditional().ok_or_else(|| {
                candle_core::Error::Msg(format!("{}: labels for a model without classes", fixture.display()))
            })?;
            let classes: Vec<usize> = labels.to_vec1::<u8>()?.into_iter().map(usize::from).collect();
            (
                to_f64(conditional.logits_given_classes(&x, &classes)?)?,
                to_f64(conditional.nll_given_classes(&x, &classes)?)?,
            )
        }
    };
    let (m, _, _, rows, _) = want_logits.dims5()?;
    let diff = (logits.i((0..m, .., .., 0..rows, ..))? - &want_logits)?.abs()?;
    let scale = want_logits.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?.max(1.0);
    let max_abs_logit = diff.flatten_all()?.max(0)?.to_scalar::<f64>()?;
    let max_rel_logit = max_abs_logit / scale;
    let rel = |got: &[f64], want: &Tensor| -> candle_core::Result<f64> {
        let want = want.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        Ok(got.iter().zip(&want).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0f64, f64::max))
    };
    let mut max_rel_nll = rel(&nll.to_vec1::<f64>()?, &want_nll)?;
    if let Some(want_marginal) = t.get("marginal_nll") {
        let marginal = to_f64(model.nll(&x)?)?.to_vec1::<f64>()?;
        max_rel_nll = max_rel_nll.max(rel(&marginal, want_marginal)?);
    }
    Ok(ReferenceDiff { max_abs_logit, max_rel_logit, max_rel_nll })
}

/// The workspace's root directory (where `weights/` and `tests/` are); `../shared` sits beside it.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub mod data_search;

/// The data directory if it holds `mnist/` and `cifar10/`: `$PIXEL_ZOO_DATA`, else the zoo's data
/// cache once `zoo data fetch mnist` and `zoo data fetch cifar10` filled it, else `../shared/data`
/// beside the workspace (this project's development machines); see [`needed`] for what happens when
/// none does.
pub fn data_dir() -> Option<PathBuf> {
    let (d, present) = data_search::find_data_dir(&workspace_root());
    needed(
        d,
        present,
        "no data directory (set PIXEL_ZOO_DATA, or run `zoo data fetch mnist` and `zoo data fetch cifar10`)",
    )
}

/// The third-party checkpoint in `../shared/third_party` if it is there; see [`needed`].
pub fn third_party_checkpoint() -> Option<PathBuf> {
    let (p, present) = data_search::find_third_party_checkpoint(&workspace_root());
    needed(p, present, "the third-party checkpoint is not there")
}

/// An input from outside the repository that a test needs: `Some(path)` if `present`.
///
/// If not: under CI (`CI=true`, where `../shared` is always beside the clone) the test fails, so a
/// missing input can never pass silently. Elsewhere the reason is printed and the caller returns.
///
/// Such a test must also say that it is data-dependent, because libtest cannot skip a test at run
/// time (a test that returns early reports "ok"): it carries
/// `#[cfg_attr(no_test_data, ignore = "...")]` (or `no_third_party_checkpoint` for the
/// checkpoint). The build script of its package (`build.rs`, which includes this module's
/// `data_search.rs`) sets that cfg when the input is absent and `CI` is not set, so `cargo test`
/// reports the test as ignored, with the reason, instead of "ok"; under CI it is never set, and
/// the test runs and fails here. The cfg is decided when the tests are compiled: the build script
/// runs again when one of the variables the search reads changes, not when data appears later
/// under the same settings (`cargo clean -p <package>`, or `touch build.rs`, then redoes it).
pub fn needed(path: PathBuf, present: bool, why: &str) -> Option<PathBuf> {
    if present {
        return Some(path);
    }
    if data_search::under_ci() {
        panic!("{}: {why}; CI must have it (../shared beside the clone)", path.display());
    }
    eprintln!("skipped: {}: {why}", path.display());
    None
}

/// The test suite every architecture runs on its random-weight reference models (fixtures of
/// `reference/pixelzoo_ref/fixtures.py`), as `#[test]` functions:
/// causality, normalisation (f32, and f64 at a size as small as the architecture allows, since it
/// costs twice the time per image; by enumerating every binary image, so `normalised` is for
/// Bernoulli models and optional: an 8-bit model checks its normalisation in its own tests),
/// reference logits (f64 and f32), the naive step and the
/// cached session equal to the full pass, the same images by either path and for any thread count.
///
/// Two shorter forms: `network: ("row-lstm", Config, RowLstm),` in place of `model` and `fixtures`
/// also defines that `random_model` ([`random_model`] of the crate's `Config` and `RowLstm::new`,
/// for the crate's other tests too); and without `causal`, `normalised` and `reference` the suite
/// checks the pair of fixtures most architectures have, `rgb` and `binary`: causality of both (seeds
/// 1, 2, 3 and 4, 5, 6), normalisation of `binary` (f32 4×4, f64 3×4) and the reference logits of
/// both.
///
/// ```ignore
/// pixel_ops::model_tests! {
///     model: random_model,              // fn(name: &str, size: Option<(usize, usize)>, DType) -> anyhow::Result<M>
///     fixtures: "row-lstm",             // tests/fixtures/row-lstm-random-{name}.logits.safetensors
///     causal: [("rgb", [1, 2, 3]), ("binary", [4, 5, 6])],
///     normalised: ("binary", f32: (4, 4), f64: (3, 4)), // sizes small enough to sum p over every image
///     reference: ["rgb", "binary"],
///     naive_step: ("rgb", (9, 7)),
///     sessions: [("rgb", (7, 6)), ("binary", (6, 5))],
/// }
/// ```
#[macro_export]
macro_rules! model_tests {
    (
        model: $model:path,
        fixtures: $prefix:literal,
        causal: [$(($causal:literal, $seeds:expr)),* $(,)?],
        $(normalised: ($normalised:literal, f32: $tiny:expr, f64: $tiny_exact:expr),)?
        reference: [$($reference:literal),* $(,)?],
        naive_step: ($naive:literal, $naive_size:expr),
        sessions: [$(($session:literal, $session_size:expr)),* $(,)?] $(,)?
    ) => {
        #[test]
        fn random_models_are_causal() -> anyhow::Result<()> {
            $(
                let v = $crate::testing::causality_violations(&$model($causal, None, candle_core::DType::F32)?, &$seeds)?;
                assert!(v.is_empty(), "{}: {} violations, first: {:?}", $causal, v.len(), &v[..v.len().min(5)]);
            )*
            Ok(())
        }

        $(
        #[test]
        fn binary_probabilities_of_all_images_of_a_tiny_size_sum_to_one() -> anyhow::Result<()> {
            let exact =
                $crate::testing::total_probability_binary(&$model($normalised, Some($tiny_exact), candle_core::DType::F64)?)?;
            assert!((exact - 1.0).abs() < 1e-9, "float64: Σ p(x) over every image = {exact}");
            let total = $crate::testing::total_probability_binary(&$model($normalised, Some($tiny), candle_core::DType::F32)?)?;
            assert!((total - 1.0).abs() < 1e-5, "float32: Σ p(x) over every image = {total}");
            Ok(())
        }
        )?

        #[test]
        fn logits_match_the_pytorch_reference() -> anyhow::Result<()> {
            let fixtures = $crate::testing::workspace_root().join("tests/fixtures");
            for name in [$($reference),*] {
                let fixture = fixtures.join(format!("{}-random-{name}.logits.safetensors", $prefix));
                // In float64 both implementations compute the exact values of the same weights.
                let d = $crate::testing::compare_with_reference(&$model(name, None, candle_core::DType::F64)?, &fixture)?;
                assert!(d.max_abs_logit < 1e-4, "{name} f64: max |Δlogit| = {}", d.max_abs_logit);
                assert!(d.max_rel_nll < 1e-9, "{name} f64: max relative |ΔNLL| = {}", d.max_rel_nll);
                // In float32 (what the zoo runs) rounding alone separates them.
                let d = $crate::testing::compare_with_reference(&$model(name, None, candle_core::DType::F32)?, &fixture)?;
                assert!(d.max_rel_logit < 1e-5, "{name} f32: max |Δlogit| / scale = {}", d.max_rel_logit);
                assert!(d.max_rel_nll < 1e-5, "{name} f32: max relative |ΔNLL| = {}", d.max_rel_nll);
            }
            Ok(())
        }

        #[test]
        fn the_naive_sampling_step_equals_the_full_pass() -> anyhow::Result<()> {
            let worst = $crate::testing::step_mismatch(&$model($naive, Some($naive_size), candle_core::DType::F64)?, false)?;
            assert!(worst < 1e-9, "step_logits vs full pass: max |Δlogit| = {worst}");
            Ok(())
        }

        #[test]
        fn the_cached_session_equals_the_full_pass_and_samples_the_same_images() -> anyhow::Result<()> {
            $(
                let (name, size) = ($session, Some($session_size));
                // In float64 both paths compute the same values up to rounding far below the tolerance.
                let worst = $crate::testing::step_mismatch(&$model(name, size, candle_core::DType::F64)?, true)?;
                assert!(worst < 1e-9, "{name}: cached session vs full pass, max |Δlogit| = {worst}");
                // The sampler, in float32 as the zoo runs: the same images either way.
                let (cached, naive) = $crate::testing::cached_and_naive_samples(&$model(name, size, candle_core::DType::F32)?, 11)?;
                assert_eq!(cached, naive, "{name}: the cached sampler drew other images");
            )*
            Ok(())
        }

        #[test]
        fn the_images_do_not_depend_on_the_number_of_sampling_threads() -> anyhow::Result<()> {
            use $crate::sampler::{sample, SampleOptions};
            let model = $model($naive, None, candle_core::DType::F32)?;
            let draw = |threads| -> anyhow::Result<Vec<u8>> {
                let opts = SampleOptions { count: 5, seed: 3, threads, ..Default::default() };
                Ok(sample(&model, &opts, &mut |_, _| {})?.images.flatten_all()?.to_vec1::<u8>()?)
            };
            let one = draw(1)?;
            assert_eq!(one, draw(2)?, "2 threads");
            assert_eq!(one, draw(3)?, "3 threads");
            Ok(())
        }
    };
    (network: ($prefix:literal, $Config:ty, $Network:ident), $($rest:tt)*) => {
        /// The random-weight reference model `name` of `tests/fixtures`, optionally at another image
        /// size ([`pixel_ops::testing::random_model`]).
        fn random_model(name: &str, size: Option<(usize, usize)>, dtype: candle_core::DType) -> anyhow::Result<$Network> {
            Ok($crate::testing::random_model($prefix, name, size, dtype, |c: &mut $Config| &mut c.image, $Network::new)?)
        }

        $crate::model_tests! { model: random_model, fixtures: $prefix, $($rest)* }
    };
    (model: $model:path, fixtures: $prefix:literal, naive_step: $($rest:tt)*) => {
        $crate::model_tests! {
            model: $model,
            fixtures: $prefix,
            causal: [("rgb", [1, 2, 3]), ("binary", [4, 5, 6])],
            normalised: ("binary", f32: (4, 4), f64: (3, 4)),
            reference: ["rgb", "binary"],
            naive_step: $($rest)*
        }
    };
}

/// The random-weight reference model `{prefix}-random-{name}.safetensors` of `tests/fixtures` with
/// config type `C` (optionally at another image size, for architectures whose weights do not depend
/// on it) and its weights, for [`model_tests!`]'s `model` function.
pub fn random_fixture<C: serde::de::DeserializeOwned>(prefix: &str, name: &str) -> candle_core::Result<(C, Vec<u8>)> {
    weights_with_config(&workspace_root().join(format!("tests/fixtures/{prefix}-random-{name}.safetensors")))
}

/// The random-weight reference model `name` of architecture `prefix` (its config and weights from
/// [`random_fixture`]), optionally at another image `size` `(height, width)`, in `dtype` on the CPU:
/// `image` reaches the config's image fields, `build` makes the network (the crate's `new`). What
/// every architecture's [`model_tests!`] takes as its `model`.
pub fn random_model<C, M>(
    prefix: &str,
    name: &str,
    size: Option<(usize, usize)>,
    dtype: candle_core::DType,
    image: impl Fn(&mut C) -> &mut crate::ImageSpec,
    build: impl Fn(&C, candle_nn::VarBuilder) -> candle_core::Result<M>,
) -> candle_core::Result<M>
where
    C: serde::de::DeserializeOwned,
{
    let (mut cfg, bytes): (C, _) = random_fixture(prefix, name)?;
    if let Some((h, w)) = size {
        let spec = image(&mut cfg);
        (spec.height, spec.width) = (h, w);
    }
    build(&cfg, candle_nn::VarBuilder::from_buffered_safetensors(bytes, dtype, &candle_core::Device::Cpu)?)
}
