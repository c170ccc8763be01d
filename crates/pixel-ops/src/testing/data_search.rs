// Where the tests' inputs from outside the repository are looked for, with `std` only: the test
// helpers of `pixel_ops::testing` use it, and so do the build scripts of the packages whose tests
// need those inputs, which `include!` this file to mark the tests as ignored when an input is
// absent (see `pixel_ops::testing::needed`). Paths are written out in full, so that the file
// can be included anywhere.

// The zoo's cache rule, the library's own file (std only, so a build script can include it too);
// only the data cache is needed here.
#[allow(dead_code)]
mod cache_dirs {
    include!("../../../pixel-data/src/cache_dirs.rs");
}

/// The data directory the tests use and whether it holds `mnist/` and `cifar10/`:
/// `$PIXEL_ZOO_DATA`, else the zoo's data cache once `zoo data fetch mnist` and `zoo data fetch
/// cifar10` filled it, else `../shared/data` beside the workspace `root` (this project's
/// development machines).
pub fn find_data_dir(root: &std::path::Path) -> (std::path::PathBuf, bool) {
    let both = |d: &std::path::Path| d.join("mnist").is_dir() && d.join("cifar10").is_dir();
    let cache = cache_dirs::data_cache_dir();
    let d = match std::env::var_os("PIXEL_ZOO_DATA") {
        Some(d) => std::path::PathBuf::from(d),
        None if both(&cache) => cache,
        None => root.join("../shared/data"),
    };
    let present = both(&d);
    (d, present)
}

/// The third-party checkpoint the import tests convert, in `../shared/third_party` beside the
/// workspace `root`, and whether it is there.
pub fn find_third_party_checkpoint(root: &std::path::Path) -> (std::path::PathBuf, bool) {
    let p = root.join("../shared/third_party/taimir-pixel-rnn-lasagne/best_params.npz");
    let present = p.is_file();
    (p, present)
}

/// Whether the tests run under CI (`CI=true`), where every input must be there.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The environment variables [`find_data_dir`] and [`under_ci`] read.
pub const SEARCH_VARIABLES: [&str; 5] = ["PIXEL_ZOO_DATA", "PIXEL_ZOO_CACHE", "XDG_CACHE_HOME", "HOME", "CI"];

/// For a build script (`cargo:` lines on stdout): sets `cfg(no_test_data)` and
/// `cfg(no_third_party_checkpoint)` for the package's tests when those inputs are absent from the
/// workspace at `root` and `CI` is not set, and asks to be run again when a variable of the search
/// changes.
pub fn mark_tests(root: &std::path::Path) {
    for var in SEARCH_VARIABLES {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-check-cfg=cfg(no_test_data)");
    println!("cargo:rustc-check-cfg=cfg(no_third_party_checkpoint)");
    if under_ci() {
        return;
    }
    if !find_data_dir(root).1 {
        println!("cargo:rustc-cfg=no_test_data");
    }
    if !find_third_party_checkpoint(root).1 {
        println!("cargo:rustc-cfg=no_third_party_checkpoint");
    }
}
