"""Helpers shared by the tests that train or start one network from another's weights
(test_grow.py, test_big_stage.py, test_distributed.py, test_export_run.py): random pixels for a
config, a network that looks trained, and an MNIST training file for short training runs."""
import os

import numpy as np
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


def mnist_training_data(data):
    """Write into the directory `data` an MNIST training file of 50,008 random images (50,000 for
    training, 8 for validation), as train.py --data-dir reads it; returns `data`."""
    os.makedirs(os.path.join(data, "mnist"), exist_ok=True)
    n = 50_008
    x = np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    with open(os.path.join(data, "mnist", "train-images-idx3-ubyte"), "wb") as f:
        f.write(np.array([2051, n, 28, 28], dtype=">u4").tobytes() + x.tobytes())
    return data
