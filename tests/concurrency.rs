//! Models shared between threads, and determinism: a loaded model is `Send + Sync`; sampling,
//! logits and NLL from one model on several threads at once give exactly what sequential calls
//! give; the same seed gives byte-identical PNGs on every run and for every thread count.

use std::sync::Arc;

use pixel_zoo::data::files::{grid, write_png};
use pixel_zoo::ops::sampler::Method;
use pixel_zoo::{Device, LoadedModel, PixelModel, SampleOptions, Tensor, Zoo};

fn send_sync<T: Send + Sync + ?Sized>() {}

#[test]
fn models_and_the_zoo_are_send_and_sync() {
    send_sync::<LoadedModel>();
    send_sync::<dyn PixelModel>();
    send_sync::<Zoo>();
    send_sync::<Arc<LoadedModel>>();
}

/// The shipped models each test runs on: every architecture, both heads.
const MODELS: [&str; 5] =
    ["pixelcnn-mnist", "row-lstm-mnist", "diagonal-bilstm-mnist", "multiscale-mnist", "pixelcnn-cifar10"];

fn load(id: &str) -> Arc<LoadedModel> {
    // As the README asks of programs that embed the zoo (candle otherwise re-reads the CPU
    // topology at every matrix product); set once, before the first product.
    static RAYON: std::sync::Once = std::sync::Once::new();
    RAYON.call_once(|| {
        if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            std::env::set_var("RAYON_NUM_THREADS", "1");
        }
    });
    Arc::new(Zoo::new().unwrap().load(id, &Device::Cpu).unwrap())
}

fn opts(seed: u64) -> SampleOptions {
    SampleOptions { count: 2, seed, temperature: 1.0, method: Method::Cached, threads: 1, ..Default::default() }
}

fn draw(m: &LoadedModel, o: &SampleOptions) -> Vec<u8> {
    pixel_zoo::sample(m.as_ref(), o, &mut |_, _| {}).unwrap().images.flatten_all().unwrap().to_vec1::<u8>().unwrap()
}

#[test]
fn one_model_used_on_several_threads_at_once_gives_what_sequential_calls_give() {
    for id in MODELS {
        let m = load(id);
        let s = m.spec();
        // Work for four threads: three samples and the logits and NLL of one batch.
        let jobs: Vec<SampleOptions> = (0..3).map(|k| opts(10 + k)).collect();
        let x = Tensor::from_vec(
            (0..2 * s.dims()).map(|k| (k * 7 % s.head.values()) as u8).collect::<Vec<u8>>(),
            (2, s.channels, s.height, s.width),
            &Device::Cpu,
        )
        .unwrap();
        let logits = |m: &LoadedModel| m.logits(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let nll = |m: &LoadedModel| m.nll(&x).unwrap().to_vec1::<f32>().unwrap();

        let sequential: Vec<Vec<u8>> = jobs.iter().map(|o| draw(&m, o)).collect();
        let (seq_logits, seq_nll) = (logits(&m), nll(&m));

        // Twice over, so that the calls overlap in different ways.
        for _ in 0..2 {
            std::thread::scope(|scope| {
                let handles: Vec<_> = jobs.iter().map(|o| scope.spawn(|| draw(&m, o))).collect();
                let l = scope.spawn(|| (logits(&m), nll(&m)));
                for (k, h) in handles.into_iter().enumerate() {
                    assert_eq!(h.join().unwrap(), sequential[k], "{id}: sample {k} differs when run concurrently");
                }
                let (cl, cn) = l.join().unwrap();
                assert!(cl == seq_logits, "{id}: logits differ when computed concurrently");
                assert!(cn == seq_nll, "{id}: NLL differs when computed concurrently");
            });
        }
        // The same model behind an Arc, moved into plain threads.
        let handles: Vec<_> = jobs
            .iter()
            .map(|o| {
                let (m, o) = (Arc::clone(&m), o.clone());
                std::thread::spawn(move || draw(&m, &o))
            })
            .collect();
        for (k, h) in handles.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), sequential[k], "{id}: sample {k} differs on a spawned thread");
        }
    }
}

#[test]
fn the_same_seed_gives_byte_identical_pngs_on_every_run_and_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    for id in MODELS {
        let m = load(id);
        let s = m.spec();
        let n = 5;
        let png = |threads: usize, run: usize| {
            let o = SampleOptions { count: n, seed: 2016, threads, ..Default::default() };
            let images = draw(&m, &o);
            let p = dir.path().join(format!("{id}-{threads}-{run}.png"));
            write_png(&grid(&images, n, &pixel_zoo::pixel_format(&s), 3, 2), &p).unwrap();
            std::fs::read(p).unwrap()
        };
        let first = png(1, 0);
        for (threads, run) in [(1, 1), (2, 0), (3, 0), (5, 0), (0, 0)] {
            assert!(png(threads, run) == first, "{id}: the PNG of {threads} thread(s), run {run}, differs");
        }
    }
}

/// A batch larger than one part ([`pixel_zoo::ops::sampler::PART_IMAGES`]) is sampled in waves of
/// parts; the images are those of any other split, and progress climbs once to the end.
#[test]
fn a_batch_sampled_in_waves_of_parts_gives_the_same_images() {
    let m = load("pixelcnn-mnist");
    let n = pixel_zoo::ops::sampler::PART_IMAGES + 6;
    let o = |threads: usize| SampleOptions { count: n, seed: 7, threads, ..Default::default() };
    let mut reports = Vec::new();
    let waves = pixel_zoo::sample((*m).as_ref(), &o(1), &mut |done, total| reports.push((done, total)))
        .unwrap()
        .images
        .flatten_all()
        .unwrap()
        .to_vec1::<u8>()
        .unwrap();
    assert_eq!(waves, draw(&m, &o(2)), "two waves of one part vs one wave of two parts");
    let (done, total) = *reports.last().unwrap();
    assert_eq!((done, total), (2 * 28, 2 * 28), "progress over both waves ends at its total");
    assert!(reports.windows(2).all(|r| r[0].0 <= r[1].0), "progress never goes back");
}

/// The cached session's logits of one image do not depend on the other images of its batch, to the
/// bit: the sampler splits a batch into parts, and a seed must draw the same images whatever the
/// split. (A matrix product whose rows round differently in a batch of another size breaks this: one
/// draw in many thousands falls on a boundary the last bit moves.) Every image is stepped through
/// in a batch of three and alone, its values given, and every step's logits compared.
#[test]
fn an_image_gets_the_same_session_logits_in_any_batch() {
    use pixel_zoo::ops::stepper::{step_through, Given};
    let mut models = MODELS.to_vec();
    models.extend(["row-lstm-cifar10", "diagonal-bilstm-cifar10", "multiscale-cifar10"]);
    for id in models {
        let m = load(id);
        let s = m.spec();
        let images: Vec<u8> = (0..3 * s.dims()).map(|k| ((k * 37 + k / 5) % s.head.values()) as u8).collect();
        let logits_of = |pixels: &[u8]| -> Vec<Vec<f32>> {
            let mut pixels = pixels.to_vec();
            let mut steps = Vec::new();
            step_through::<pixel_zoo::ops::Error>(
                (*m).as_ref(),
                Method::Cached,
                &mut pixels,
                Given::Nothing,
                |_, l, _| {
                    steps.push(l.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?);
                    Ok(())
                },
            )
            .unwrap();
            steps
        };
        let together = logits_of(&images);
        for (i, image) in images.chunks(s.dims()).enumerate() {
            let alone = logits_of(image);
            let levels = alone[0].len();
            for (step, (a, t)) in alone.iter().zip(&together).enumerate() {
                let t = &t[i * levels..(i + 1) * levels];
                assert!(
                    a.iter().zip(t).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{id}: image {i}'s logits at step {step} differ alone and in a batch of 3"
                );
            }
        }
    }
}
