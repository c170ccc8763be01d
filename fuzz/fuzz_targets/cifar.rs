//! The CIFAR-10 binary batch reader on arbitrary bytes: an error or whole 3073-byte records.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pixel_data::datasets::parse_cifar;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut images) = parse_cifar(data, Path::new("fuzz.bin")) {
        assert_eq!((images.channels, images.height, images.width), (3, 32, 32));
        assert_eq!(images.n * 3073, data.len());
        assert_eq!(images.pixels.len(), images.n * 3072);
        let n = images.n;
        images.truncate(n / 2);
        assert_eq!(images.pixels.len(), (n / 2) * 3072);
    }
});
