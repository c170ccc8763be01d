//! The shipped models: every manifest entry's weights file is in `weights/` with the manifest's
//! sha256 and config, and its logits on the first test images match the PyTorch reference.

use std::path::Path;

use candle_core::DType;
use pixel_zoo::checksum::sha256_hex;
use pixel_zoo::data::datasets::Dataset;
use pixel_zoo::ops::testing::{compare_with_reference, data_dir};
use pixel_zoo::{Device, Manifest, Zoo};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The zoo of the manifest as it is on disk now (the library embeds the file as it was when it
/// was compiled), weights resolved as the library resolves them.
fn zoo() -> Zoo {
    let manifest = Manifest::from_file(&root().join("weights-manifest.toml")).unwrap();
    Zoo { manifest, resolver: pixel_zoo::weights::Resolver::from_env() }
}

#[test]
fn the_manifest_on_disk_parses_and_lists_the_shipped_models() {
    let ids: Vec<String> = zoo().manifest.models.iter().map(|e| e.id.clone()).collect();
    for arch in ["pixelcnn", "row-lstm", "diagonal-bilstm", "multiscale"] {
        for data in ["mnist", "cifar10"] {
            let id = format!("{arch}-{data}");
            assert!(ids.contains(&id), "weights-manifest.toml has no {id}: {ids:?}");
        }
    }
}

#[test]
fn hub_revisions_are_pinned_commits_or_absent_until_published() {
    let zoo = zoo();
    for e in zoo.manifest.models.iter().filter(|e| e.upstream.is_none()) {
        assert!(e.hf_repo.is_some(), "{}: the zoo's own models name their hub repository", e.id);
        match &e.hf_revision {
            // Published: one commit, never a branch or tag that can move.
            Some(rev) => assert!(
                rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{}: hf_revision '{rev}' is not a commit (40 lower-case hex digits)",
                e.id
            ),
            // Not yet published: the weights must ship in weights/.
            None => assert!(root().join("weights").join(&e.weights).is_file(), "{}", e.id),
        }
    }
}

#[test]
fn every_shipped_weights_file_has_the_manifest_sha256() {
    let zoo = zoo();
    // Third-party models are converted on the user's machine, not shipped (tests/third_party.rs).
    for e in zoo.manifest.models.iter().filter(|e| e.upstream.is_none()) {
        let path = root().join("weights").join(&e.weights);
        let bytes = std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        assert_eq!(sha256_hex(&bytes), e.sha256, "{}", e.id);
        assert!(bytes.len() < 8 << 20, "{}: {} bytes is too large for git", e.id, bytes.len());
    }
}

#[test]
fn shipped_models_match_the_pytorch_reference_on_their_first_test_images() {
    let zoo = zoo();
    for e in zoo.manifest.models.iter().filter(|e| e.upstream.is_none()) {
        let fixture = root().join(format!("tests/fixtures/{}.logits.safetensors", e.id));
        // float64: both implementations compute the exact values the shipped weights define.
        let exact = zoo.load_as(&e.id, &Device::Cpu, None, DType::F64).unwrap();
        let d = compare_with_reference(exact.as_ref(), &fixture).unwrap();
        eprintln!("{} float64 vs the reference: {d:?}", e.id);
        assert!(d.max_abs_logit < 1e-4, "{} f64: max |Δlogit| = {}", e.id, d.max_abs_logit);
        assert!(d.max_rel_nll < 1e-9, "{} f64: max relative |ΔNLL| = {}", e.id, d.max_rel_nll);
        // float32, what the zoo runs: CIFAR-10 logits reach |z| ≈ 160, where float32 rounding alone
        // is ~1e-4 (PyTorch's own float32 pass is 1.2e-4 from the float64 one), so the bound is relative.
        let model = zoo.load(&e.id, &Device::Cpu).unwrap();
        let d = compare_with_reference(model.as_ref(), &fixture).unwrap();
        eprintln!("{} float32 vs the reference: {d:?}", e.id);
        assert!(
            d.max_rel_logit < 1e-5,
            "{} f32: max |Δlogit| / max |z| = {} ({})",
            e.id,
            d.max_rel_logit,
            d.max_abs_logit
        );
        assert!(d.max_rel_nll < 1e-5, "{} f32: max relative |ΔNLL| = {}", e.id, d.max_rel_nll);
    }
}

#[test]
#[cfg_attr(no_test_data, ignore = "needs the MNIST and CIFAR-10 data sets: set PIXEL_ZOO_DATA")]
fn the_test_sets_are_read_exactly_as_the_reference_reads_them() {
    let Some(data) = data_dir() else { return };
    let zoo = zoo();
    for e in &zoo.manifest.models {
        let fixture = candle_core::safetensors::load(
            root().join(format!("tests/fixtures/{}.logits.safetensors", e.id)),
            &Device::Cpu,
        )
        .unwrap();
        let want = fixture["input"].flatten_all().unwrap().to_vec1::<u8>().unwrap();
        let images = Dataset::from_name(&e.dataset).unwrap().load_test(&data).unwrap();
        assert_eq!(
            &images.pixels[..want.len()],
            &want[..],
            "{}: the zoo's {} test images differ from the reference's",
            e.id,
            e.dataset
        );
    }
}
