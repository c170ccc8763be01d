"""The networks of the PixelRNN family, built from a config (`config.py`), and their weights files.

    layers.py      causal masks, the masked convolution, input encoding, output heads, the NLL
    pixelcnn.py    PixelCNN (paper section 3.5)
    recurrent.py   Row LSTM and Diagonal BiLSTM (sections 3.1, 3.2)
    multiscale.py  Multi-scale PixelRNN (section 3.6)
    gated_pixelcnn.py    Gated PixelCNN, class-conditional (van den Oord et al. 2016, Conditional
                   Image Generation with PixelCNN Decoders)
    logistic_mixture.py  the discretized logistic mixture head (PixelCNN++)
    mixture_pixelcnn.py  a small local PixelCNN with that head, for lossless coding
    grow.py        a trained network grown deeper, its new layers starting as the identity

A weights file is the zoo's safetensors layout: one tensor per parameter, named as the parameter
(`input_conv.weight`, `layers.0.input_to_state.bias`, ...), and metadata `format = "pixel-zoo"`
and `config`, the config as JSON.
"""
import json
import os

from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..config import RECURRENT
from . import grow, logistic_mixture
from .gated_pixelcnn import GatedPixelCNN
from .mixture_pixelcnn import MixturePixelCNN
from .multiscale import MultiScale
from .pixelcnn import PixelCNN
from .recurrent import RecurrentPixelModel


def build(cfg):
    """The network of config `cfg`, freshly initialised from torch's global RNG."""
    if cfg["architecture"] == "pixelcnn":
        return PixelCNN(cfg)
    if cfg["architecture"] in RECURRENT:
        return RecurrentPixelModel(cfg)
    if cfg["architecture"] == "multiscale":
        return MultiScale(cfg)
    if cfg["architecture"] == "gated-pixelcnn":
        return GatedPixelCNN(cfg)
    if cfg["architecture"] == "mixture-pixelcnn":
        return MixturePixelCNN(cfg)
    raise ValueError(f"unknown architecture {cfg['architecture']}")


def logits(model, cfg, x, labels=None):
    """What the zoo calls a model's logits, (b, c, levels, h, w), of pixel values x (b, c, h, w) (and
    the class labels (b,) of a conditional model): the network's output for the sigmoid and softmax
    heads; for the logistic mixture each channel's 256 log-probabilities given the earlier channels
    of x (logistic_mixture.channel_log_probs)."""
    out = model(x) if labels is None else model(x, labels)
    if cfg["head"] == logistic_mixture.HEAD:
        return logistic_mixture.channel_log_probs(out, x, cfg["components"])
    return out


def read_metadata(path):
    """The metadata of a weights file (a dict of strings; empty when it has none)."""
    with safe_open(path, "pt") as f:
        return f.metadata() or {}


def read_config(path):
    """The config stored in a weights file's metadata."""
    return json.loads(read_metadata(path)["config"])


def load_tensors(path):
    """The tensors of a weights file in float32, whether the file stores float32 or float16."""
    return {name: t.float() for name, t in load_file(path).items()}


def load(path):
    """(network in eval mode, config) of a weights file: built from its config, every parameter
    loaded (strictly: no tensor missing, none left over)."""
    cfg = read_config(path)
    model = build(cfg)
    model.load_state_dict(load_tensors(path), strict=True)
    return model.eval(), cfg


def save(model, cfg, path, metadata=None, masked=True):
    """Write `model`'s parameters (float32, on the CPU) with `cfg` and `metadata` (values turned
    into strings) into a weights file, atomically. masked: the masked convolutions' weights are
    stored multiplied by their masks (the zoo applies the mask again at load, which changes
    nothing); masked=False stores them as they are, for tests that the zoo masks at load."""
    tensors = {}
    for name, p in model.named_parameters():
        t = p.detach()
        if masked and name.endswith("weight"):
            module = model.get_submodule(name.rsplit(".", 1)[0])
            if hasattr(module, "mask"):
                t = t * module.mask
        tensors[name] = t.cpu().contiguous().float()
    meta = {"format": "pixel-zoo", "config": json.dumps(cfg, sort_keys=True)}
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    tmp = path + ".tmp"
    save_file(tensors, tmp, metadata=meta)
    os.replace(tmp, path)
