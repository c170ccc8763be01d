"""The model config: the architectures, their size fields, and the train.py arguments that set them.

A config is a dict, stored as JSON in a weights file's metadata and as `[model.config]` in
weights-manifest.toml; `nets.build(cfg)` makes its network. Its fields:

- every architecture: `architecture`, `channels`, `height`, `width`, `head` (`bernoulli` for
  binary images, `softmax256` for 8-bit ones), `hidden`, `layers`, `output_features`, `input_kernel`;
- `pixelcnn`: `block_kernel`;
- `row-lstm`, `diagonal-bilstm`: `features`; the Row LSTM also `input_to_state_kernel` and
  `state_to_state_kernel`; optional: `conditioning` (the big stage of a multi-scale model) and the
  third-party checkpoint's options `residual_conv`, `state_bias`, `output_projection`, `input_encoding`;
- `multiscale`: `factor`, `small` (the config of the unconditional stage, on the image's rows and
  columns that are multiples of `factor`) and `big` (a recurrent config with `conditioning`);
- `gated-pixelcnn`: `block_kernel` and `classes` (the number of class labels it is conditioned on; 0
  for an unconditional model);
- `mixture-pixelcnn`: head `logistic-mixture`, `components`; `layers` are 1 x 1 residual blocks, and
  it has no `output_features`.

`add_arguments(parser)` declares the arguments that choose an architecture and its sizes (train.py's,
which presets.py sets), `DEFAULTS` holds their defaults, and `config_from(args, shape)` turns the
parsed arguments into a config.
"""
import argparse

from .data import family

# The paper's names of the architectures, by config name.
NAMES = {
    "pixelcnn": "PixelCNN",
    "row-lstm": "Row LSTM PixelRNN",
    "diagonal-bilstm": "Diagonal BiLSTM PixelRNN",
    "multiscale": "Multi-scale PixelRNN",
    "gated-pixelcnn": "Gated PixelCNN",
    "mixture-pixelcnn": "local PixelCNN with a discretized logistic mixture",
}
ARCHITECTURES = tuple(NAMES)
RECURRENT = ("row-lstm", "diagonal-bilstm")
# What a multi-scale model's small stage may be (its big stage is recurrent).
STAGES = ("pixelcnn",) + RECURRENT


# Class labels of each data set's images (MNIST digits, CIFAR-10 classes).
CLASSES = {"mnist": 10, "cifar10": 10}


def head_of(dataset, arch=None):
    """The output head of a model of `dataset`: a sigmoid for binary images, a 256-way softmax for 8-bit
    ones, or for the mixture-pixelcnn the discretized logistic mixture (8-bit images only)."""
    if arch == "mixture-pixelcnn":
        if family(dataset) == "mnist":
            raise ValueError("the mixture-pixelcnn models 8-bit images; binary MNIST has a sigmoid head")
        return "logistic-mixture"
    return "bernoulli" if family(dataset) == "mnist" else "softmax256"


def add_arguments(p):
    """Declare the architecture and size arguments on parser `p` (in a group of their own)."""
    g = p.add_argument_group("architecture and sizes")
    g.add_argument("--arch", default="pixelcnn", choices=ARCHITECTURES)
    g.add_argument("--hidden", type=int, default=16,
                   help="h: PixelCNN's residual stream has 2h features; LSTM state size")
    g.add_argument("--features", type=int, default=0, help="LSTM models: residual stream width (0 = 2h)")
    g.add_argument("--layers", type=int, default=5)
    g.add_argument("--output-features", type=int, default=32)
    g.add_argument("--input-kernel", type=int, default=7)
    g.add_argument("--block-kernel", type=int, default=3, help="PixelCNN: kernel of the residual blocks")
    g.add_argument("--input-to-state-kernel", type=int, default=3,
                   help="Row LSTM: k of the 1 x k input-to-state conv")
    g.add_argument("--state-to-state-kernel", type=int, default=3, help="Row LSTM: k of the state-to-state conv")
    g.add_argument("--big-arch", default="row-lstm", choices=RECURRENT,
                   help="multiscale: the conditional (big) stage; it takes --hidden, --features, --layers, ...")
    g.add_argument("--small-arch", default="row-lstm", choices=STAGES,
                   help="multiscale: the unconditional (small) stage")
    g.add_argument("--small-hidden", type=int, default=16)
    g.add_argument("--small-features", type=int, default=0, help="0 = 2 x --small-hidden")
    g.add_argument("--small-layers", type=int, default=2)
    g.add_argument("--small-output-features", type=int, default=32)
    g.add_argument("--upsampling-features", type=int, default=16,
                   help="multiscale: features c of the upsampled c x n x n conditioning map")
    g.add_argument("--factor", type=int, default=2, help="multiscale: n / s")
    g.add_argument("--classes", type=int, default=-1,
                   help="gated-pixelcnn: class labels to condition on (-1 = the data set's classes, 0 = none)")
    g.add_argument("--components", type=int, default=10, help="mixture-pixelcnn: logistics per pixel")


def _defaults():
    p = argparse.ArgumentParser(add_help=False)
    add_arguments(p)
    return vars(p.parse_args([]))


# args.<dest> -> default, for every argument of add_arguments.
DEFAULTS = _defaults()


def config_from(args, shape):
    """The config of parsed arguments (add_arguments' and `dataset`) for images of `shape` (c, h, w)."""
    c, h, w = shape
    head = head_of(args.dataset, args.arch)
    if args.arch == "multiscale":
        f = args.factor
        big = stage_config(args, args.big_arch, shape, head, args.hidden, args.features, args.layers,
                           args.output_features)
        big["conditioning"] = args.upsampling_features
        small = stage_config(args, args.small_arch, (c, h // f, w // f), head, args.small_hidden,
                             args.small_features, args.small_layers, args.small_output_features)
        return {"architecture": "multiscale", "channels": int(c), "height": int(h), "width": int(w),
                "head": head, "factor": f, "small": small, "big": big}
    return stage_config(args, args.arch, shape, head, args.hidden, args.features, args.layers, args.output_features)


def stage_config(args, arch, shape, head, hidden, features, layers, output_features):
    """The config of a single-scale network (or a multi-scale model's stage); the kernels come from
    `args`, shared by both stages."""
    c, h, w = shape
    cfg = {
        "architecture": arch,
        "channels": int(c),
        "height": int(h),
        "width": int(w),
        "head": head,
        "hidden": hidden,
        "layers": layers,
        "output_features": output_features,
        "input_kernel": args.input_kernel,
    }
    if arch == "pixelcnn":
        cfg["block_kernel"] = args.block_kernel
        return cfg
    if arch == "gated-pixelcnn":
        cfg["block_kernel"] = args.block_kernel
        cfg["classes"] = CLASSES[family(args.dataset)] if args.classes < 0 else args.classes
        return cfg
    if arch == "mixture-pixelcnn":
        del cfg["output_features"]
        cfg["components"] = args.components
        return cfg
    cfg["features"] = features or 2 * hidden
    if arch == "row-lstm":
        cfg["input_to_state_kernel"] = args.input_to_state_kernel
        cfg["state_to_state_kernel"] = args.state_to_state_kernel
    return cfg


def config_differences(a, b, ignore=()):
    """The keys, sorted, whose values differ between configs `a` and `b` (a key one lacks counts as
    None there), other than those in `ignore`."""
    return sorted(k for k in set(a) | set(b) if k not in ignore and a.get(k) != b.get(k))
