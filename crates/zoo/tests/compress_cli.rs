//! `zoo compress` / `zoo decompress` end to end: PNGs in, one file, the same PNGs out under their
//! names; a corrupt or foreign file is a clear error that leaves no output behind.

use std::path::Path;
use std::process::{Command, Output};

fn zoo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zoo"))
        .args(args)
        .env_remove("RUST_LOG")
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("run zoo")
}

fn fails(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "expected exit 1: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// A 28×28 binary image (0/255 grey) from a simple pattern.
fn write_binary_png(path: &Path, seed: u32) -> Vec<u8> {
    let px: Vec<u8> = (0..28 * 28u32).map(|k| if (k * 7 + seed * 13) % 11 < 4 { 255 } else { 0 }).collect();
    image::GrayImage::from_raw(28, 28, px.clone()).unwrap().save(path).unwrap();
    px
}

#[test]
fn compress_then_decompress_gives_the_same_pngs() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("first.png");
    let b = dir.path().join("second.png");
    let (pa, pb) = (write_binary_png(&a, 1), write_binary_png(&b, 2));
    let file = dir.path().join("two.pxz");
    let o =
        zoo(&["compress", "pixelcnn-mnist", a.to_str().unwrap(), b.to_str().unwrap(), "-o", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = dir.path().join("out");
    let o = zoo(&["decompress", file.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (name, want) in [("first.png", pa), ("second.png", pb)] {
        let got = image::open(out.join(name)).unwrap().to_luma8().into_raw();
        assert_eq!(got, want, "{name}");
    }
    // Corrupt: one bit of the code flipped. The error says so, and no directory is created.
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 4;
    let bad = dir.path().join("bad.pxz");
    std::fs::write(&bad, &bytes).unwrap();
    let out2 = dir.path().join("out2");
    let err = fails(&zoo(&["decompress", bad.to_str().unwrap(), "-o", out2.to_str().unwrap()]));
    assert!(err.contains("checksum") || err.contains("corrupt"), "{err}");
    assert!(!out2.exists(), "a failed decompression left {}", out2.display());
    // Truncated.
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let err = fails(&zoo(&["decompress", bad.to_str().unwrap(), "-o", out2.to_str().unwrap()]));
    assert!(err.contains("truncated"), "{err}");
    // Not a zoo file.
    let err = fails(&zoo(&["decompress", a.to_str().unwrap(), "-o", out2.to_str().unwrap()]));
    assert!(err.contains("not a pixel-zoo compressed file"), "{err}");
    assert!(!out2.exists());
    // An image the model cannot take: refused, no output file.
    let rgb = dir.path().join("rgb.png");
    image::RgbImage::new(28, 28).save(&rgb).unwrap();
    let file2 = dir.path().join("never.pxz");
    fails(&zoo(&["compress", "pixelcnn-mnist", rgb.to_str().unwrap(), "-o", file2.to_str().unwrap()]));
    assert!(!file2.exists());
    // Two inputs that would decompress to the same name.
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let c = dir.path().join("sub/first.png");
    image::GrayImage::new(28, 28).save(&c).unwrap();
    let err = fails(&zoo(&[
        "compress",
        "pixelcnn-mnist",
        a.to_str().unwrap(),
        c.to_str().unwrap(),
        "-o",
        file2.to_str().unwrap(),
    ]));
    assert!(err.contains("would both decompress to first.png"), "{err}");
}
