"""Masked convolutions and output heads (paper sections 3.4 and 4)."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import logistic_mixture as LM


def colour_group(n_features, colours):
    """Group (0=R, 1=G, 2=B) of each of n_features: contiguous blocks, feature k in floor(k*colours/n)."""
    return torch.div(torch.arange(n_features) * colours, n_features, rounding_mode="floor")


def gate_colour_group(n_outputs, gates, colours):
    """Groups of an LSTM input-to-state map with `gates` blocks of h outputs: output k has the group
    of hidden feature k mod h, so the four gates of one hidden feature see the same colours."""
    h = n_outputs // gates
    return colour_group(h, colours).repeat(gates)


def build_mask(kind, out_ch, in_ch, kh, kw, colours, gates=1):
    """Mask of shape (out_ch, in_ch, kh, kw). `gates` > 1: the outputs are gate blocks (see
    gate_colour_group).

    Taps above the centre row and left of the centre in the centre row are open; the centre tap
    connects output group j to input group i iff i < j (mask 'A') or i <= j (mask 'B');
    everything right of / below the centre is closed.

    The vertical stack of the Gated PixelCNN (van den Oord et al. 2016, "Conditional Image
    Generation with PixelCNN Decoders", section 2.2) reads whole rows: mask 'V-A' opens the rows
    above the centre row only (its first layer, on the image), 'V-B' also the whole centre row (the
    later layers, on vertical features that only know the rows above). Colours play no part there.
    """
    m = torch.zeros(out_ch, in_ch, kh, kw)
    cy, cx = kh // 2, kw // 2
    if kind in ("V-A", "V-B"):
        m[:, :, : cy + (kind == "V-B"), :] = 1.0
        return m
    if kind not in ("A", "B"):
        raise ValueError(f"unknown mask kind {kind!r} (A, B, V-A, V-B)")
    m[:, :, :cy, :] = 1.0
    m[:, :, cy, :cx] = 1.0
    g_out = gate_colour_group(out_ch, gates, colours)[:, None]
    g_in = colour_group(in_ch, colours)[None, :]
    centre = (g_in < g_out) if kind == "A" else (g_in <= g_out)
    m[:, :, cy, cx] = centre.float()
    return m


class MaskedConv2d(nn.Conv2d):
    """A 'same'-padded convolution whose weight is multiplied by a fixed causal mask."""

    def __init__(self, kind, in_ch, out_ch, kernel, colours, bias=True, gates=1):
        kh, kw = kernel
        super().__init__(in_ch, out_ch, (kh, kw), padding=(kh // 2, kw // 2), bias=bias)
        self.register_buffer("mask", build_mask(kind, out_ch, in_ch, kh, kw, colours, gates), persistent=False)
        # Fan-in counts only the open taps.
        fan_in = max(1.0, float(self.mask[0].sum()))
        nn.init.uniform_(self.weight, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


def encode_input(x, head, dtype=torch.float32):
    """Pixel values -> network input: binary {0,1} -> {-1,1}; 8-bit 0..255 -> [-1, 1]."""
    x = x.to(dtype)
    return 2 * x - 1 if head == "bernoulli" else x / 127.5 - 1


def head_levels(head):
    """Values each sub-pixel takes, as the logits' level axis: 1 (a sigmoid) for binary images, 256
    for 8-bit ones (a softmax, or the logistic mixture's 256 bins)."""
    return 1 if head == "bernoulli" else 256


def reshape_logits(raw, colours, head):
    """(b, colours*levels, h, w) -> (b, colours, levels, h, w)."""
    b, _, h, w = raw.shape
    return raw.view(b, colours, head_levels(head), h, w)


def nll_per_image(logits, x, head):
    """Negative log-likelihood in nats per image of x (b, c, h, w) ints. logits: (b, c, k, h, w) for
    the sigmoid and softmax heads; for the logistic mixture the network's raw parameters
    (b, P, h, w) (logistic_mixture.py)."""
    if head == "bernoulli":
        z = logits[:, :, 0]
        return F.binary_cross_entropy_with_logits(z, x.to(z.dtype), reduction="none").flatten(1).sum(1)
    if head == LM.HEAD:
        return -LM.log_likelihood(logits, x, LM.components_of(logits.shape[1], x.shape[1]))
    logp = F.log_softmax(logits, dim=2)
    picked = logp.gather(2, x.long().unsqueeze(2)).squeeze(2)
    return -picked.flatten(1).sum(1)
