"""Growing a trained network deeper: the trained layers are kept, new layers go on top of them and
start as the identity, so the grown network computes exactly what the trained one did and training
goes on from there (the residual branch's last projection zeroed, as in Fixup or ReZero).

Every network whose layers are residual can grow: PixelCNN's residual blocks, the Row LSTM and
Diagonal BiLSTM layers with their residual 1x1 convolution, the mixture PixelCNN's pointwise blocks.
Each of those layer classes says how it starts as the identity (`start_as_identity`). The Gated
PixelCNN cannot (its vertical stack is not residual), nor can the multi-scale model (two networks).
"""
from ..config import config_differences
from .gated_pixelcnn import GatedPixelCNN

# The attribute holding a network's stack of layers.
LAYER_STACKS = ("blocks", "layers")


def growth_problem(trained_cfg, grown_cfg):
    """None when a network of `grown_cfg` can grow from trained weights of `trained_cfg`, otherwise
    what stands in the way."""
    others = config_differences(trained_cfg, grown_cfg, ignore=("layers",))
    if others:
        return ("the configs differ in more than `layers`: "
                + ", ".join(f"{k} {trained_cfg.get(k)!r} -> {grown_cfg.get(k)!r}" for k in others))
    if grown_cfg["architecture"] in ("gated-pixelcnn", "multiscale"):
        return f"a {grown_cfg['architecture']} network cannot grow (its layers are not all residual)"
    if grown_cfg.get("layers", 0) <= trained_cfg.get("layers", 0):
        return (f"growing needs more layers than the trained {trained_cfg.get('layers')}, "
                f"not {grown_cfg.get('layers')}")
    return None


def layer_stack(model):
    """(attribute name, ModuleList) of a network's layers."""
    if isinstance(model, GatedPixelCNN):
        raise ValueError("a gated-pixelcnn network cannot grow (its vertical stack is not residual)")
    for name in LAYER_STACKS:
        stack = getattr(model, name, None)
        if stack is not None:
            return name, stack
    raise ValueError(f"{type(model).__name__} has no stack of layers to grow")


def grow(model, trained_weights, trained_layers):
    """Load `trained_weights` (a state dict of the same network with `trained_layers` layers) into
    `model`, a deeper one: everything but the layers above `trained_layers` comes from the trained
    weights, and those layers start as the identity. Raises ValueError on any other mismatch."""
    name, stack = layer_stack(model)
    if len(stack) <= trained_layers:
        raise ValueError(f"the network has {len(stack)} layers; growing needs more than {trained_layers}")
    for layer in list(stack)[trained_layers:]:
        start = getattr(layer, "start_as_identity", None)
        if start is None:
            raise ValueError(f"{type(layer).__name__} cannot start as the identity")
        start()
    missing, unexpected = model.load_state_dict(trained_weights, strict=False)
    grown = tuple(f"{name}.{i}." for i in range(trained_layers, len(stack)))
    not_grown = [k for k in missing if not k.startswith(grown)]
    if not_grown or unexpected:
        raise ValueError(f"the trained weights do not fit the network below its new layers: "
                         f"missing {not_grown}, unexpected {list(unexpected)}")
