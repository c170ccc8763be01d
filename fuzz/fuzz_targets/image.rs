//! Image loading for a model on arbitrary bytes (PNG, and WebP as the zoo binary is built), as a
//! binary 28x28 greyscale model and as a 32x32 RGB model would read them: an error, or exactly
//! c·h·w pixel values in range.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pixel_data::files::decode_image;
use pixel_zoo::{Head, ImageSpec};

fuzz_target!(|data: &[u8]| {
    let specs = [
        ImageSpec { channels: 1, height: 28, width: 28, head: Head::Bernoulli },
        ImageSpec { channels: 3, height: 32, width: 32, head: Head::Softmax256 },
    ];
    for spec in specs {
        if let Ok(px) = decode_image(data, &spec, Path::new("fuzz.png")) {
            assert_eq!(px.len(), spec.dims());
            if spec.head == Head::Bernoulli {
                assert!(px.iter().all(|&v| v <= 1));
            }
        }
    }
});
