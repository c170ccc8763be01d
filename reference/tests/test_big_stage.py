"""Starting a multi-scale model's big stage from a trained single-scale network (nets/multiscale.py,
train.py --big-from): with its conditioning maps at zero the big stage predicts exactly what the
trained network did, the conditioning maps still learn, and a network of another config is refused."""
import os
import subprocess
import sys

import pytest
import torch

from pixelzoo_ref import nets
from pixelzoo_ref.fixtures import RANDOM
from pixelzoo_ref.nets.multiscale import big_stage_problem, subset_mask
from pixelzoo_ref.repo import REFERENCE
from trained import mnist_training_data, pixels, trained_network

MULTISCALE = [name for arch, name in RANDOM if arch == "multiscale"]


def trained_and_multiscale(name):
    cfg = dict(architecture="multiscale", **RANDOM[("multiscale", name)])
    trained_cfg = {k: v for k, v in cfg["big"].items() if k != "conditioning"}
    trained = trained_network(trained_cfg)
    torch.manual_seed(2)
    return cfg, trained_cfg, trained, nets.build(cfg)


@pytest.mark.parametrize("name", MULTISCALE)
def test_the_big_stage_predicts_what_the_trained_network_did(name):
    cfg, trained_cfg, trained, model = trained_and_multiscale(name)
    assert big_stage_problem(cfg, trained_cfg) is None
    model.start_big_stage_from(trained.state_dict())
    x = pixels(cfg)
    with torch.no_grad():
        expected = nets.logits(trained, trained_cfg, x)
        got = nets.logits(model, cfg, x)
        outside = ~subset_mask(cfg["height"], cfg["width"], cfg["factor"], x.device)
        assert torch.equal(got[..., outside], expected[..., outside])
        # The small image does not reach the big stage yet: another one changes nothing.
        other = model.upsample(pixels(cfg["small"], seed=5), cfg["head"])
        assert torch.equal(model.big(x, other), expected)


@pytest.mark.parametrize("name", MULTISCALE)
def test_the_conditioning_maps_start_at_zero_and_learn(name):
    cfg, _, trained, model = trained_and_multiscale(name)
    model.start_big_stage_from(trained.state_dict())
    conditioning = [p for n, p in model.big.named_parameters() if "conditioning" in n.split(".")]
    assert conditioning and all(torch.count_nonzero(p) == 0 for p in conditioning)
    nets.logits(model, cfg, pixels(cfg)).float().logsumexp(2).sum().backward()
    assert all(p.grad is not None and torch.count_nonzero(p.grad) > 0 for p in conditioning)


def test_a_network_that_is_not_the_big_stage_is_refused():
    cfg, trained_cfg, _, model = trained_and_multiscale("binary")
    assert "hidden" in big_stage_problem(cfg, dict(trained_cfg, hidden=trained_cfg["hidden"] + 1))
    assert "conditioning" in big_stage_problem(cfg, cfg["big"])
    assert "only a multiscale model" in big_stage_problem(trained_cfg, trained_cfg)
    wider = nets.build(dict(trained_cfg, hidden=trained_cfg["hidden"] + 1))
    with pytest.raises(ValueError, match="do not fit the big stage"):
        model.start_big_stage_from(wider.state_dict())


def test_train_starts_the_big_stage_from_an_export(tmp_path):
    """train.py --big-from: a Row LSTM export starts a multi-scale run's big stage, and the leg says
    so; an export of another size is refused before training."""
    data = mnist_training_data(tmp_path / "data")
    stage = ["--hidden", "4", "--features", "8", "--layers", "1", "--output-features", "8", "--input-kernel", "3"]
    common = ["--data-dir", str(data), "--dataset", "mnist-binarized", "--batch", "8", "--steps", "2",
              "--schedule", "constant", "--eval-every", "2", "--valid-limit", "8", "--threads", "1"]
    multiscale = ["--arch", "multiscale", "--big-arch", "row-lstm", "--small-arch", "row-lstm",
                  "--small-hidden", "2", "--small-features", "4", "--small-layers", "1",
                  "--small-output-features", "4", "--upsampling-features", "3"]
    env = dict(os.environ, PYTHONPATH=REFERENCE, OMP_NUM_THREADS="1",
               PIXEL_ZOO_TRAIN_DIR=str(tmp_path / "unused"))

    def train(out, *extra):
        cmd = [sys.executable, "-m", "pixelzoo_ref.train", "--out", str(tmp_path / out), *common, *extra]
        return subprocess.run(cmd, cwd=REFERENCE, env=env, capture_output=True, text=True, timeout=300)

    single = train("single", "--arch", "row-lstm", *stage)
    assert single.returncode == 0, single.stderr
    export = str(tmp_path / "single" / "model.safetensors")
    both = train("both", *multiscale, *stage, "--big-from", export)
    assert both.returncode == 0, both.stderr
    assert "big stage from" in both.stdout
    ck = torch.load(tmp_path / "both" / "checkpoint.pt", weights_only=False)
    assert ck["legs"][-1]["from"] == f"scratch, its big stage from {export}"
    wider = train("wider", *multiscale, "--hidden", "6", *stage[2:], "--big-from", export)
    assert wider.returncode != 0 and "not the big stage" in wider.stderr
    assert not os.path.exists(tmp_path / "wider" / "checkpoint.pt")
