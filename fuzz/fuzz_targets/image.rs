//! Image loading for a model on arbitrary bytes (PNG, and WebP as the zoo binary is built), as a
//! binary 28x28 greyscale model and as a 32x32 RGB model would read them: an error, or exactly
//! c·h·w pixel values in range.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pixel_data::files::{decode_image, PixelFormat};

fuzz_target!(|data: &[u8]| {
    let specs = [
        PixelFormat { channels: 1, height: 28, width: 28, binary: true },
        PixelFormat { channels: 3, height: 32, width: 32, binary: false },
    ];
    for spec in specs {
        if let Ok(px) = decode_image(data, &spec, Path::new("fuzz.png")) {
            assert_eq!(px.len(), spec.dims());
            if spec.binary {
                assert!(px.iter().all(|&v| v <= 1));
            }
        }
    }
});
