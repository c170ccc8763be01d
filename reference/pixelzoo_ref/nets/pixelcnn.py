"""PixelCNN (paper section 3.5 and Table 1): 7x7 mask-A convolution, residual blocks with a
3x3 mask-B convolution, two ReLU + 1x1 mask-B output layers, a softmax/sigmoid head."""
import torch.nn as nn
import torch.nn.functional as F

from .layers import MaskedConv2d, encode_input, head_levels, reshape_logits


class ResidualBlock(nn.Module):
    """2h -ReLU-> 1x1 -> h -ReLU-> 3x3 mask B -> h -ReLU-> 1x1 -> 2h, plus the input."""

    def __init__(self, h, colours, kernel):
        super().__init__()
        self.reduce = MaskedConv2d("B", 2 * h, h, (1, 1), colours)
        self.spatial = MaskedConv2d("B", h, h, (kernel, kernel), colours)
        self.expand = MaskedConv2d("B", h, 2 * h, (1, 1), colours)

    def forward(self, x):
        y = self.reduce(F.relu(x))
        y = self.spatial(F.relu(y))
        y = self.expand(F.relu(y))
        return x + y

    def start_as_identity(self):
        """Zero the branch's last projection: the block passes its input through (growing)."""
        nn.init.zeros_(self.expand.weight)
        nn.init.zeros_(self.expand.bias)


class OutputStack(nn.Module):
    """Two ReLU + 1x1 mask-B convolutions: 2h -> d -> colours*levels."""

    def __init__(self, in_ch, d, colours, head):
        super().__init__()
        self.hidden = MaskedConv2d("B", in_ch, d, (1, 1), colours)
        self.logits = MaskedConv2d("B", d, colours * head_levels(head), (1, 1), colours)

    def forward(self, x):
        return self.logits(F.relu(self.hidden(F.relu(x))))


class PixelCNN(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        c, h = cfg["channels"], cfg["hidden"]
        k = cfg["input_kernel"]
        self.input_conv = MaskedConv2d("A", c, 2 * h, (k, k), c)
        self.blocks = nn.ModuleList(
            ResidualBlock(h, c, cfg["block_kernel"]) for _ in range(cfg["layers"])
        )
        self.output = OutputStack(2 * h, cfg["output_features"], c, cfg["head"])

    def forward(self, x):
        """x: (b, c, h, w) integer pixel values -> logits (b, c, levels, h, w)."""
        cfg = self.cfg
        y = self.input_conv(encode_input(x, cfg["head"], self.input_conv.weight.dtype))
        for blk in self.blocks:
            y = blk(y)
        return reshape_logits(self.output(y), cfg["channels"], cfg["head"])

