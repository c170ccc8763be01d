"""A small, local PixelCNN with the discretized logistic mixture head (logistic_mixture.py), built
for fast lossless coding: one n x n convolution whose mask closes the whole current pixel, a few
residual blocks of 1 x 1 convolutions, and a 1 x 1 convolution to the mixture's parameters. The
channels of a pixel are conditioned on each other by the head (PixelCNN++'s linear means), not by
colour masks, so the network runs once per pixel; its receptive field is the n x n window's causal
half, which makes the cached session a window of the image. The design of the small local models of
NeLLoC (Zhang et al. 2021), which code CIFAR-10 near 3.3-3.4 bits/dim.

Config keys: architecture "mixture-pixelcnn", channels, height, width, head "logistic-mixture",
hidden (the features of the residual stream), layers (1 x 1 residual blocks), input_kernel (n),
components (K).
"""
import torch.nn as nn
import torch.nn.functional as F

from .layers import MaskedConv2d, encode_input
from .logistic_mixture import param_count


class PointwiseBlock(nn.Module):
    """f -ReLU-> 1x1 -> f -ReLU-> 1x1 -> f, plus the input."""

    def __init__(self, f):
        super().__init__()
        self.inner = nn.Conv2d(f, f, 1)
        self.outer = nn.Conv2d(f, f, 1)

    def forward(self, x):
        return x + self.outer(F.relu(self.inner(F.relu(x))))

    def start_as_identity(self):
        """Zero the branch's last projection: the block passes its input through (growing)."""
        nn.init.zeros_(self.outer.weight)
        nn.init.zeros_(self.outer.bias)


class MixturePixelCNN(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        c, f, k = cfg["channels"], cfg["hidden"], cfg["input_kernel"]
        # One colour group: mask A closes the centre tap for every channel (the whole pixel).
        self.input_conv = MaskedConv2d("A", c, f, (k, k), 1)
        self.blocks = nn.ModuleList(PointwiseBlock(f) for _ in range(cfg["layers"]))
        self.params = nn.Conv2d(f, param_count(cfg["components"], c), 1)

    def forward(self, x):
        """x: (b, c, h, w) pixel values 0..255 -> the mixture's parameters (b, P, h, w)."""
        y = self.input_conv(encode_input(x, self.cfg["head"], self.input_conv.weight.dtype))
        for block in self.blocks:
            y = block(y)
        return self.params(F.relu(y))
