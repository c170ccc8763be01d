"""Growing a trained network deeper: the trained layers are kept, new layers go on top of them and
start as the identity, so the grown network computes exactly what the trained one did and training
goes on from there (the residual branch's last projection zeroed, as in Fixup or ReZero).

Every network whose layers are residual can grow: PixelCNN's residual blocks, the Row LSTM and
Diagonal BiLSTM layers with their residual 1x1 convolution, the mixture PixelCNN's pointwise blocks.
Each of those layer classes says how it starts as the identity (`start_as_identity`). A multi-scale
model grows stage by stage: its small network, its big one or both, each by the same rule. The Gated
PixelCNN cannot grow (its vertical stack is not residual).
"""
from ..config import config_differences
from .gated_pixelcnn import GatedPixelCNN

# The attribute holding a network's stack of layers.
LAYER_STACKS = ("blocks", "layers")
# A multi-scale model's stages: the attribute of each network and the config key of its config.
MULTISCALE_STAGES = ("small", "big")
GATED_CANNOT_GROW = "a gated-pixelcnn network cannot grow (its vertical stack is not residual)"


def _differ(what, trained_cfg, grown_cfg, keys):
    return (f"the configs differ in more than {what}: "
            + ", ".join(f"{k} {trained_cfg.get(k)!r} -> {grown_cfg.get(k)!r}" for k in keys))


def _network_problem(trained_cfg, grown_cfg, may_stay):
    """What stands in the way of one network of `trained_cfg` growing into `grown_cfg`, or None.
    `may_stay`: the same number of layers is fine (a multi-scale stage that does not grow)."""
    others = config_differences(trained_cfg, grown_cfg, ignore=("layers",))
    if others:
        return _differ("`layers`", trained_cfg, grown_cfg, others)
    trained_layers, grown_layers = trained_cfg.get("layers", 0), grown_cfg.get("layers", 0)
    if may_stay and grown_layers == trained_layers:
        return None
    if grown_cfg["architecture"] == "gated-pixelcnn":
        return GATED_CANNOT_GROW
    if grown_layers <= trained_layers:
        return f"growing needs more layers than the trained {trained_layers}, not {grown_layers}"
    return None


def growth_problem(trained_cfg, grown_cfg):
    """None when a network of `grown_cfg` can grow from trained weights of `trained_cfg`, otherwise
    what stands in the way."""
    if "multiscale" not in (trained_cfg.get("architecture"), grown_cfg.get("architecture")):
        return _network_problem(trained_cfg, grown_cfg, may_stay=False)
    others = config_differences(trained_cfg, grown_cfg, ignore=MULTISCALE_STAGES)
    if others:
        return _differ("their stages' `layers`", trained_cfg, grown_cfg, others)
    for stage in MULTISCALE_STAGES:
        problem = _network_problem(trained_cfg[stage], grown_cfg[stage], may_stay=True)
        if problem:
            return f"the {stage} stage: {problem}"
    if all(trained_cfg[s]["layers"] == grown_cfg[s]["layers"] for s in MULTISCALE_STAGES):
        return "growing needs more layers in the small stage, the big stage or both"
    return None


def layer_stack(model):
    """(attribute name, ModuleList) of a network's layers."""
    if isinstance(model, GatedPixelCNN):
        raise ValueError(GATED_CANNOT_GROW)
    for name in LAYER_STACKS:
        stack = getattr(model, name, None)
        if stack is not None:
            return name, stack
    raise ValueError(f"{type(model).__name__} has no stack of layers to grow")


def networks(model, cfg):
    """(parameter name prefix, network, config) of each network that may grow: the model itself, or
    a multi-scale model's two stages."""
    if cfg.get("architecture") == "multiscale":
        return [(f"{s}.", getattr(model, s), cfg[s]) for s in MULTISCALE_STAGES]
    return [("", model, cfg)]


def grow(model, trained_weights, trained_cfg):
    """Load `trained_weights` (a state dict of a network of `trained_cfg`) into `model`, the same
    network with more layers (in one stage or both, for a multi-scale model): everything but the
    new layers comes from the trained weights, and those layers start as the identity. Raises
    ValueError on any other mismatch."""
    grown = []
    for prefix, network, trained in networks(model, trained_cfg):
        trained_layers = trained["layers"]
        name, stack = layer_stack(network)
        if len(stack) < trained_layers:
            raise ValueError(f"the network has {len(stack)} layers, fewer than the trained {trained_layers}")
        for layer in list(stack)[trained_layers:]:
            start = getattr(layer, "start_as_identity", None)
            if start is None:
                raise ValueError(f"{type(layer).__name__} cannot start as the identity")
            start()
        grown += [f"{prefix}{name}.{i}." for i in range(trained_layers, len(stack))]
    if not grown:
        raise ValueError("nothing to grow: the network (or each stage) has as many layers as the trained one")
    missing, unexpected = model.load_state_dict(trained_weights, strict=False)
    not_grown = [k for k in missing if not k.startswith(tuple(grown))]
    if not_grown or unexpected:
        raise ValueError(f"the trained weights do not fit the network below its new layers: "
                         f"missing {not_grown}, unexpected {list(unexpected)}")
    return grown
