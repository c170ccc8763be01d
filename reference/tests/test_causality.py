"""Causality of every architecture and both heads, in PyTorch: the gradient of each output (the
logits of colour c at pixel p) with respect to the input is zero wherever the factorisation forbids
a dependency, and the outputs do depend on the input.

The order: pixels in raster order, colours R, G, B within a pixel; for the multi-scale model the
pixels of the small image (rows and columns that are multiples of the factor) first, in raster
order, then the others in raster order (nets/multiscale.py). The models are the small random-weight
fixture configs (fixtures.RANDOM), in float64, so an absent dependency gives an exact zero."""
import pytest
import torch

from pixelzoo_ref.config import ARCHITECTURES
from pixelzoo_ref.fixtures import RANDOM
from pixelzoo_ref import nets
from pixelzoo_ref.nets import build

HEADS = {cfg["head"] for cfg in RANDOM.values()}
ARCHS = {arch for arch, _ in RANDOM}


# The heads each architecture is built with: the mixture-pixelcnn's head is its point.
HEADS_OF = {arch: {"bernoulli", "softmax256"} for arch in ARCHITECTURES} | {"mixture-pixelcnn": {"logistic-mixture"}}


def test_the_configs_cover_every_architecture_and_its_heads():
    assert ARCHS == set(ARCHITECTURES)
    for arch in ARCHS:
        assert {cfg["head"] for (a, _), cfg in RANDOM.items() if a == arch} == HEADS_OF[arch], arch


def order_key(cfg, i, j):
    """A key that sorts pixels in the model's generation order."""
    if cfg["architecture"] == "multiscale":
        f = cfg["factor"]
        return (0, i // f, j // f) if i % f == 0 and j % f == 0 else (1, i, j)
    return (0, i, j)


def allowed(cfg):
    """(c, H, W, c, H, W) booleans: output (c, i, j) may depend on input (c2, i2, j2)."""
    C, H, W = cfg["channels"], cfg["height"], cfg["width"]
    a = torch.zeros(C, H, W, C, H, W, dtype=torch.bool)
    for i in range(H):
        for j in range(W):
            for i2 in range(H):
                for j2 in range(W):
                    if order_key(cfg, i2, j2) < order_key(cfg, i, j):
                        a[:, i, j, :, i2, j2] = True
            for c in range(C):
                a[c, i, j, :c, i, j] = True
    return a


def dependencies(model, cfg, images=4, seed=0):
    """(c, H, W, c, H, W): max over `images` random images of
    |d sum(logits[c, :, i, j]) / d input[c2, i2, j2]|. Batch element k computes output k mod n
    only (the batch elements are independent), so one backward pass gives them all."""
    C, H, W = cfg["channels"], cfg["height"], cfg["width"]
    n = C * H * W
    g = torch.Generator().manual_seed(seed)
    hi = 2 if cfg["head"] == "bernoulli" else 256
    # Real-valued inputs over the pixel range: the structure of the gradient does not depend on
    # the values, and continuous ones make a dead ReLU at every input unlikely.
    x = (torch.rand(images * n, C, H, W, generator=g, dtype=torch.float64) * (hi - 1)).requires_grad_(True)
    # A conditional model: a class per image (the same for all of an image's batch elements).
    labels = torch.arange(images).repeat_interleave(n) % cfg["classes"] if cfg.get("classes") else None
    logits = nets.logits(model, cfg, x, labels).sum(2).reshape(images, n, n)  # (image, batch element, output)
    picked = logits[:, torch.arange(n), torch.arange(n)]
    (grad,) = torch.autograd.grad(picked.sum(), x)
    return grad.abs().reshape(images, C, H, W, C, H, W).amax(0)


def random_model(cfg, seed):
    torch.manual_seed(seed)
    model = build(cfg).double()
    with torch.no_grad():  # as fixtures.py does: larger than the default init, so every layer matters
        for pname, p in model.named_parameters():
            p.mul_(3.0)
            if pname.endswith("state_bias"):
                p.uniform_(-1.0, 1.0)
    return model


@pytest.mark.parametrize("arch,name", list(RANDOM))
def test_outputs_depend_only_on_earlier_inputs(arch, name):
    cfg = dict(architecture=arch, **RANDOM[(arch, name)])
    # The union over a few weight draws: with such narrow layers one draw can leave an output's
    # ReLUs dead at every input, which says nothing about the architecture.
    dep = sum(dependencies(random_model(cfg, seed), cfg, seed=seed) for seed in range(3))
    ok = allowed(cfg)
    bad = (dep > 0) & ~ok
    assert not bad.any(), f"{arch}-{name}: forbidden dependencies (out c,i,j, in c,i,j) {bad.nonzero()[:5].tolist()}"
    # Every output but the very first one depends on something earlier.
    C, H, W = cfg["channels"], cfg["height"], cfg["width"]
    reached = (dep > 0).flatten(3).any(3)  # (C, H, W)
    first = torch.zeros(C, H, W, dtype=torch.bool)
    first[0, 0, 0] = True
    assert torch.equal(reached, ~first), f"{arch}-{name}: outputs depending on no input: {(~reached).nonzero().tolist()}"
    # Within its pixel, colour c depends on every earlier colour (the centre taps of the masks).
    for c in range(1, C):
        for c2 in range(c):
            same_pixel = dep[c, :, :, c2].reshape(H * W, H * W).diagonal()
            assert (same_pixel > 0).all(), f"{arch}-{name}: colour {c} does not read colour {c2} of its pixel"
