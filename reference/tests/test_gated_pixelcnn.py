"""The Gated PixelCNN (nets/gated_pixelcnn.py) beyond the causality every architecture passes
(test_causality.py): no blind spot, and the class label at work."""
import pytest
import torch
from test_causality import allowed, dependencies, random_model

from pixelzoo_ref import nets


def config(channels, classes, layers):
    return dict(architecture="gated-pixelcnn", channels=channels, height=7, width=7,
                head="bernoulli" if channels == 1 else "softmax256", hidden=12, layers=layers, output_features=24,
                input_kernel=3, block_kernel=3, classes=classes)


@pytest.mark.parametrize("channels", [1, 3])
def test_no_blind_spot(channels):
    # First layer plus 6 with 3-wide kernels reach 7 rows up and 7 columns either side, the whole
    # past of a 7x7 image: every allowed dependency is present. The PixelCNN's stacked masked
    # convolutions miss a wedge up and to the right of each pixel; the two stacks do not.
    cfg = config(channels, 0, layers=6)
    dep = sum(dependencies(random_model(cfg, seed), cfg, seed=seed) for seed in range(2))
    ok = allowed(cfg)
    assert not ((dep > 0) & ~ok).any(), "a logit depends on a value it must not see"
    assert (dep[ok] > 0).all(), f"{int((dep[ok] == 0).sum())} allowed dependencies are missing"


def test_the_class_moves_the_logits_and_is_required():
    cfg = config(3, 10, layers=2)
    model = random_model(cfg, 0)
    x = torch.randint(0, 256, (2, 3, 7, 7))
    a, b = (nets.logits(model, cfg, x, torch.tensor([k, k])) for k in (0, 1))
    assert (a - b).abs().max() > 0
    with pytest.raises(ValueError, match="label"):
        model(x)
