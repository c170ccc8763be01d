//! The weights manifest parser (TOML, then the zoo's checks) on arbitrary text: an error naming the
//! manifest, or a manifest whose ids are unique and whose entries can be looked up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pixel_zoo::{Manifest, ZooError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Manifest::parse(text, "fuzz.toml") {
        Ok(m) => {
            for e in &m.models {
                assert_eq!(m.get(&e.id).unwrap().id, e.id);
            }
            let _ = m.get("no-such-model");
        }
        Err(e) => {
            assert!(matches!(e, ZooError::Manifest { .. }), "{e}");
            assert!(e.to_string().starts_with("weights manifest fuzz.toml: "), "{e}");
        }
    }
});
