//! `zoo sample` and `zoo complete` with a multi-scale model: each sample beside its small image,
//! which must be the sample's own pixels at even rows and columns.

use std::process::Command;

fn zoo(args: &[&str]) -> std::process::Output {
    let o = Command::new(env!("CARGO_BIN_EXE_zoo")).args(args).env("HF_HUB_OFFLINE", "1").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

#[test]
fn sample_shows_each_image_beside_its_small_image() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ms.png");
    zoo(&["sample", "multiscale-mnist", "-n", "2", "--seed", "3", "-o", out.to_str().unwrap()]);
    // 2 samples → 4 tiles (small, big, small, big) of 28×28 on one row, 2-pixel borders.
    let img = image::open(&out).unwrap().into_luma8();
    assert_eq!((img.width(), img.height()), (4 * 28 + 5 * 2, 32));
    let tile = |k: u32, x: u32, y: u32| img.get_pixel(2 + k * 30 + x, 2 + y)[0];
    for pair in 0..2 {
        let (small, big) = (2 * pair, 2 * pair + 1);
        for y in 0..28 {
            for x in 0..28 {
                assert_eq!(tile(small, x, y), tile(big, x / 2 * 2, y / 2 * 2), "sample {pair} at ({x},{y})");
            }
        }
        assert!((0..28).any(|y| (0..28).any(|x| tile(big, x, y) == 255)), "a blank sample");
    }
}

#[test]
fn complete_keeps_the_given_rows() {
    let dir = tempfile::tempdir().unwrap();
    let given = dir.path().join("given.png");
    let px: Vec<u8> = (0..28 * 28u32).map(|k| if (k / 28 + k % 28) % 5 == 0 { 255 } else { 0 }).collect();
    image::GrayImage::from_raw(28, 28, px.clone()).unwrap().save(&given).unwrap();
    let out = dir.path().join("c.png");
    zoo(&[
        "complete",
        "multiscale-mnist",
        "--image",
        given.to_str().unwrap(),
        "--keep-rows",
        "10",
        "-n",
        "2",
        "-o",
        out.to_str().unwrap(),
    ]);
    // original | occluded | 2 completions; the completions keep rows 0..10.
    let img = image::open(&out).unwrap().into_luma8();
    for k in 2..4 {
        for y in 0..10 {
            for x in 0..28 {
                assert_eq!(
                    img.get_pixel(2 + k * 30 + x, 2 + y)[0],
                    px[(y * 28 + x) as usize],
                    "completion {k} ({x},{y})"
                );
            }
        }
    }
}
