//! Lossless compression (`pixel_zoo::compress`): bit-exact round trips of MNIST and CIFAR-10 test
//! images with every zoo model whose weights are here, and clear errors for a truncated or
//! corrupted file, the wrong model or weights, and a file that is not the zoo's.

#![cfg(feature = "compress")]

use std::path::Path;

use pixel_zoo::compress::{compress, decompress, read_header, CompressError, NamedImage};
use pixel_zoo::data::datasets::Dataset;
use pixel_zoo::{Device, LoadedModel, Zoo};

use pixel_zoo::ops::testing::data_dir;

/// The first `n` test images of the model's data set, named as files would be.
fn test_images(m: &LoadedModel, data: &Path, n: usize) -> Vec<NamedImage> {
    let images = Dataset::from_name(&m.entry.dataset).unwrap().load_test(data).unwrap();
    let d = m.spec().dims();
    (0..n)
        .map(|i| NamedImage { name: format!("test-{i}.png"), pixels: images.pixels[i * d..(i + 1) * d].to_vec() })
        .collect()
}

#[test]
#[cfg_attr(no_test_data, ignore = "needs the MNIST and CIFAR-10 data sets: set PIXEL_ZOO_DATA")]
fn every_model_round_trips_test_images_bit_exactly() {
    let Some(data) = data_dir() else { return };
    let zoo = Zoo::new().unwrap();
    let mut checked = Vec::new();
    for e in &zoo.manifest.models {
        if zoo.resolver.locate(e).is_none() {
            eprintln!("{}: weights not here (third-party, not imported): skipped", e.id);
            continue;
        }
        let m = zoo.load(&e.id, &Device::Cpu).unwrap();
        // 17 images: two coding groups (16 + 1), coded in two streams.
        let n = if m.spec().channels == 3 { 3 } else { 17 };
        let images = test_images(&m, &data, n);
        let file = compress(&m, &images, 2, &|_| {}).unwrap();
        let back = decompress(&m, &file, &|_| {}).unwrap();
        assert!(back == images, "{}: the decoded images differ", e.id);
        // Near the model's own cost: the code is within 2% (+ 64 bits per stream) of −log2 p(x) (it can
        // be slightly below: the quantised frequencies give the likeliest value a little extra).
        let (header, payload_at) = read_header(&file).unwrap();
        let code_bits = ((file.len() - payload_at) * 8) as f64;
        let x = pixel_zoo::Tensor::from_vec(
            images.iter().flat_map(|i| i.pixels.clone()).collect::<Vec<u8>>(),
            (n, m.spec().channels, m.spec().height, m.spec().width),
            &Device::Cpu,
        )
        .unwrap();
        let nll_bits: f64 = m.nll(&x).unwrap().to_vec1::<f32>().unwrap().iter().map(|&v| v as f64).sum::<f64>()
            / std::f64::consts::LN_2;
        let slack = 64.0 * header.streams.len() as f64;
        assert!(
            code_bits <= nll_bits * 1.02 + slack && code_bits >= nll_bits * 0.98,
            "{}: {code_bits} bits of code for {nll_bits:.1} bits of NLL",
            e.id
        );
        checked.push(e.id.clone());
    }
    for id in ["pixelcnn-mnist", "pixelcnn-cifar10", "row-lstm-cifar10", "diagonal-bilstm-mnist"] {
        assert!(checked.iter().any(|c| c == id), "{id} was not checked");
    }
}

#[test]
#[cfg_attr(no_test_data, ignore = "needs the MNIST and CIFAR-10 data sets: set PIXEL_ZOO_DATA")]
fn bad_files_give_clear_errors() {
    let Some(data) = data_dir() else { return };
    let zoo = Zoo::new().unwrap();
    let m = zoo.load("pixelcnn-mnist", &Device::Cpu).unwrap();
    let images = test_images(&m, &data, 3);
    let file = compress(&m, &images, 1, &|_| {}).unwrap();
    let err = |bytes: &[u8], model: &LoadedModel| decompress(model, bytes, &|_| {}).unwrap_err();

    // Truncated anywhere: header or code.
    for cut in [3, 10, file.len() / 2, file.len() - 1] {
        let e = err(&file[..cut], &m);
        assert!(matches!(e, CompressError::Truncated(_) | CompressError::NotAZooFile), "cut at {cut}: {e}");
    }
    assert!(err(&file[..file.len() - 1], &m).to_string().contains("truncated"));
    // A flipped bit in the code: decoded, but the checksum says so.
    let mut corrupt = file.clone();
    let last = corrupt.len() - 5;
    corrupt[last] ^= 0x10;
    let e = err(&corrupt, &m);
    assert!(matches!(e, CompressError::ChecksumMismatch { .. } | CompressError::Corrupt(_)), "{e}");
    // A flipped bit in the header: the header checksum.
    let mut corrupt = file.clone();
    corrupt[20] ^= 1;
    assert!(matches!(err(&corrupt, &m), CompressError::Corrupt(_)));
    // Not the zoo's file at all.
    let readme = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let e = err(&readme, &m);
    assert!(matches!(e, CompressError::NotAZooFile), "{e}");
    assert!(e.to_string().contains("not a pixel-zoo compressed file"));
    // Another model: refused before decoding.
    let other = zoo.load("row-lstm-mnist", &Device::Cpu).unwrap();
    let e = err(&file, &other);
    assert!(matches!(e, CompressError::WrongModel { .. }), "{e}");
    assert!(e.to_string().contains("decode it with 'pixelcnn-mnist'"), "{e}");
    // The same id with other weights: refused before decoding.
    let mut retrained = zoo.load("pixelcnn-mnist", &Device::Cpu).unwrap();
    retrained.weights_sha256 = "00".repeat(32);
    let e = err(&file, &retrained);
    assert!(matches!(e, CompressError::WeightsMismatch { .. }), "{e}");
    // Trailing bytes.
    let mut longer = file.clone();
    longer.extend_from_slice(&[0; 4]);
    assert!(matches!(err(&longer, &m), CompressError::Corrupt(_)));
}

#[test]
fn bad_images_are_refused_before_coding() {
    let zoo = Zoo::new().unwrap();
    let m = zoo.load("pixelcnn-mnist", &Device::Cpu).unwrap();
    let good = NamedImage { name: "a.png".into(), pixels: vec![0; 784] };
    let cases = [
        (vec![], "no images"),
        (vec![good.clone(), good.clone()], "two images are named 'a.png'"),
        (vec![NamedImage { name: "../a.png".into(), ..good.clone() }], "not a plain file name"),
        (vec![NamedImage { pixels: vec![0; 783], ..good.clone() }], "has 783 values"),
        (vec![NamedImage { pixels: vec![2; 784], ..good.clone() }], "has value 2"),
    ];
    for (images, want) in cases {
        let e = compress(&m, &images, 1, &|_| {}).unwrap_err().to_string();
        assert!(e.contains(want), "{want}: {e}");
    }
}
