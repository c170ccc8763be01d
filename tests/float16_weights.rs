//! Weights files that store float16: the zoo builds from them exactly the network of a float32
//! file holding the same (rounded) values, in the dtype asked for.

use std::path::{Path, PathBuf};

use half::f16;
use pixel_zoo::{Device, Tensor, Zoo};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped file of `id` rewritten with every value rounded to float16: as float16
/// (`as_f16`), or as float32 holding the rounded values.
fn rounded(id: &str, as_f16: bool, dir: &Path) -> PathBuf {
    let bytes = std::fs::read(root().join(format!("weights/{id}.safetensors"))).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), Dtype::F32, "{id}: {name}");
            let data = view.data().chunks_exact(4).flat_map(|b| {
                let h = f16::from_f32(f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                if as_f16 {
                    h.to_le_bytes().to_vec()
                } else {
                    h.to_f32().to_le_bytes().to_vec()
                }
            });
            (name, view.shape().to_vec(), data.collect())
        })
        .collect();
    let dtype = if as_f16 { Dtype::F16 } else { Dtype::F32 };
    let views = tensors.iter().map(|(n, s, d)| (n.clone(), TensorView::new(dtype, s.clone(), d).unwrap()));
    let path = dir.join(format!("{id}-{}.safetensors", if as_f16 { "f16" } else { "f32" }));
    std::fs::write(&path, safetensors::serialize(views, meta.metadata().clone()).unwrap()).unwrap();
    path
}

#[test]
fn float16_weights_build_the_network_of_their_values_in_float32() {
    let dir = tempfile::tempdir().unwrap();
    let zoo = Zoo::new().unwrap();
    for id in ["pixelcnn-mnist", "diagonal-bilstm-mnist", "multiscale-mnist"] {
        let (half, single) = (rounded(id, true, dir.path()), rounded(id, false, dir.path()));
        let size = |p: &Path| std::fs::metadata(p).unwrap().len();
        assert!(size(&half) * 10 < size(&single) * 6);
        let logits = |weights: Option<&Path>| -> Vec<f32> {
            let m = zoo.load_with(id, &Device::Cpu, weights).unwrap();
            let s = m.spec();
            let x: Vec<u8> = (0..2 * s.dims()).map(|k| ((k * 7 + k / 3) % s.head.values()) as u8).collect();
            let x = Tensor::from_vec(x, (2, s.channels, s.height, s.width), &Device::Cpu).unwrap();
            m.logits(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        let from_f16 = logits(Some(&half));
        assert_eq!(from_f16, logits(Some(&single)), "{id}");
        // The rounding changed the network (the test compares different weights), a little.
        let shipped = logits(None);
        let largest = shipped.iter().fold(0f32, |m, z| m.max(z.abs()));
        let moved = shipped.iter().zip(&from_f16).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(moved > 0.0 && moved < 1e-2 * largest, "{id}: max |Δlogit| {moved} of max |z| {largest}");
    }
}
