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

The big stage is the single-scale network of the same config plus those conditioning maps, so it can
start from that network's trained weights (`start_big_stage_from`): with the conditioning maps at
zero it predicts exactly as the trained network, blind to the small image, and learns from there to
use it.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import RECURRENT, STAGES, config_differences
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


def big_stage_problem(cfg, trained_cfg):
    """None when the trained weights of a single-scale network of `trained_cfg` can start the big stage
    of a multi-scale model of `cfg`, otherwise what stands in the way."""
    if cfg.get("architecture") != "multiscale":
        return f"only a multiscale model has a big stage, not a {cfg.get('architecture')}"
    big = {k: v for k, v in cfg["big"].items() if k != "conditioning"}
    others = config_differences(big, trained_cfg)
    if others:
        return ("the trained network is not the big stage without its conditioning: "
                + ", ".join(f"{k} {trained_cfg.get(k)!r} (big stage {big.get(k)!r})" for k in others))
    return None


def is_conditioning(name):
    """Whether a big-stage parameter name is one of the conditioning maps."""
    return "conditioning" in name.split(".")


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

    def start_big_stage_from(self, trained_weights):
        """Load a single-scale network's trained weights (a state dict without the `big.` prefix)
        into the big stage and zero its conditioning maps. Raises ValueError on any other mismatch."""
        try:
            missing, unexpected = self.big.load_state_dict(trained_weights, strict=False)
        except RuntimeError as e:  # tensors of other shapes
            raise ValueError(f"the trained weights do not fit the big stage: {e}") from None
        not_conditioning = [k for k in missing if not is_conditioning(k)]
        if not_conditioning or unexpected:
            raise ValueError(f"the trained weights do not fit the big stage: missing {not_conditioning}, "
                             f"unexpected {list(unexpected)}")
        with torch.no_grad():
            for name, p in self.big.named_parameters():
                if is_conditioning(name):
                    p.zero_()

    def forward(self, x):
        f = self.cfg["factor"]
        small_x = x[:, :, ::f, ::f]
        small_logits = self.small(small_x)
        big_logits = self.big(x, self.upsample(small_x, self.cfg["head"]))
        placed = small_logits.repeat_interleave(f, 3).repeat_interleave(f, 4)
        mask = subset_mask(x.shape[2], x.shape[3], f, x.device)
        return torch.where(mask, placed, big_logits)
