//! The MNIST IDX image reader on arbitrary bytes: an error or images whose size matches the header.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pixel_data::datasets::{binarize_static, parse_idx_images, threshold};

fuzz_target!(|data: &[u8]| {
    if let Ok(images) = parse_idx_images(data, Path::new("fuzz.idx")) {
        assert_eq!(images.pixels.len(), images.n * images.channels * images.height * images.width);
        assert_eq!(images.pixels.len() + 16, data.len());
        assert_eq!(binarize_static(&images.pixels, 2017).len(), images.pixels.len());
        assert_eq!(threshold(&images.pixels).len(), images.pixels.len());
        if images.n > 0 {
            assert_eq!(images.image(images.n - 1).len(), images.height * images.width);
        }
    }
});
