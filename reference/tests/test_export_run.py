"""export_run: a run's best weights into the zoo, as float32 (byte for byte) or float16."""
import contextlib
import hashlib
import io
import os
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open

from pixelzoo_ref import export_run, nets
from pixelzoo_ref.repo import REFERENCE
from trained import mnist_training_data, pixels


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A two-step training run of a tiny PixelCNN: (train dir, run id)."""
    tmp = tmp_path_factory.mktemp("run")
    mnist_training_data(tmp / "data")
    cmd = [sys.executable, "-m", "pixelzoo_ref.train", "--out", str(tmp / "train" / "tiny"), "--id", "tiny",
           "--data-dir", str(tmp / "data"), "--dataset", "mnist-binarized", "--arch", "pixelcnn", "--hidden", "4",
           "--layers", "1", "--output-features", "8", "--input-kernel", "5", "--batch", "8", "--steps", "2",
           "--schedule", "constant", "--eval-every", "2", "--valid-limit", "8", "--threads", "1"]
    env = dict(os.environ, PYTHONPATH=REFERENCE, OMP_NUM_THREADS="1", PIXEL_ZOO_TRAIN_DIR=str(tmp / "unused"))
    done = subprocess.run(cmd, cwd=REFERENCE, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return tmp / "train", "tiny"


def export(run, out, *extra):
    """export_run's printed record for `run` into `out` (weights/ and docs/ under it)."""
    train_dir, run_id = run
    os.makedirs(out / "weights", exist_ok=True)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        export_run.main(["--id", run_id, "--train-dir", str(train_dir), "--weights-dir", str(out / "weights"),
                         "--docs-dir", str(out / "docs"), *extra])
    return printed.getvalue()


def test_float32_is_the_run_file_byte_for_byte(run, tmp_path):
    record = export(run, tmp_path)
    src = open(run[0] / run[1] / "model.safetensors", "rb").read()
    assert open(tmp_path / "weights" / "tiny.safetensors", "rb").read() == src
    assert f'sha256 = "{hashlib.sha256(src).hexdigest()}"' in record
    assert "(autocast; exported float32)" in record
    assert export(run, tmp_path / "dry", "--dry-run") == record


def test_float16_rounds_every_tensor_and_keeps_the_metadata(run, tmp_path):
    record = export(run, tmp_path, "--dtype", "float16")
    src, dst = run[0] / run[1] / "model.safetensors", tmp_path / "weights" / "tiny.safetensors"
    assert f'sha256 = "{hashlib.sha256(open(dst, "rb").read()).hexdigest()}"' in record
    assert "(autocast; exported float16)" in record
    assert nets.read_metadata(str(dst)) == nets.read_metadata(str(src))
    with safe_open(str(dst), "pt") as f:
        assert all(f.get_tensor(k).dtype == torch.float16 for k in f.keys())
    # The network of the float16 file is the float32 network with its weights rounded.
    model, cfg = nets.load(str(dst))
    trained, _ = nets.load(str(src))
    with torch.no_grad():
        for p in trained.parameters():
            p.copy_(p.half().float())
        x = pixels(cfg)
        rounded_logits = nets.logits(trained, cfg, x)
        assert torch.equal(nets.logits(model, cfg, x), rounded_logits)
        assert all(p.dtype == torch.float32 for p in model.parameters())
    # --dry-run writes nothing (and cannot know the digest: the metadata's order varies).
    dry = export(run, tmp_path / "dry", "--dtype", "float16", "--dry-run")
    assert dry.splitlines()[0].startswith("# sha256: ")
    assert dry.splitlines()[1:] == record.splitlines()[1:]
    assert os.listdir(tmp_path / "dry" / "weights") == []
    assert not os.path.exists(tmp_path / "dry" / "docs")


def test_a_value_float16_cannot_hold_is_refused(run, tmp_path):
    src = str(run[0] / run[1] / "model.safetensors")
    model, cfg = nets.load(src)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = 1e6
    big = str(tmp_path / "big.safetensors")
    nets.save(model, cfg, big)
    with pytest.raises(SystemExit, match="beyond float16's range"):
        export_run.write_weights(big, str(tmp_path / "out.safetensors"), "float16")
    assert not os.path.exists(tmp_path / "out.safetensors")
