// The zoo's cache directories, with `std` only: the library uses this file as a module
// (`pixel_data::datasets` re-exports it), and the build scripts that mark the data-dependent tests
// `include!` it (through `pixel-ops/src/testing/data_search.rs`), so the rule is written once.

use std::path::PathBuf;

/// The environment variable naming the zoo's cache: converted weights directly in it, the data sets
/// that `zoo data fetch` unpacks under `data/`.
pub const CACHE_ENV: &str = "PIXEL_ZOO_CACHE";

/// The zoo's data cache, where `zoo data fetch` unpacks the data sets (`mnist/`, `cifar10/`):
/// `$PIXEL_ZOO_CACHE/data`, else `$XDG_CACHE_HOME/pixel-zoo/data`, else `~/.cache/pixel-zoo/data`.
pub fn data_cache_dir() -> PathBuf {
    env_dir(CACHE_ENV).unwrap_or_else(default_cache_dir).join("data")
}

/// The zoo's weights cache, where `zoo import` installs converted third-party weights:
/// `$PIXEL_ZOO_CACHE`, else `$XDG_CACHE_HOME/pixel-zoo/weights`, else `~/.cache/pixel-zoo/weights`.
pub fn weights_cache_dir() -> PathBuf {
    env_dir(CACHE_ENV).unwrap_or_else(|| default_cache_dir().join("weights"))
}

/// The zoo's cache without `$PIXEL_ZOO_CACHE`: `pixel-zoo` in `$XDG_CACHE_HOME`, else in
/// `~/.cache`, else in the temporary directory.
fn default_cache_dir() -> PathBuf {
    env_dir("XDG_CACHE_HOME")
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("pixel-zoo")
}

/// The directory an environment variable names, if it is set and not empty.
fn env_dir(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|c| !c.is_empty()).map(PathBuf::from)
}
