//! MNIST and CIFAR-10 from their official archives into the zoo's data cache (`zoo data fetch`;
//! feature `hub`), with the checks torchvision makes and the zoo's download rules.
//!
//! - Sources: MNIST's four IDX `.gz` files, each tried on torchvision's mirrors in torchvision's
//!   order ([`MNIST_MIRRORS`]); CIFAR-10's binary version, `cifar-10-binary.tar.gz`, from its
//!   authors' page. Each file's MD5 must be the published one (torchvision's lists for MNIST, the
//!   CIFAR-10 page for the archive); its sha256 is recorded beside the data (`fetched.json`).
//! - Rules: every GET is retried after server errors, failed connections and bodies cut short
//!   ([`crate::download`]); a file whose MD5 is wrong is refused (the next mirror is tried). All
//!   downloads and the unpacked files go to a temporary folder inside the cache; the data set's
//!   folder (`mnist/`, `cifar10/`) is renamed into place only after every file matched its MD5 and
//!   unpacked into files the zoo's readers accept. A failure leaves nothing behind.
//! - Layout: `<data cache>/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte` and
//!   `<data cache>/cifar10/{data_batch_1..5,test_batch}.bin` (raw, as the readers take them), with
//!   `fetched.json`. The data cache is [`pixel_data::datasets::data_cache_dir`]; it is a data
//!   directory like any other, and the commands that read data look there last.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use pixel_data::datasets::{parse_cifar, parse_idx_images};
use serde::Serialize;

use crate::download::{http_download, Downloaded, Get};
use crate::error::ZooError;

/// MNIST's mirrors, in the order torchvision tries them (`torchvision/datasets/mnist.py`,
/// `MNIST.mirrors`): Yann LeCun's page, then PyTorch's copy on S3.
pub const MNIST_MIRRORS: [&str; 2] =
    ["http://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/"];

/// MNIST's files and their MD5s (torchvision's `MNIST.resources`), in torchvision's order.
pub const MNIST_FILES: [(&str, &str); 4] = [
    ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
];

/// Where CIFAR-10 is published (https://www.cs.toronto.edu/~kriz/cifar.html).
pub const CIFAR10_MIRROR: &str = "https://www.cs.toronto.edu/~kriz/";

/// CIFAR-10's binary version and the MD5 its page lists.
pub const CIFAR10_FILE: (&str, &str) = ("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530");

/// The batches the CIFAR-10 binary archive holds (under `cifar-10-batches-bin/`), all required.
pub const CIFAR10_BATCHES: [&str; 6] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
    "test_batch.bin",
];

/// The record written beside the unpacked files.
pub const RECORD: &str = "fetched.json";

/// No file of these data sets inflates to anything near this; one that does is not theirs.
const MAX_INFLATED: u64 = 1 << 30;

/// How a data set's downloaded files become the files the zoo reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unpack {
    /// Each file is a gzip-compressed IDX file (`X.gz` → `X`), checked by its IDX header.
    IdxGz,
    /// One gzip-compressed tar holding [`CIFAR10_BATCHES`] under `cifar-10-batches-bin/`.
    Cifar10BinaryTarGz,
}

/// A file to download and the MD5 it must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    pub name: String,
    /// Hex MD5, lower case.
    pub md5: String,
}

/// A data set's archives: where they are, what they must hash to, how they unpack.
/// [`DataSource::official`] gives the published ones; a test or a private mirror builds its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSource {
    /// `mnist` or `cifar10`: the folder in the data cache.
    pub name: String,
    /// Base URLs, each ending in `/`, tried in order for every file (its name is appended).
    pub mirrors: Vec<String>,
    pub files: Vec<RemoteFile>,
    pub unpack: Unpack,
}

impl DataSource {
    /// The published archives of `mnist` or `cifar10`.
    pub fn official(name: &str) -> Option<Self> {
        let files = |list: &[(&str, &str)]| {
            list.iter().map(|(n, m)| RemoteFile { name: n.to_string(), md5: m.to_string() }).collect()
        };
        match name {
            "mnist" => Some(Self {
                name: name.into(),
                mirrors: MNIST_MIRRORS.iter().map(|m| m.to_string()).collect(),
                files: files(&MNIST_FILES),
                unpack: Unpack::IdxGz,
            }),
            "cifar10" => Some(Self {
                name: name.into(),
                mirrors: vec![CIFAR10_MIRROR.into()],
                files: files(&[CIFAR10_FILE]),
                unpack: Unpack::Cifar10BinaryTarGz,
            }),
            _ => None,
        }
    }

    /// The same files, from the one mirror `base` instead (`base` + file name; a `/` is added if
    /// missing). The MD5s stay the published ones.
    pub fn with_mirror(mut self, base: &str) -> Self {
        let base = if base.ends_with('/') { base.to_string() } else { format!("{base}/") };
        self.mirrors = vec![base];
        self
    }

    /// The files the zoo reads once this data set is unpacked (in its folder).
    pub fn unpacked_files(&self) -> Vec<String> {
        match self.unpack {
            Unpack::IdxGz => {
                self.files.iter().map(|f| f.name.strip_suffix(".gz").unwrap_or(&f.name).to_string()).collect()
            }
            Unpack::Cifar10BinaryTarGz => CIFAR10_BATCHES.iter().map(|b| b.to_string()).collect(),
        }
    }

    /// Whether `data_cache` holds this data set as [`fetch`] leaves it (the record and every file).
    pub fn is_fetched(&self, data_cache: &Path) -> bool {
        let dir = data_cache.join(&self.name);
        dir.join(RECORD).is_file() && self.unpacked_files().iter().all(|f| dir.join(f).is_file())
    }
}

/// One downloaded file as checked: what `fetched.json` records.
#[derive(Debug, Clone, Serialize)]
pub struct FetchedFile {
    pub name: String,
    pub url: String,
    pub bytes: u64,
    /// Hex MD5 (equal to the published one).
    pub md5: String,
    /// Hex sha256, recorded.
    pub sha256: String,
}

/// What [`fetch`] did: the data set's folder, the files downloaded and those unpacked.
#[derive(Debug, Clone, Serialize)]
pub struct FetchReport {
    pub dataset: String,
    pub dir: PathBuf,
    pub downloaded: Vec<FetchedFile>,
    pub unpacked: Vec<String>,
}

/// Downloads `source`'s files, checks their MD5s, unpacks them and renames the result into
/// `data_cache/<name>` (replacing what was there only once everything succeeded). Any failure
/// leaves `data_cache` as it was: no download, no unpacked file, no folder this call made.
pub fn fetch(source: &DataSource, data_cache: &Path, progress: bool) -> Result<FetchReport, ZooError> {
    let fail = |msg: String| ZooError::DataFetch { dataset: source.name.clone(), msg };
    if source.name.is_empty() || source.name.contains(['/', '\\']) || source.name.starts_with('.') {
        return Err(fail(format!("'{}' is not a data set folder name", source.name)));
    }
    // The folders this call creates, to remove on failure (only if still empty).
    let mut created = Vec::new();
    let mut p = data_cache.to_path_buf();
    while !p.exists() {
        created.push(p.clone());
        match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => p = parent.to_path_buf(),
            _ => break,
        }
    }
    std::fs::create_dir_all(data_cache).map_err(|source| ZooError::Io { path: data_cache.to_path_buf(), source })?;
    let result = fetch_into(source, data_cache, progress);
    if result.is_err() {
        for dir in &created {
            let _ = std::fs::remove_dir(dir);
        }
    }
    result
}

fn fetch_into(source: &DataSource, data_cache: &Path, progress: bool) -> Result<FetchReport, ZooError> {
    let fail = |msg: String| ZooError::DataFetch { dataset: source.name.clone(), msg };
    // Everything goes here first; dropping it removes whatever a failure left.
    let staging = tempfile::Builder::new()
        .prefix(&format!(".fetch-{}-", source.name))
        .tempdir_in(data_cache)
        .map_err(|source| ZooError::Io { path: data_cache.to_path_buf(), source })?;
    let mut downloaded = Vec::new();
    let mut files = Vec::new();
    for remote in &source.files {
        let (got, record) = download_checked(source, remote, staging.path(), progress)?;
        tracing::info!(file = %remote.name, url = %record.url, md5 = %record.md5, sha256 = %record.sha256, "checked");
        files.push((remote.name.clone(), got));
        downloaded.push(record);
    }
    let out = staging.path().join(&source.name);
    std::fs::create_dir(&out).map_err(|e| ZooError::Io { path: out.clone(), source: e })?;
    let unpacked = match source.unpack {
        Unpack::IdxGz => unpack_idx_gz(&files, &out).map_err(fail)?,
        Unpack::Cifar10BinaryTarGz => unpack_cifar10(&files, &out).map_err(fail)?,
    };
    drop(files); // the archives: not kept
    let report = FetchReport { dataset: source.name.clone(), dir: data_cache.join(&source.name), downloaded, unpacked };
    let record = serde_json::to_vec_pretty(&report).expect("serialisable");
    pixel_data::files::write_atomic(&out.join(RECORD), &record)?;
    // Into place: whatever was there moves into the staging folder (and goes with it).
    let target = &report.dir;
    let old = staging.path().join(".previous");
    let had_old = target.exists();
    if had_old {
        std::fs::rename(target, &old).map_err(|e| ZooError::Io { path: target.clone(), source: e })?;
    }
    if let Err(e) = std::fs::rename(&out, target) {
        if had_old {
            let _ = std::fs::rename(&old, target);
        }
        return Err(ZooError::Io { path: target.clone(), source: e });
    }
    tracing::info!(dir = %target.display(), "fetched {}", source.name);
    Ok(report)
}

/// Downloads `remote` from the first mirror that serves it with the right MD5.
fn download_checked(
    source: &DataSource,
    remote: &RemoteFile,
    dir: &Path,
    progress: bool,
) -> Result<(Downloaded, FetchedFile), ZooError> {
    let mut failures = Vec::new();
    for mirror in &source.mirrors {
        let url = format!("{mirror}{}", remote.name);
        let get = Get {
            url: &url,
            dir,
            token: None,
            progress,
            not_found_hint: "the file is not there: check the mirror's URL (the file name is appended to it)",
            gave_up_hint: "check the network connection",
        };
        match http_download(&get) {
            Ok(got) if got.md5.eq_ignore_ascii_case(&remote.md5) => {
                let record = FetchedFile {
                    name: remote.name.clone(),
                    url: url.clone(),
                    bytes: got.size,
                    md5: got.md5.clone(),
                    sha256: got.sha256.clone(),
                };
                return Ok((got, record));
            }
            Ok(got) => {
                tracing::warn!(%url, md5 = %got.md5, expected = %remote.md5, "wrong MD5");
                failures.push(format!(
                    "{url}: the server sent {} bytes with MD5 {}, but the published MD5 of {} is {}: not the \
                     official file (a corrupt copy or another file)",
                    got.size, got.md5, remote.name, remote.md5
                ));
            }
            Err(e) => {
                tracing::warn!(%url, "{e}");
                failures.push(e.to_string());
            }
        }
    }
    let tried = if source.mirrors.len() == 1 { "" } else { " (every mirror tried, in order)" };
    Err(ZooError::DataFetch {
        dataset: source.name.clone(),
        msg: format!("{} could not be downloaded{tried}: {}; nothing was kept", remote.name, failures.join("; ")),
    })
}

/// Reads all of a gzip stream, refusing more than [`MAX_INFLATED`] bytes.
fn gunzip(path: &Path, name: &str) -> Result<Vec<u8>, String> {
    let f = File::open(path).map_err(|e| format!("{name}: {e}"))?;
    let mut out = Vec::new();
    GzDecoder::new(f)
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("{name} is not a valid gzip file ({e}): a corrupt archive; fetch it again"))?;
    if out.len() as u64 > MAX_INFLATED {
        return Err(format!("{name} inflates to more than 1 GiB: not a file of this data set"));
    }
    Ok(out)
}

/// `X.gz` → `out/X`, each an IDX file the zoo reads: images (magic 0x803) parse as 28×28 images,
/// labels (magic 0x801) hold as many bytes as their header says.
fn unpack_idx_gz(files: &[(String, Downloaded)], out: &Path) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for (name, got) in files {
        let raw = name.strip_suffix(".gz").unwrap_or(name);
        let bytes = gunzip(got.file.path(), name)?;
        let shown = Path::new(raw);
        let magic = bytes.get(..4).map(|m| u32::from_be_bytes([m[0], m[1], m[2], m[3]]));
        match magic {
            Some(0x0803) => {
                let images = parse_idx_images(&bytes, shown).map_err(|e| format!("{e}: a corrupt archive"))?;
                if (images.height, images.width) != (28, 28) {
                    return Err(format!("{raw} holds {}x{} images, not MNIST's 28x28", images.height, images.width));
                }
            }
            Some(0x0801) => {
                let n = bytes.get(4..8).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
                if n.map(|n| n + 8) != Some(bytes.len()) || bytes[8..].iter().any(|&l| l > 9) {
                    return Err(format!(
                        "{raw} is not a whole IDX label file (its header and length disagree, or a label is above \
                         9): a corrupt archive"
                    ));
                }
            }
            _ => {
                return Err(format!("{raw} is not an IDX image or label file (magic {magic:08x?}): a corrupt archive"))
            }
        }
        std::fs::write(out.join(raw), &bytes).map_err(|e| format!("{}: {e}", out.join(raw).display()))?;
        names.push(raw.to_string());
    }
    Ok(names)
}

/// The six batches of `cifar-10-binary.tar.gz` → `out/*.bin`, each whole CIFAR-10 records; other
/// members are skipped, and no member's path is used beyond its file name.
fn unpack_cifar10(files: &[(String, Downloaded)], out: &Path) -> Result<Vec<String>, String> {
    let [(name, got)] = files else {
        return Err(format!("expected one archive, got {}", files.len()));
    };
    let corrupt =
        |e: std::io::Error| format!("{name} is not a valid tar.gz archive ({e}): a corrupt archive; fetch it again");
    let f = File::open(got.file.path()).map_err(|e| format!("{name}: {e}"))?;
    let mut archive = tar::Archive::new(GzDecoder::new(f));
    let mut found = Vec::new();
    for entry in archive.entries().map_err(corrupt)? {
        let entry = entry.map_err(corrupt)?;
        let path = entry.path().map_err(corrupt)?.into_owned();
        let Some(file) = path.file_name().and_then(|f| f.to_str()).map(str::to_string) else { continue };
        let in_batches = path.parent().and_then(|p| p.file_name()).is_some_and(|p| p == "cifar-10-batches-bin");
        if !entry.header().entry_type().is_file() || !in_batches || !CIFAR10_BATCHES.contains(&file.as_str()) {
            continue;
        }
        let mut bytes = Vec::new();
        entry.take(MAX_INFLATED + 1).read_to_end(&mut bytes).map_err(corrupt)?;
        if bytes.len() as u64 > MAX_INFLATED {
            return Err(format!("{file} in {name} is more than 1 GiB: not a CIFAR-10 batch"));
        }
        parse_cifar(&bytes, Path::new(&file)).map_err(|e| format!("{e} (in {name}): a corrupt archive"))?;
        std::fs::write(out.join(&file), &bytes).map_err(|e| format!("{}: {e}", out.join(&file).display()))?;
        if !found.contains(&file) {
            found.push(file);
        }
    }
    let missing: Vec<&str> = CIFAR10_BATCHES.iter().copied().filter(|b| !found.iter().any(|f| f == b)).collect();
    if !missing.is_empty() {
        return Err(format!(
            "{name} lacks cifar-10-batches-bin/{}: a cut or corrupt archive, or not the CIFAR-10 binary version",
            missing.join(", cifar-10-batches-bin/")
        ));
    }
    Ok(CIFAR10_BATCHES.iter().map(|b| b.to_string()).collect())
}
