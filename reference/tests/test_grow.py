"""Growing a trained network deeper (nets/grow.py, train.py --grow-from): the grown network computes
exactly what the trained one did, its new layers still learn, and what cannot grow is refused."""
import json
import os
import subprocess
import sys

import pytest
import torch

from pixelzoo_ref import nets
from pixelzoo_ref.fixtures import RANDOM
from pixelzoo_ref.nets.grow import grow, growth_problem
from pixelzoo_ref.repo import REFERENCE
from trained import mnist_training_data, pixels, trained_network

GROWABLE = [key for key in RANDOM if key[0] in ("pixelcnn", "row-lstm", "diagonal-bilstm", "mixture-pixelcnn")
            and RANDOM[key].get("residual_conv", True)]


def trained_and_grown(arch, name, extra_layers=2):
    trained_cfg = dict(architecture=arch, **RANDOM[(arch, name)])
    grown_cfg = dict(trained_cfg, layers=trained_cfg["layers"] + extra_layers)
    trained = trained_network(trained_cfg)
    torch.manual_seed(2)
    grown = nets.build(grown_cfg)
    return trained_cfg, trained, grown_cfg, grown


@pytest.mark.parametrize("arch,name", GROWABLE)
def test_the_grown_network_computes_what_the_trained_one_did(arch, name):
    trained_cfg, trained, grown_cfg, grown = trained_and_grown(arch, name)
    assert growth_problem(trained_cfg, grown_cfg) is None
    grow(grown, trained.state_dict(), trained_cfg)
    x = pixels(trained_cfg)
    with torch.no_grad():
        assert torch.equal(nets.logits(trained, trained_cfg, x), nets.logits(grown, grown_cfg, x))


@pytest.mark.parametrize("arch,name", GROWABLE)
def test_the_new_layers_learn(arch, name):
    trained_cfg, trained, grown_cfg, grown = trained_and_grown(arch, name)
    grow(grown, trained.state_dict(), trained_cfg)
    logits = nets.logits(grown, grown_cfg, pixels(trained_cfg, seed=3))
    (logits.float() ** 2).mean().backward()
    stack = grown.blocks if hasattr(grown, "blocks") else grown.layers
    for layer in list(stack)[trained_cfg["layers"]:]:
        # The zeroed projection is what the gradient reaches first; the rest follows after a step.
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.parameters()), layer


MULTISCALE = [name for arch, name in RANDOM if arch == "multiscale"]
# Which stages grow: the small one, the big one, both.
STAGE_GROWTH = [dict(small=1), dict(big=2), dict(small=2, big=1)]


def grown_multiscale(cfg, extra):
    return dict(cfg, **{s: dict(cfg[s], layers=cfg[s]["layers"] + extra.get(s, 0)) for s in ("small", "big")})


@pytest.mark.parametrize("name", MULTISCALE)
@pytest.mark.parametrize("extra", STAGE_GROWTH, ids=lambda e: "+".join(e))
def test_a_multiscale_model_grows_stage_by_stage(name, extra):
    """The grown multi-scale model computes what the trained one did, and every new layer, in
    whichever stage, learns."""
    trained_cfg = dict(architecture="multiscale", **RANDOM[("multiscale", name)])
    grown_cfg = grown_multiscale(trained_cfg, extra)
    assert growth_problem(trained_cfg, grown_cfg) is None
    trained = trained_network(trained_cfg)
    torch.manual_seed(2)
    grown = nets.build(grown_cfg)
    new_layers = grow(grown, trained.state_dict(), trained_cfg)
    assert len(new_layers) == sum(extra.values())
    x = pixels(trained_cfg)
    with torch.no_grad():
        assert torch.equal(nets.logits(trained, trained_cfg, x), nets.logits(grown, grown_cfg, x))
    (nets.logits(grown, grown_cfg, pixels(trained_cfg, seed=3)).float() ** 2).mean().backward()
    for prefix in new_layers:
        layer = grown.get_submodule(prefix.rstrip("."))
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.parameters()), prefix


def test_what_a_multiscale_model_cannot_grow_into_is_refused():
    cfg = dict(architecture="multiscale", **RANDOM[("multiscale", "binary")])
    assert "small stage, the big stage or both" in growth_problem(cfg, cfg)
    fewer = grown_multiscale(cfg, dict(small=1, big=-1))
    assert "the big stage: growing needs more layers" in growth_problem(cfg, fewer)
    wider = dict(cfg, big=dict(cfg["big"], hidden=cfg["big"]["hidden"] + 1, layers=cfg["big"]["layers"] + 1))
    assert "the big stage: the configs differ in more than `layers`: hidden" in growth_problem(cfg, wider)
    other_factor = dict(grown_multiscale(cfg, dict(small=1)), factor=4)
    assert "differ in more than their stages' `layers`: factor" in growth_problem(cfg, other_factor)
    single = dict(cfg["big"], layers=cfg["big"]["layers"] + 1)
    assert "differ in more than their stages' `layers`" in growth_problem(cfg, single)
    with pytest.raises(ValueError, match="nothing to grow"):
        grow(nets.build(cfg), nets.build(cfg).state_dict(), cfg)


def test_what_cannot_grow_is_refused():
    cfg = dict(architecture="pixelcnn", **RANDOM[("pixelcnn", "rgb")])
    assert "hidden" in growth_problem(cfg, dict(cfg, hidden=cfg["hidden"] * 2, layers=cfg["layers"] + 1))
    assert "more layers" in growth_problem(cfg, cfg)
    gated = dict(architecture="gated-pixelcnn", **RANDOM[("gated-pixelcnn", "rgb")])
    assert "cannot grow" in growth_problem(gated, dict(gated, layers=gated["layers"] + 1))
    with pytest.raises(ValueError, match="cannot grow"):
        grow(nets.build(dict(gated, layers=3)), nets.build(gated).state_dict(), gated)
    # The third-party layout has no residual convolution to zero.
    options = dict(architecture="diagonal-bilstm", **RANDOM[("diagonal-bilstm", "options")])
    with pytest.raises(ValueError, match="residual"):
        grow(nets.build(dict(options, layers=3)), nets.build(options).state_dict(), options)
    # Weights of another width do not load below the new layers.
    wide = dict(cfg, hidden=cfg["hidden"] * 2)
    with pytest.raises(RuntimeError):
        grow(nets.build(dict(cfg, layers=3)), nets.build(wide).state_dict(), wide)


def test_train_grows_from_an_export(tmp_path):
    """train.py --grow-from: a 1-layer export becomes a 2-layer run that carries on its images and
    records where it grew from; a config that differs in more than the layers is refused."""
    data = mnist_training_data(tmp_path / "data")
    common = ["--data-dir", str(data), "--dataset", "mnist-binarized", "--arch", "pixelcnn", "--hidden", "4",
              "--output-features", "8", "--input-kernel", "5", "--batch", "8", "--steps", "2",
              "--schedule", "constant", "--eval-every", "2", "--valid-limit", "8", "--threads", "1"]
    env = dict(os.environ, PYTHONPATH=REFERENCE, OMP_NUM_THREADS="1",
               PIXEL_ZOO_TRAIN_DIR=str(tmp_path / "unused"))

    def train(out, *extra):
        cmd = [sys.executable, "-m", "pixelzoo_ref.train", "--out", str(tmp_path / out), *common, *extra]
        return subprocess.run(cmd, cwd=REFERENCE, env=env, capture_output=True, text=True, timeout=300)

    shallow = train("shallow", "--layers", "1")
    assert shallow.returncode == 0, shallow.stderr
    export = str(tmp_path / "shallow" / "model.safetensors")
    deep = train("deep", "--layers", "2", "--grow-from", export)
    assert deep.returncode == 0, deep.stderr
    assert "grown from" in deep.stdout
    ck = torch.load(tmp_path / "deep" / "checkpoint.pt", weights_only=False)
    assert ck["legs"][-1]["from"] == f"grown from {export}"
    assert ck["images"] == 2 * 8 + 2 * 8  # the shallow run's images, then this leg's
    assert json.loads(nets.read_metadata(str(tmp_path / "deep" / "model.safetensors"))["config"])["layers"] == 2
    wider = train("wider", "--layers", "2", "--hidden", "8", "--grow-from", export)
    assert wider.returncode != 0 and "differ in more than `layers`" in wider.stderr
