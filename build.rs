//! Marks the tests that need inputs from outside the repository (the data sets, the third-party
//! checkpoint) as ignored when those are absent and `CI` is not set (`pixel_ops::testing::needed`
//! says why); the library itself does not depend on it.

#[allow(dead_code)]
mod data_search {
    include!("crates/pixel-ops/src/testing/data_search.rs");
}

fn main() {
    data_search::mark_tests(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
}
