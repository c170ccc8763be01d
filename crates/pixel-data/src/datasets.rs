//! Data sets: MNIST IDX and CIFAR-10 binary batches, each read gzip-compressed (`.gz`) or raw.
//!
//! Binarized MNIST is a *static* binarization, reproducible bit for bit (and identical to the
//! PyTorch reference's `pixelzoo_ref.data`): pixel `k` of a file, `k = image·784 + row·28 + col`,
//! is 1 iff `u_k < intensity/255`, with `u_k` the 53 high bits of draw `k` of a counter-based
//! SplitMix64 stream, compared exactly in integers as `(z_k >> 11)·255 < intensity·2^53`, where
//! `z_k = mix(seed + (k+1)·0x9E3779B97F4A7C15)`. Seeds: [`SEED_TRAIN`] for the training file,
//! [`SEED_TEST`] for the test file. Each pixel is a Bernoulli draw with p = intensity/255, drawn
//! once and fixed, as in the paper's binarized MNIST. The thresholded variant is intensity ≥ 128.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use crate::error::{Error, Result};

/// Seed of the static binarization of `train-images-idx3-ubyte`.
pub const SEED_TRAIN: u64 = 2016;
/// Seed of the static binarization of `t10k-images-idx3-ubyte`.
pub const SEED_TEST: u64 = 2017;
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The environment variable naming the data directory.
pub const DATA_ENV: &str = "PIXEL_ZOO_DATA";

pub use crate::cache_dirs::{data_cache_dir, weights_cache_dir, CACHE_ENV};

/// Whether `path` or `path.gz` exists.
fn either_exists(path: &Path) -> bool {
    path.exists() || PathBuf::from(format!("{}.gz", path.display())).exists()
}

/// Images as bytes, row-major `(n, c, h, w)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    pub pixels: Vec<u8>,
    pub n: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl Images {
    /// The first `limit` images (all if `limit` is larger).
    pub fn truncate(&mut self, limit: usize) {
        self.n = self.n.min(limit);
        self.pixels.truncate(self.n * self.channels * self.height * self.width);
    }
    /// Image `i` as a `(c, h, w)` byte slice.
    pub fn image(&self, i: usize) -> &[u8] {
        let d = self.channels * self.height * self.width;
        &self.pixels[i * d..(i + 1) * d]
    }
}

/// Draw `k` (0-based) of the counter-based SplitMix64 stream with `seed`.
pub fn splitmix64(seed: u64, k: u64) -> u64 {
    let mut z = seed.wrapping_add((k + 1).wrapping_mul(GOLDEN));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The static binarization of 8-bit images (see the module docs); `pixels` in file order.
pub fn binarize_static(pixels: &[u8], seed: u64) -> Vec<u8> {
    pixels
        .iter()
        .enumerate()
        .map(|(k, &v)| u8::from((splitmix64(seed, k as u64) >> 11) * 255 < (v as u64) << 53))
        .collect()
}

/// Thresholding at half intensity: 1 iff value ≥ 128.
pub fn threshold(pixels: &[u8]) -> Vec<u8> {
    pixels.iter().map(|&v| u8::from(v >= 128)).collect()
}

/// Reads `path`, or `path.gz` decompressed, whichever exists; returns the bytes and which of the
/// two files it read (errors name that one).
fn read_either(path: &Path) -> Result<(Vec<u8>, PathBuf)> {
    let gz = PathBuf::from(format!("{}.gz", path.display()));
    let mut out = Vec::new();
    if path.exists() {
        File::open(path).and_then(|mut f| f.read_to_end(&mut out)).map_err(|e| Error::io(path, e))?;
        return Ok((out, path.to_path_buf()));
    } else if gz.exists() {
        let f = File::open(&gz).map_err(|e| Error::io(&gz, e))?;
        // No data set file is near this; a file that inflates beyond it is not one.
        const MAX_INFLATED: u64 = 1 << 30;
        GzDecoder::new(f).take(MAX_INFLATED + 1).read_to_end(&mut out).map_err(|e| {
            Error::bad_file(&gz, format!("not a valid gzip file ({e}): truncated or corrupt; download it again"))
        })?;
        if out.len() as u64 > MAX_INFLATED {
            return Err(Error::bad_file(&gz, "inflates to more than 1 GiB: not a data set file of the zoo"));
        }
    } else {
        return Err(Error::MissingData {
            msg: format!(
                "data file {} (or {}) not found; point the data directory ({DATA_ENV}) at a directory holding mnist/ and cifar10/",
                path.display(),
                gz.display()
            ),
        });
    }
    Ok((out, gz))
}

/// Parses an IDX file of u8 images (magic 0x00000803): `(n, 1, rows, cols)`.
pub fn parse_idx_images(bytes: &[u8], path: &Path) -> Result<Images> {
    if bytes.len() < 16 {
        return Err(Error::bad_file(
            path,
            format!("IDX file too short ({} bytes) for its 16-byte header", bytes.len()),
        ));
    }
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]) as usize;
    let magic = be(0);
    if magic != 0x0803 {
        return Err(Error::bad_file(
            path,
            format!(
                "not an IDX u8 image file: magic 0x{magic:08x}, expected 0x00000803; MNIST's image files \
                 (t10k-images-idx3-ubyte, gz or raw) have it"
            ),
        ));
    }
    let (n, rows, cols) = (be(4), be(8), be(12));
    if rows == 0 || cols == 0 || rows > 4096 || cols > 4096 {
        return Err(Error::bad_file(
            path,
            format!("implausible IDX image size {rows}x{cols}: a corrupt header, or not an image file"),
        ));
    }
    if n == 0 {
        return Err(Error::bad_file(path, "the IDX file holds no images"));
    }
    let need = n.checked_mul(rows * cols).and_then(|v| v.checked_add(16));
    if need != Some(bytes.len()) {
        return Err(Error::bad_file(
            path,
            format!(
                "IDX header says {n} images of {rows}x{cols} ({} bytes) but the file has {} bytes: truncated or \
                 corrupt; download it again",
                need.map_or("too many".into(), |v| v.to_string()),
                bytes.len()
            ),
        ));
    }
    Ok(Images { pixels: bytes[16..].to_vec(), n, channels: 1, height: rows, width: cols })
}

/// Parses an IDX file of u8 labels (magic 0x00000801, MNIST's `t10k-labels-idx1-ubyte`): one
/// label per image.
pub fn parse_idx_labels(bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
    if bytes.len() < 8 {
        return Err(Error::bad_file(path, format!("IDX file too short ({} bytes) for its 8-byte header", bytes.len())));
    }
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]) as usize;
    if be(0) != 0x0801 {
        return Err(Error::bad_file(
            path,
            format!(
                "not an IDX u8 label file: magic 0x{:08x}, expected 0x00000801; MNIST's label files \
                 (t10k-labels-idx1-ubyte, gz or raw) have it",
                be(0)
            ),
        ));
    }
    let n = be(4);
    if bytes.len() - 8 != n {
        return Err(Error::bad_file(
            path,
            format!(
                "IDX header says {n} labels but the file has {}: truncated or corrupt; download it again",
                bytes.len() - 8
            ),
        ));
    }
    Ok(bytes[8..].to_vec())
}

/// Parses CIFAR-10 binary records (1 label byte + 3072 pixel bytes): `(n, 3, 32, 32)`.
pub fn parse_cifar(bytes: &[u8], path: &Path) -> Result<Images> {
    Ok(parse_cifar_labelled(bytes, path)?.0)
}

/// As [`parse_cifar`], with each image's label (0..=9, [`CIFAR10_CLASSES`]).
pub fn parse_cifar_labelled(bytes: &[u8], path: &Path) -> Result<(Images, Vec<u8>)> {
    const REC: usize = 1 + 3 * 32 * 32;
    if bytes.is_empty() || !bytes.len().is_multiple_of(REC) {
        return Err(Error::bad_file(
            path,
            format!(
                "not a CIFAR-10 binary batch: {} bytes is not a positive multiple of the 3073-byte record \
                 (truncated or another file); use test_batch.bin of the CIFAR-10 binary version",
                bytes.len()
            ),
        ));
    }
    let n = bytes.len() / REC;
    let mut pixels = Vec::with_capacity(n * (REC - 1));
    for rec in bytes.chunks(REC) {
        if rec[0] > 9 {
            return Err(Error::bad_file(
                path,
                format!(
                    "not a CIFAR-10 binary batch: the label byte of record {} is {}, not 0..=9; use test_batch.bin \
                     of the CIFAR-10 binary version",
                    pixels.len() / (REC - 1),
                    rec[0]
                ),
            ));
        }
        pixels.extend_from_slice(&rec[1..]);
    }
    let labels = bytes.chunks(REC).map(|rec| rec[0]).collect();
    Ok((Images { pixels, n, channels: 3, height: 32, width: 32 }, labels))
}

/// The names of MNIST's classes, by label: the digits.
pub const MNIST_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// The names of CIFAR-10's classes, by label (its `batches.meta.txt`).
pub const CIFAR10_CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// The data sets the zoo's models are trained and evaluated on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dataset {
    /// MNIST, statically binarized with a fixed seed (the paper's binarized MNIST).
    MnistBinarized,
    /// MNIST thresholded at intensity ≥ 128.
    MnistThresholded,
    /// CIFAR-10, 8-bit RGB.
    Cifar10,
}

impl Dataset {
    /// The name used in the manifest: `mnist-binarized`, `mnist-thresholded`, `cifar10`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "mnist-binarized" => Some(Self::MnistBinarized),
            "mnist-thresholded" => Some(Self::MnistThresholded),
            "cifar10" => Some(Self::Cifar10),
            _ => None,
        }
    }

    /// The manifest name.
    pub fn name(self) -> &'static str {
        match self {
            Self::MnistBinarized => "mnist-binarized",
            Self::MnistThresholded => "mnist-thresholded",
            Self::Cifar10 => "cifar10",
        }
    }

    /// The name of the archives that hold this data set, and of its folder in a data directory:
    /// `mnist` (both MNIST variants) or `cifar10`; what `zoo data fetch` takes.
    pub fn files_name(self) -> &'static str {
        match self {
            Self::MnistBinarized | Self::MnistThresholded => "mnist",
            Self::Cifar10 => "cifar10",
        }
    }

    /// The test file [`Dataset::load_test`] reads in `data_dir` (raw, or with `.gz` appended): MNIST's
    /// `mnist/t10k-images-idx3-ubyte`; CIFAR-10's whole `cifar10/test_batch.bin` (10,000 images) if it
    /// is there, else `cifar10/test_batch_first1000.bin` (its first 1,000 images).
    pub fn test_file(self, data_dir: &Path) -> PathBuf {
        match self {
            Self::MnistBinarized | Self::MnistThresholded => data_dir.join("mnist").join("t10k-images-idx3-ubyte"),
            Self::Cifar10 => {
                let dir = data_dir.join("cifar10");
                let full = dir.join("test_batch.bin");
                if either_exists(&full) {
                    full
                } else {
                    dir.join("test_batch_first1000.bin")
                }
            }
        }
    }

    /// The names of the data set's classes, by label.
    pub fn class_names(self) -> &'static [&'static str] {
        match self {
            Self::MnistBinarized | Self::MnistThresholded => &MNIST_CLASSES,
            Self::Cifar10 => &CIFAR10_CLASSES,
        }
    }

    /// The test images and each one's label (its class, [`Dataset::class_names`]): MNIST's labels
    /// from `mnist/t10k-labels-idx1-ubyte` (raw or `.gz`), CIFAR-10's from the records of its test
    /// file.
    pub fn load_test_labelled(self, data_dir: &Path) -> Result<(Images, Vec<u8>)> {
        match self {
            Self::MnistBinarized | Self::MnistThresholded => {
                let images = self.load_test(data_dir)?;
                let (bytes, path) = read_either(&data_dir.join("mnist").join("t10k-labels-idx1-ubyte"))?;
                let labels = parse_idx_labels(&bytes, &path)?;
                if labels.len() != images.n {
                    return Err(Error::bad_file(
                        &path,
                        format!("holds {} labels for {} test images: not MNIST's test labels", labels.len(), images.n),
                    ));
                }
                if let Some(l) = labels.iter().find(|&&l| l > 9) {
                    return Err(Error::bad_file(&path, format!("holds the label {l}; MNIST's labels are 0..=9")));
                }
                Ok((images, labels))
            }
            Self::Cifar10 => {
                let (bytes, path) = read_either(&self.test_file(data_dir))?;
                parse_cifar_labelled(&bytes, &path)
            }
        }
    }

    /// Whether `data_dir` holds this data set's test file.
    pub fn is_in(self, data_dir: &Path) -> bool {
        either_exists(&self.test_file(data_dir))
    }

    /// The data directory to read this data set from: `given` (the `--data-dir` flag) if any, else
    /// `$PIXEL_ZOO_DATA` if set, else the zoo's data cache ([`data_cache_dir`]) if it holds the data
    /// set. With none, [`Error::NoData`], which names the cache (`zoo data fetch` fills it).
    pub fn locate(self, given: Option<&Path>) -> Result<PathBuf> {
        if let Some(d) = given {
            return Ok(d.to_path_buf());
        }
        if let Some(d) = std::env::var_os(DATA_ENV).filter(|d| !d.is_empty()) {
            return Ok(PathBuf::from(d));
        }
        let cache = data_cache_dir();
        if self.is_in(&cache) {
            return Ok(cache);
        }
        Err(Error::NoData { dataset: self.files_name(), cache })
    }

    /// The test images (the 10,000 MNIST test images; for CIFAR-10, all 10,000 of `test_batch.bin`
    /// when the data directory holds it, else the first 1,000 of `test_batch_first1000.bin`; see
    /// [`Dataset::test_file`]) from `data_dir`.
    pub fn load_test(self, data_dir: &Path) -> Result<Images> {
        if !data_dir.is_dir() {
            return Err(Error::MissingData {
                msg: format!(
                    "data directory {} does not exist; point the data directory ({DATA_ENV}) at a directory holding mnist/ and cifar10/",
                    data_dir.display()
                ),
            });
        }
        match self {
            Self::MnistBinarized | Self::MnistThresholded => {
                let (bytes, path) = read_either(&self.test_file(data_dir))?;
                let mut images = parse_idx_images(&bytes, &path)?;
                if (images.height, images.width) != (28, 28) {
                    return Err(Error::bad_file(
                        &path,
                        format!(
                            "holds {}x{} images, but MNIST images are 28x28: not the MNIST test set",
                            images.width, images.height
                        ),
                    ));
                }
                images.pixels = match self {
                    Self::MnistBinarized => binarize_static(&images.pixels, SEED_TEST),
                    _ => threshold(&images.pixels),
                };
                Ok(images)
            }
            Self::Cifar10 => {
                let (bytes, path) = read_either(&self.test_file(data_dir))?;
                parse_cifar(&bytes, &path)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_published_sequence() {
        // SplitMix64 seeded with 0 (Vigna's reference): first outputs.
        assert_eq!(splitmix64(0, 0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(0, 1), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn binarization_is_exact_at_the_ends_and_fair_in_the_middle() {
        let zeros = binarize_static(&[0u8; 1000], 7);
        assert!(zeros.iter().all(|&b| b == 0));
        let ones = binarize_static(&[255u8; 1000], 7);
        assert!(ones.iter().all(|&b| b == 1));
        let half = binarize_static(&[128u8; 100_000], 7);
        let mean = half.iter().map(|&b| b as f64).sum::<f64>() / 1e5;
        assert!((mean - 128.0 / 255.0).abs() < 0.01, "mean {mean}");
    }

    #[test]
    fn labels_come_from_idx_label_files_and_cifar_records() {
        let p = Path::new("labels.idx");
        assert_eq!(parse_idx_labels(&[0, 0, 8, 1, 0, 0, 0, 3, 7, 0, 9], p).unwrap(), [7, 0, 9]);
        let e = parse_idx_labels(&[0, 0, 8, 3, 0, 0, 0, 1, 7], p).unwrap_err().to_string();
        assert!(e.contains("not an IDX u8 label file"), "{e}");
        let e = parse_idx_labels(&[0, 0, 8, 1, 0, 0, 0, 4, 7], p).unwrap_err().to_string();
        assert!(e.contains("says 4 labels but the file has 1"), "{e}");
        // Two CIFAR-10 records, labels 7 (horse) and 0 (airplane).
        let mut bytes = vec![7u8];
        bytes.extend(vec![1u8; 3072]);
        bytes.push(0);
        bytes.extend(vec![2u8; 3072]);
        let (images, labels) = parse_cifar_labelled(&bytes, Path::new("test_batch.bin")).unwrap();
        assert_eq!((images.n, labels.as_slice()), (2, &[7u8, 0][..]));
        assert_eq!(Dataset::Cifar10.class_names()[7], "horse");
        assert_eq!(Dataset::MnistBinarized.class_names()[7], "7");
    }

    #[test]
    fn idx_header_errors_say_what_is_wrong() {
        let p = Path::new("x.idx");
        let e = parse_idx_images(&[0, 0, 8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], p).unwrap_err();
        assert!(e.to_string().contains("magic"), "{e}");
        let mut ok = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
        ok.extend([1, 2, 3, 4, 5, 6, 7]);
        let e = parse_idx_images(&ok, p).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        ok.push(8);
        assert_eq!(parse_idx_images(&ok, p).unwrap().n, 2);
    }

    #[test]
    fn the_whole_cifar10_test_batch_is_read_when_there_and_the_first_1000_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("cifar10");
        std::fs::create_dir(&c).unwrap();
        let record = |i: usize| {
            let mut r = vec![(i % 10) as u8];
            r.extend((0..3072).map(|k| ((i * 7 + k) % 251) as u8));
            r
        };
        let first: Vec<u8> = (0..1000).flat_map(record).collect();
        std::fs::write(c.join("test_batch_first1000.bin"), &first).unwrap();
        assert_eq!(Dataset::Cifar10.test_file(dir.path()), c.join("test_batch_first1000.bin"));
        let part = Dataset::Cifar10.load_test(dir.path()).unwrap();
        assert_eq!(part.n, 1000);

        let all: Vec<u8> = (0..10_000).flat_map(record).collect();
        std::fs::write(c.join("test_batch.bin"), &all).unwrap();
        assert_eq!(Dataset::Cifar10.test_file(dir.path()), c.join("test_batch.bin"));
        let mut full = Dataset::Cifar10.load_test(dir.path()).unwrap();
        assert_eq!(full.n, 10_000);
        assert_eq!(full.image(9_999), &record(9_999)[1..]);
        // --limit: the first N of the whole set are the images of the partial file.
        full.truncate(1000);
        assert_eq!(full, part);
    }

    #[test]
    fn a_given_data_directory_comes_first() {
        let given = Path::new("/some/where");
        assert_eq!(Dataset::Cifar10.locate(Some(given)).unwrap(), given);
        assert_eq!(Dataset::MnistThresholded.files_name(), "mnist");
        assert!(!Dataset::MnistBinarized.is_in(given));
    }

    #[test]
    fn cifar_records_must_be_whole() {
        let p = Path::new("c.bin");
        assert!(parse_cifar(&vec![0u8; 3073 * 2 - 1], p).unwrap_err().to_string().contains("3073"));
        assert_eq!(parse_cifar(&vec![0u8; 3073 * 2], p).unwrap().n, 2);
    }
}
