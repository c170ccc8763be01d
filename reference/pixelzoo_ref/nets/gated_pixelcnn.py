"""Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders",
sections 2.1-2.3), written from the paper.

Two stacks remove the PixelCNN's blind spot:

- the vertical stack sees only the rows above: its first layer is an n x n convolution whose taps in
  the centre row and below are closed (mask "V-A"); later layers may also read the centre row of the
  vertical features (mask "V-B"), which themselves only know the rows above;
- the horizontal stack sees the current row to the left: 1 x n convolutions, taps right of the
  centre closed, the centre tap under the colour rule of the PixelCNN's masks (A in the first layer,
  B after);
- each layer links the vertical stack into the horizontal one with a 1 x 1 convolution of the
  vertical pre-activations (2p -> 2p), added to the horizontal pre-activations;
- gated units: y = tanh(a_f) * sigmoid(a_g) on both stacks, with the pre-activations split in two
  halves (f then g); feature k of both halves has the colour group of feature k of the output;
- the horizontal stack is residual from the second layer on: h <- h + 1x1(y) (mask B);
- class conditioning (section 2.3): every gated unit of every layer adds a learned per-class bias
  (2p,) to its pre-activations (an embedding of the one-hot label h); `classes` = 0 builds the
  unconditional model.

Output: the PixelCNN's output stack (two ReLU + 1x1 mask-B convolutions) and head.
Config keys: architecture "gated-pixelcnn", channels, height, width, head, hidden (p), layers
(gated layers after the first), output_features, input_kernel (n of the first layer), block_kernel
(n of the later layers), classes.
"""
import torch
import torch.nn as nn

from .layers import MaskedConv2d, encode_input, reshape_logits
from .pixelcnn import OutputStack


def gate(a):
    """(b, 2p, h, w) pre-activations -> (b, p, h, w): tanh of the first half times the sigmoid of
    the second, in float32 or wider (as the LSTM gates)."""
    a = a.to(torch.promote_types(a.dtype, torch.float32))
    p = a.shape[1] // 2
    return torch.tanh(a[:, :p]) * torch.sigmoid(a[:, p:])


class GatedLayer(nn.Module):
    """One layer of both stacks. first: the layer reading the input image (masks V-A and A, no
    residual); otherwise masks V-B and B and a residual horizontal stack."""

    def __init__(self, in_ch, p, colours, kernel, classes, first):
        super().__init__()
        self.first = first
        k = kernel
        self.vertical = MaskedConv2d("V-A" if first else "V-B", in_ch, 2 * p, (k, k), colours, gates=2)
        self.horizontal = MaskedConv2d("A" if first else "B", in_ch, 2 * p, (1, k), colours, gates=2)
        self.link = MaskedConv2d("V-B", 2 * p, 2 * p, (1, 1), colours, gates=2)
        self.residual = None if first else MaskedConv2d("B", p, p, (1, 1), colours)
        self.vertical_class = nn.Embedding(classes, 2 * p) if classes else None
        self.horizontal_class = nn.Embedding(classes, 2 * p) if classes else None
        if classes:  # small: a fresh model starts near the same network for every class
            nn.init.normal_(self.vertical_class.weight, std=0.1)
            nn.init.normal_(self.horizontal_class.weight, std=0.1)

    def forward(self, v, h, label):
        av = self.vertical(v)
        ah = self.horizontal(h) + self.link(av)
        if self.vertical_class is not None:
            av = av + self.vertical_class(label)[:, :, None, None].to(av.dtype)
            ah = ah + self.horizontal_class(label)[:, :, None, None].to(ah.dtype)
        v_out = gate(av).to(av.dtype)
        y = gate(ah).to(ah.dtype)
        h_out = y if self.residual is None else h + self.residual(y)
        return v_out, h_out


class GatedPixelCNN(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        c, p, classes = cfg["channels"], cfg["hidden"], cfg.get("classes", 0)
        self.layers = nn.ModuleList(
            [GatedLayer(c, p, c, cfg["input_kernel"], classes, True)]
            + [GatedLayer(p, p, c, cfg["block_kernel"], classes, False) for _ in range(cfg["layers"])]
        )
        self.output = OutputStack(p, cfg["output_features"], c, cfg["head"])

    def forward(self, x, label=None):
        """x: (b, c, h, w) pixel values, label: (b,) class indices (conditional models) ->
        logits (b, c, levels, h, w)."""
        cfg = self.cfg
        if cfg.get("classes", 0) and label is None:
            raise ValueError("a class-conditional model needs a label per image")
        v = h = encode_input(x, cfg["head"], self.layers[0].vertical.weight.dtype)
        for layer in self.layers:
            v, h = layer(v, h, label)
        return reshape_logits(self.output(h), cfg["channels"], cfg["head"])
