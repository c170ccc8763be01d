//! `zoo sample` and `zoo complete` with a multi-scale model: each sample beside its small image,
//! which must be the sample's own pixels at even rows and columns; `zoo upscale` (the input's
//! pixels exact in every output, the same seed the same grid, --images, --from-full, --gif);
//! `zoo eval`'s split of a multi-scale NLL; the GIF of `zoo sample --gif`.

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
        "--gif",
        dir.path().join("c.gif").to_str().unwrap(),
    ]);
    // original | occluded | 2 completions; the completions keep rows 0..10.
    let img = image::open(&out).unwrap().into_luma8();
    // The GIF: the original, the occluded image and the kept rows from the first frame, the other
    // 18 rows' 504 pixels a frame per 28 of them in the multi-scale order, the last frame the grid.
    let frames = gif_frames(&dir.path().join("c.gif"));
    assert_eq!(frames.len(), 1 + 504 / 28);
    for k in 0..4u32 {
        for y in 0..28 {
            for x in 0..28 {
                let (gx, gy) = (2 + k * 30 + x, 2 + y);
                let want = if k < 2 || y < 10 { img.get_pixel(gx, gy)[0] } else { 64 };
                assert_eq!(frames[0].get_pixel(gx, gy)[0], want, "frame 0, tile {k} at ({x},{y})");
                assert_eq!(frames[18].get_pixel(gx, gy)[0], img.get_pixel(gx, gy)[0], "the last frame");
            }
        }
    }
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

/// A 14×14 grey image with a pattern (values ≥ 128 read as 1 by the binary model).
fn small_mnist(path: &std::path::Path) -> Vec<u8> {
    let px: Vec<u8> = (0..14 * 14u32).map(|k| if (k / 14 * 3 + k % 14) % 4 == 0 { 255 } else { 0 }).collect();
    image::GrayImage::from_raw(14, 14, px.clone()).unwrap().save(path).unwrap();
    px
}

#[test]
fn upscale_keeps_the_input_pixels_in_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.png");
    let px = small_mnist(&small);
    let (out, ims, gif) = (dir.path().join("u.png"), dir.path().join("ims"), dir.path().join("u.gif"));
    let args = |out: &std::path::Path| {
        vec![
            "upscale".to_string(),
            "multiscale-mnist".into(),
            "--image".into(),
            small.to_str().unwrap().into(),
            "-n".into(),
            "3".into(),
            "--seed".into(),
            "5".into(),
            "-o".into(),
            out.to_str().unwrap().into(),
        ]
    };
    let mut first = args(&out);
    first.extend(["--images".into(), ims.to_str().unwrap().into(), "--gif".into(), gif.to_str().unwrap().into()]);
    zoo(&first.iter().map(String::as_str).collect::<Vec<_>>());
    // The input enlarged 2x, then 3 upscalings: 4 tiles of 28×28 on one row, 2-pixel borders.
    let img = image::open(&out).unwrap().into_luma8();
    assert_eq!((img.width(), img.height()), (4 * 28 + 5 * 2, 32));
    let tile = |k: u32, x: u32, y: u32| img.get_pixel(2 + k * 30 + x, 2 + y)[0];
    for y in 0..28 {
        for x in 0..28 {
            assert_eq!(tile(0, x, y), px[(y / 2 * 14 + x / 2) as usize], "the enlarged input at ({x},{y})");
        }
    }
    let mut upscalings = Vec::new();
    for k in 1..4 {
        let own = image::open(ims.join(format!("upscaled-{}.png", k - 1))).unwrap().into_luma8();
        let mut drawn = Vec::new();
        for y in 0..28 {
            for x in 0..28 {
                assert_eq!(own.get_pixel(x, y)[0], tile(k, x, y), "--images differs from the grid");
                if x % 2 == 0 && y % 2 == 0 {
                    assert_eq!(tile(k, x, y), px[(y / 2 * 14 + x / 2) as usize], "upscaling {k} at ({x},{y})");
                } else {
                    drawn.push(tile(k, x, y));
                }
            }
        }
        upscalings.push(drawn);
    }
    assert!(upscalings[0] != upscalings[1] || upscalings[1] != upscalings[2], "three identical upscalings");
    // The same seed: the same grid, to the byte.
    let again = dir.path().join("again.png");
    zoo(&args(&again).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap(), "the same seed, another grid");
    // The GIF: the input and the given pixels from the first frame, one frame per row's worth of
    // the 588 other pixels, the last frame the grid.
    let frames = gif_frames(&gif);
    assert_eq!(frames.len(), 1 + 588 / 28);
    let at = |f: &image::RgbaImage, k: u32, x: u32, y: u32| f.get_pixel(2 + k * 30 + x, 2 + y)[0];
    for k in 0..4 {
        for y in 0..28 {
            for x in 0..28 {
                let given = k == 0 || (x % 2 == 0 && y % 2 == 0);
                let want = if given { tile(k, x, y) } else { 64 };
                assert_eq!(at(&frames[0], k, x, y), want, "frame 0 at ({k},{x},{y})");
                assert_eq!(at(frames.last().unwrap(), k, x, y), tile(k, x, y), "the last frame at ({k},{x},{y})");
            }
        }
    }
}

/// The frames of an animated GIF as RGBA images.
fn gif_frames(path: &std::path::Path) -> Vec<image::RgbaImage> {
    use image::AnimationDecoder;
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let decoder = image::codecs::gif::GifDecoder::new(file).unwrap();
    decoder.into_frames().collect_frames().unwrap().into_iter().map(|f| f.into_buffer()).collect()
}

#[test]
fn upscale_from_full_ends_each_row_with_the_original_and_prints_its_nll() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.png");
    let px: Vec<u8> = (0..28 * 28u32).map(|k| if (k / 28 + 2 * (k % 28)) % 7 < 2 { 255 } else { 0 }).collect();
    image::GrayImage::from_raw(28, 28, px.clone()).unwrap().save(&full).unwrap();
    let out = dir.path().join("u.png");
    let f = full.to_str().unwrap();
    let o = zoo(&["upscale", "multiscale-mnist", "--from-full", f, f, "-n", "2", "-o", out.to_str().unwrap()]);
    // Two rows: the input enlarged, 2 upscalings, the original.
    let img = image::open(&out).unwrap().into_luma8();
    assert_eq!((img.width(), img.height()), (4 * 28 + 5 * 2, 2 * 28 + 3 * 2));
    for row in 0..2 {
        let tile = |k: u32, x: u32, y: u32| img.get_pixel(2 + k * 30 + x, 2 + row * 30 + y)[0];
        for y in 0..28 {
            for x in 0..28 {
                assert_eq!(tile(3, x, y), px[(y * 28 + x) as usize], "the original at ({x},{y})");
                assert_eq!(tile(0, x, y), px[(y / 2 * 2 * 28 + x / 2 * 2) as usize], "the input at ({x},{y})");
                for k in 1..3 {
                    if x % 2 == 0 && y % 2 == 0 {
                        assert_eq!(tile(k, x, y), px[(y * 28 + x) as usize], "upscaling {k} at ({x},{y})");
                    }
                }
            }
        }
    }
    // One line per original: its upscaling NLL and its small image's, each over its own values.
    let stdout = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0], lines[1], "the same image, another NLL");
    assert!(lines[0].contains("over 588 values") && lines[0].contains("over 196 values"), "{stdout}");
}

#[test]
#[cfg_attr(no_test_data, ignore = "needs the MNIST and CIFAR-10 data sets: set PIXEL_ZOO_DATA")]
fn eval_splits_a_multi_scale_models_nll_into_the_small_image_and_the_upscaling() {
    let Some(data) = pixel_ops::testing::data_dir() else { return };
    let o = zoo(&["eval", "multiscale-mnist", "--data-dir", data.to_str().unwrap(), "--limit", "20", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let (total, small, up) =
        (&v["nll_nats_per_image"], &v["small_image"]["nll_nats_per_image"], &v["upscaling"]["nll_nats_per_image"]);
    let (total, small, up) = (total.as_f64().unwrap(), small.as_f64().unwrap(), up.as_f64().unwrap());
    assert!((small + up - total).abs() < 1e-6 * total, "{small} + {up} vs {total}");
    assert!(small > 0.0 && up > 0.0, "{v}");
    assert_eq!((v["small_image"]["values"].as_u64(), v["upscaling"]["values"].as_u64()), (Some(196), Some(588)));
    let human = zoo(&["eval", "multiscale-mnist", "--data-dir", data.to_str().unwrap(), "--limit", "2"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("small image x[::2, ::2]") && text.contains("upscaling p(x | x[::2, ::2])"), "{text}");
}

#[test]
fn sample_gif_fills_in_in_the_models_order() {
    let dir = tempfile::tempdir().unwrap();
    let (png, gif) = (dir.path().join("s.png"), dir.path().join("s.gif"));
    zoo(&[
        "sample",
        "pixelcnn-mnist",
        "-n",
        "2",
        "--seed",
        "3",
        "-o",
        png.to_str().unwrap(),
        "--gif",
        gif.to_str().unwrap(),
    ]);
    let grid = image::open(&png).unwrap().into_luma8();
    let frames = gif_frames(&gif);
    // Raster order: a frame per row, plus the first (nothing drawn yet).
    assert_eq!(frames.len(), 29);
    for (k, frame) in frames.iter().enumerate() {
        assert_eq!((frame.width(), frame.height()), grid.dimensions());
        for t in 0..2u32 {
            for y in 0..28 {
                for x in 0..28 {
                    let (gx, gy) = (2 + t * 30 + x, 2 + y);
                    let want = if (y as usize) < k { grid.get_pixel(gx, gy)[0] } else { 64 };
                    assert_eq!(frame.get_pixel(gx, gy)[0], want, "frame {k}, image {t} at ({x},{y})");
                }
            }
        }
    }
}
