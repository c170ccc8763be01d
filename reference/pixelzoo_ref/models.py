"""Build any zoo architecture from its config (the JSON stored in the safetensors metadata)."""
from .pixelcnn import PixelCNN
from .recurrent import RecurrentPixelModel

ARCHITECTURES = ("pixelcnn", "row-lstm", "diagonal-bilstm")


def build(cfg):
    if cfg["architecture"] == "pixelcnn":
        return PixelCNN(cfg)
    if cfg["architecture"] in ("row-lstm", "diagonal-bilstm"):
        return RecurrentPixelModel(cfg)
    raise ValueError(f"unknown architecture {cfg['architecture']}; known: {', '.join(ARCHITECTURES)}")
