"""Data sets: MNIST IDX and CIFAR-10 binary batches (gz or raw), binarized MNIST.

Three data sets, in two families of images: `mnist-binarized` and `mnist-thresholded` (binary
1 x 28 x 28 images), `cifar10` (8-bit 3 x 32 x 32 images).

Binarized MNIST is a *static* binarization, identical to the zoo's (pixel-ops `data` module):
pixel k of a file (k = image_index * 784 + row * 28 + col) is 1 iff
    (splitmix64(seed + (k + 1) * 0x9E3779B97F4A7C15) >> 11) * 255 < intensity << 53
i.e. u < intensity / 255 with u uniform on [0, 1) from the 53 high bits of a counter-based
SplitMix64. Seeds: 2016 for the training file, 2017 for the test file.
"""
import gzip
import os

import numpy as np

DATASETS = ("mnist-binarized", "mnist-thresholded", "cifar10")
SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
SEED_TRAIN = 2016
SEED_TEST = 2017


def family(dataset):
    """The images a data set holds: "mnist" or "cifar10" (the keys of SHAPES)."""
    return "mnist" if dataset.startswith("mnist") else dataset


def _open(path):
    if os.path.exists(path):
        return open(path, "rb")
    if os.path.exists(path + ".gz"):
        return gzip.open(path + ".gz", "rb")
    raise FileNotFoundError(f"neither {path} nor {path}.gz exists")


def read_idx_images(path):
    with _open(path) as f:
        raw = f.read()
    magic, n, rows, cols = np.frombuffer(raw[:16], dtype=">u4")
    assert magic == 2051, f"{path}: bad IDX magic {magic}"
    return np.frombuffer(raw[16:], dtype=np.uint8).reshape(n, rows, cols)


def read_idx_labels(path):
    with _open(path) as f:
        raw = f.read()
    magic, n = np.frombuffer(raw[:8], dtype=">u4")
    assert magic == 2049, f"{path}: bad IDX label magic {magic}"
    return np.frombuffer(raw[8:], dtype=np.uint8)[:n]


def read_cifar_records(paths):
    """The 3,073-byte records of CIFAR-10 binary batches: (n, 3073), the label byte first."""
    out = []
    for p in paths:
        with _open(p) as f:
            out.append(np.frombuffer(f.read(), dtype=np.uint8).reshape(-1, 3073))
    return np.concatenate(out)


def read_cifar(paths):
    return read_cifar_records(paths)[:, 1:].reshape(-1, 3, 32, 32)


def splitmix64_stream(seed, n, start=0):
    """Draw k of the counter-based SplitMix64 stream, for k in start..start + n."""
    with np.errstate(over="ignore"):
        k = np.arange(start + 1, start + n + 1, dtype=np.uint64)
        z = np.uint64(seed) + k * GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def binarize_static(images, seed, first=0):
    """The static binarization of `images`, images first, first + 1, ... of their file (the
    counter k runs over the whole file, so a part is binarized as it is within the whole)."""
    flat = images.reshape(-1).astype(np.uint64)
    z = splitmix64_stream(seed, flat.size, start=first * int(np.prod(images.shape[1:])))
    with np.errstate(over="ignore"):
        bits = (z >> np.uint64(11)) * np.uint64(255) < (flat << np.uint64(53))
    return bits.astype(np.uint8).reshape(images.shape)


def load_intensities(dataset, data_dir, split):
    """The 8-bit MNIST intensities (n, 1, 28, 28) of a split, for dynamic binarization: training
    draws a fresh binary image from them at every visit (`binarize_dynamic`)."""
    assert dataset == "mnist-binarized", "intensities are only needed for binarized MNIST"
    if split == "test":
        raise ValueError("training never draws from the test images")
    x = read_idx_images(os.path.join(data_dir, "mnist", "train-images-idx3-ubyte"))[:, None]
    return x[:50000] if split == "train" else x[50000:]


def binarize_dynamic(intensities, rng, part=None):
    """A fresh binarization: pixel = 1 with probability intensity / 255 (numpy Generator rng).

    part = (lo, hi, n): `intensities` are rows lo..hi of a batch of n images. The draws are made
    for all n (the same calls on `rng` as for the whole batch) and rows lo..hi of them used, so an
    image's draw does not depend on how a batch is split over processes."""
    if part is None:
        u = rng.random(intensities.shape, dtype=np.float32)
    else:
        lo, hi, n = part
        assert hi - lo == len(intensities), "part does not match the rows given"
        u = rng.random((n,) + intensities.shape[1:], dtype=np.float32)[lo:hi]
    return (u * 255.0 < intensities).astype(np.uint8)


def _split(x, dataset, split):
    """Rows of a training file's array that make `split` ('train' or 'valid'; 'test' is its own file)."""
    if split == "test":
        return x
    cut = 50000 if family(dataset) == "mnist" else 45000
    return x[:cut] if split == "train" else x[cut:]


def _cifar_files(data_dir, split):
    d = os.path.join(data_dir, "cifar10")
    if split == "test":
        return [os.path.join(d, "test_batch_first1000.bin")]
    return [os.path.join(d, f"data_batch_{i}.bin") for i in range(1, 6)]


def load(dataset, data_dir, split):
    """Returns uint8 array (n, c, h, w): 0/1 for binarized MNIST, 0..255 for CIFAR-10.

    split: 'train' (training file less the validation part), 'valid' or 'test'.
    Validation: the last 10,000 MNIST training images; the last 5,000 CIFAR-10 training images
    (the end of data_batch_5). Test images are never used for model selection.
    """
    if dataset in ("mnist-binarized", "mnist-thresholded"):
        if split == "test":
            x = read_idx_images(os.path.join(data_dir, "mnist", "t10k-images-idx3-ubyte"))
            seed = SEED_TEST
        else:
            x = read_idx_images(os.path.join(data_dir, "mnist", "train-images-idx3-ubyte"))
            seed = SEED_TRAIN
        first = 50000 if split == "valid" else 0
        x = _split(x, dataset, split)
        x = binarize_static(x, seed, first) if dataset == "mnist-binarized" else (x >= 128).astype(np.uint8)
        return x[:, None]
    if dataset == "cifar10":
        return _split(read_cifar(_cifar_files(data_dir, split)), dataset, split)
    raise ValueError(f"unknown data set {dataset}")


def load_labels(dataset, data_dir, split):
    """The class labels (n,) uint8 of the images `load` returns for the same split: MNIST's digits,
    CIFAR-10's classes (airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck)."""
    if family(dataset) == "mnist":
        name = "t10k-labels-idx1-ubyte" if split == "test" else "train-labels-idx1-ubyte"
        return _split(read_idx_labels(os.path.join(data_dir, "mnist", name)), dataset, split)
    if dataset == "cifar10":
        return _split(read_cifar_records(_cifar_files(data_dir, split))[:, 0].copy(), dataset, split)
    raise ValueError(f"unknown data set {dataset}")
