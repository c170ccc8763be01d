"""Regenerating the random-weight fixtures (fixtures.py) reproduces the committed ones in
../tests/fixtures/: the same weights, config, inputs, logits and NLL.

Weights and inputs are drawn from seeded generators and must match exactly. Logits and NLL are
float64 computations whose last bits may depend on the CPU's kernels: within 1e-9, relative."""
import os

import pytest
import torch
from safetensors.torch import load_file

from pixelzoo_ref import fixtures, repo
from pixelzoo_ref.nets import read_config

COMMITTED = repo.FIXTURES_DIR
STEMS = [f"{arch}-random-{name}" for arch, name in fixtures.RANDOM]


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("fixtures")
    fixtures.write_random(str(out))
    return str(out)


def test_every_committed_random_fixture_is_regenerated(regenerated):
    committed = sorted(f for f in os.listdir(COMMITTED) if "-random-" in f)
    assert committed == sorted(os.listdir(regenerated))
    assert len(committed) == 2 * len(STEMS)


@pytest.mark.parametrize("stem", STEMS)
def test_weights_and_config_are_the_committed_ones(regenerated, stem):
    new, old = (os.path.join(d, f"{stem}.safetensors") for d in (regenerated, COMMITTED))
    assert read_config(new) == read_config(old)
    a, b = load_file(new), load_file(old)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), f"{stem}: {k}"


@pytest.mark.parametrize("stem", STEMS)
def test_logits_are_the_committed_ones(regenerated, stem):
    a, b = (load_file(os.path.join(d, f"{stem}.logits.safetensors")) for d in (regenerated, COMMITTED))
    conditional = stem.startswith("gated-pixelcnn-") and read_config(
        os.path.join(COMMITTED, f"{stem}.safetensors")).get("classes")
    assert a.keys() == b.keys() == {"input", "logits", "nll"} | ({"labels", "marginal_nll"} if conditional else set())
    assert torch.equal(a["input"], b["input"])
    if conditional:
        assert torch.equal(a["labels"], b["labels"])
    for k in ("logits", "nll"):
        assert a[k].dtype == b[k].dtype == torch.float64
        torch.testing.assert_close(a[k], b[k], rtol=1e-9, atol=1e-9, msg=lambda m: f"{stem} {k}: {m}")
