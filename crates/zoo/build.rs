//! Marks the tests that need the data sets as ignored when those are absent and `CI` is not set
//! (`pixel_ops::testing::needed` says why).

#[allow(dead_code)]
mod data_search {
    include!("../pixel-ops/src/testing/data_search.rs");
}

fn main() {
    data_search::mark_tests(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
}
