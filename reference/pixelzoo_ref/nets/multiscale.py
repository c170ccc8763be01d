"""Multi-scale PixelRNN (paper section 3.6), written from the paper.

An unconditional network generates a small s x s image; a conditional network generates the
n x n image given it. Here the small image is a subset of the big image's pixels, the ones at rows
and columns that are multiples of `factor` (s = n / factor), so log p(x) is exact:

    log p(x) = log p_small(x[::f, ::f]) + sum over the other pixels of log p_big(x_i | x_<i, x[::f, ::f])

The big network predicts every pixel, but only its predictions of the pixels outside the subset are
used: at the subset positions the model's logits are the small network's. The factorisation order is
the subset pixels first (raster order of the small image), then the others in raster order.

The small image goes through an upsampling network (a `factor` x `factor` transposed convolution with
stride `factor`, ReLU, a 3x3 convolution, ReLU) to a c x n x n map; each layer of the conditional
network maps it with a 1x1 unmasked convolution to 4h x n x n, added to its input-to-state map
(`recurrent.py`, config `conditioning`). Parameter names: `small.*`, `upsample.{deconv,conv}.*`,
`big.*`.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import RECURRENT, STAGES
from .layers import encode_input
from .pixelcnn import PixelCNN
from .recurrent import RecurrentPixelModel


class Upsampler(nn.Module):
    def __init__(self, colours, features, factor):
        super().__init__()
        self.deconv = nn.ConvTranspose2d(colours, features, factor, stride=factor)
        self.conv = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, small, head):
        y = encode_input(small, head, self.deconv.weight.dtype)
        return F.relu(self.conv(F.relu(self.deconv(y))))


def subset_mask(n_rows, n_cols, factor, device):
    rows = torch.arange(n_rows, device=device) % factor == 0
    cols = torch.arange(n_cols, device=device) % factor == 0
    return rows[:, None] & cols[None, :]


class MultiScale(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        f = cfg["factor"]
        small, big = cfg["small"], cfg["big"]
        for key in ("channels", "head"):
            if not (small[key] == big[key] == cfg[key]):
                raise ValueError(f"the stages' {key} must equal the model's")
        if (big["height"], big["width"]) != (cfg["height"], cfg["width"]):
            raise ValueError("the big stage must have the model's size")
        if (small["height"] * f, small["width"] * f) != (cfg["height"], cfg["width"]):
            raise ValueError("the small stage must be the model's size / factor")
        if small["architecture"] not in STAGES:
            raise ValueError(f"the small stage is one of {', '.join(STAGES)}")
        if big["architecture"] not in RECURRENT or not big.get("conditioning"):
            raise ValueError("the big stage is a Row LSTM or Diagonal BiLSTM with `conditioning`")
        self.small = PixelCNN(small) if small["architecture"] == "pixelcnn" else RecurrentPixelModel(small)
        self.upsample = Upsampler(cfg["channels"], big["conditioning"], f)
        self.big = RecurrentPixelModel(big)

    def forward(self, x):
        f = self.cfg["factor"]
        small_x = x[:, :, ::f, ::f]
        small_logits = self.small(small_x)
        big_logits = self.big(x, self.upsample(small_x, self.cfg["head"]))
        placed = small_logits.repeat_interleave(f, 3).repeat_interleave(f, 4)
        mask = subset_mask(x.shape[2], x.shape[3], f, x.device)
        return torch.where(mask, placed, big_logits)
