"""Build any zoo architecture from its config (the JSON stored in the safetensors metadata)."""
from .pixelcnn import PixelCNN
from .recurrent import RecurrentPixelModel
from .multiscale import MultiScale

ARCHITECTURES = ("pixelcnn", "row-lstm", "diagonal-bilstm", "multiscale")


def build(cfg):
    if cfg["architecture"] == "pixelcnn":
        return PixelCNN(cfg)
    if cfg["architecture"] in ("row-lstm", "diagonal-bilstm"):
        return RecurrentPixelModel(cfg)
    if cfg["architecture"] == "multiscale":
        return MultiScale(cfg)
    raise ValueError(f"unknown architecture {cfg['architecture']}; known: {', '.join(ARCHITECTURES)}")
