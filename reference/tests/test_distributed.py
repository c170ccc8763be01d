"""torchrun + DistributedDataParallel (train.py) against one process.

Two gloo ranks on 127.0.0.1 with global batch B end a few steps of a tiny model with the parameters,
EMA and optimizer state of one process with batch B (within 1e-5), and the same position in the data
order; the same holds when a run is stopped and resumed at another world size (2 ranks -> 1 process,
1 process -> 2 ranks). Only rank 0 writes curves, checkpoints and exports.

The runs use dynamic binarization (per-image random draws that must not depend on the split), EMA,
Adam with warm-up and the half-life schedule, on a synthetic MNIST file in a temporary directory
(random intensities: the equivalence does not need real images)."""
import csv
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from pixelzoo_ref.nets import build
from pixelzoo_ref.repo import REFERENCE
from trained import mnist_training_data

STEPS, HALF, SEED = 6, 3, 5
COMMON = ["--dataset", "mnist-binarized", "--dynamic-binarization", "--arch", "pixelcnn", "--hidden", "4",
          "--layers", "1", "--output-features", "8", "--input-kernel", "5", "--batch", "8",
          "--schedule", "half-life", "--lr", "3e-3", "--lr-half-life", "24", "--warmup", "2", "--ema", "0.8",
          "--eval-every", "3", "--valid-limit", "8", "--threads", "1", "--seed", str(SEED)]
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """An MNIST training file of 50,008 random images: 50,000 for training, 8 for validation."""
    return str(mnist_training_data(tmp_path_factory.mktemp("data")))


def environment(**extra):
    env = dict(os.environ, PYTHONPATH=REFERENCE, OMP_NUM_THREADS="1", **extra)
    if sys.platform == "linux":
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # gloo on the loopback, whatever the host name resolves to
    return env


def train(out, data_dir, ranks, *extra):
    """train.py in one process (ranks = 0: no torchrun) or under torchrun with `ranks` gloo ranks."""
    args = ["--out", str(out), "--data-dir", data_dir, *COMMON, *extra]
    if ranks:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(ranks),
               "--rdzv-backend", "c10d", "--rdzv-endpoint", "127.0.0.1:0", "-m", "pixelzoo_ref.train", *args]
    else:
        cmd = [sys.executable, "-m", "pixelzoo_ref.train", *args]
    env = environment(PIXEL_ZOO_TRAIN_DIR=str(out) + "-unused")
    r = subprocess.run(cmd, cwd=REFERENCE, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stdout}\n{r.stderr}"
    return r


def checkpoint(out):
    return torch.load(os.path.join(out, "checkpoint.pt"), weights_only=False)


def max_difference(a, b):
    """The largest |a - b| over the parameters, the EMA and the optimizer state of two checkpoints."""
    pairs = [(a["model"][k], b["model"][k]) for k in a["model"]]
    pairs += [(a["ema"]["shadow"][k], b["ema"]["shadow"][k]) for k in a["ema"]["shadow"]]
    for i, st in a["opt"]["state"].items():
        pairs += [(st[k], b["opt"]["state"][i][k]) for k in ("exp_avg", "exp_avg_sq")]
    assert a["model"].keys() == b["model"].keys() and len(pairs) > 3 * len(a["model"])
    return max((x.double() - y.double()).abs().max().item() for x, y in pairs)


def assert_same_run(a, b):
    """Same position in the data, same counts, same data-order RNG, and the same weights."""
    for k in ("step", "images", "pos"):
        assert a[k] == b[k], k
    assert np.array_equal(a["order"], b["order"])
    assert a["rng"].bit_generator.state == b["rng"].bit_generator.state
    assert a["ema"]["updates"] == b["ema"]["updates"]
    assert a["opt"]["state"][0]["step"] == b["opt"]["state"][0]["step"]
    d = max_difference(a, b)
    print(f"max |difference| of parameters, EMA and Adam moments: {d:.3g}")
    assert d <= TOLERANCE
    # the weights moved from their initial values far more than the tolerance: agreeing is not trivial
    torch.manual_seed(SEED)
    init = build(a["config"]).state_dict()
    moved = max((a["model"][k] - init[k]).abs().max().item() for k in a["model"])
    assert moved > 100 * TOLERANCE, moved


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("one") / "run"
    train(out, data_dir, 0, "--steps", str(STEPS))
    return checkpoint(out)


def curve_rows(out):
    with open(os.path.join(out, "curves.csv")) as f:
        return list(csv.reader(f))


def test_two_ranks_equal_one_process_then_resume_in_one_process(tmp_path, data_dir, one_process):
    out = tmp_path / "run"
    r = train(out, data_dir, 2, "--steps", str(HALF))
    assert "2 ranks of 4 images" in r.stdout
    two = checkpoint(out)
    assert two["step"] == HALF and two["legs"][-1]["ranks"] == 2
    # rank 0 alone wrote: one header, one validation row
    assert [row[:2] for row in curve_rows(out)] == [["step", "images"], ["3", "24"]]
    assert os.path.exists(out / "model.safetensors")
    # a stop after 3 steps, resumed in one process
    train(out, data_dir, 0, "--steps", str(STEPS), "--resume")
    resumed = checkpoint(out)
    assert [leg.get("ranks", 1) for leg in resumed["legs"]] == [2, 1]
    assert [row[:2] for row in curve_rows(out)] == [["step", "images"], ["3", "24"], ["6", "48"]]
    assert_same_run(resumed, one_process)


def test_one_process_resumed_with_two_ranks(tmp_path, data_dir, one_process):
    out = tmp_path / "run"
    train(out, data_dir, 0, "--steps", str(HALF))
    train(out, data_dir, 2, "--steps", str(STEPS), "--resume")
    resumed = checkpoint(out)
    assert [leg.get("ranks", 1) for leg in resumed["legs"]] == [1, 2]
    assert_same_run(resumed, one_process)


def test_the_global_batch_must_split_evenly(tmp_path, data_dir):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "3",
           "--rdzv-backend", "c10d", "--rdzv-endpoint", "127.0.0.1:0", "-m", "pixelzoo_ref.train",
           "--out", str(tmp_path / "run"), "--data-dir", data_dir, *COMMON, "--steps", "1"]
    env = environment()
    r = subprocess.run(cmd, cwd=REFERENCE, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "--batch 8 is the global batch: it must split evenly over the 3 ranks" in r.stdout + r.stderr
    assert not os.path.exists(tmp_path / "run")
