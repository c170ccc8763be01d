"""Helpers shared by the tests that start one network from another's weights (test_grow.py,
test_big_stage.py): random pixels for a config, and a network that looks trained."""
import torch

from pixelzoo_ref import nets


def pixels(cfg, seed=0):
    """Three random images of `cfg`'s size and values."""
    top = 2 if cfg["head"] == "bernoulli" else 256
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, top, (3, cfg["channels"], cfg["height"], cfg["width"]), generator=g)


def trained_network(cfg, seed=1):
    """A network of `cfg` moved away from its initialisation, so that every weight matters."""
    torch.manual_seed(seed)
    model = nets.build(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model
