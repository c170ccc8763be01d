"""Named model configurations for `train.py --preset NAME`.

    python -m pixelzoo_ref.presets            # list the presets with their parameter counts
    python -m pixelzoo_ref.presets --check    # shipped-*: config_from(...) == weights-manifest.toml

Two families:

- `paper-*`: the sizes of van den Oord et al. 2016 (../../shared/docs/pixelrnn-notes.md, §5 and
  Table 1, partly from secondary summaries), for training on a GPU. Where the paper gives no size
  the preset's `guessed` says which fields are a guess and why.
- `shipped-<model id>`: the exact configs of the zoo's trained weights (weights-manifest.toml), as
  train.py arguments. `--check` verifies each one against the manifest and the weights' metadata.

`apply_preset(args, name)` sets `args.arch`, the size arguments and, when `--dataset` was not given,
`args.dataset`. A given `--dataset` must fit the preset (MNIST variants for an MNIST preset,
cifar10 for a CIFAR-10 one). A size argument given on the command line with a value other than its
default and the preset's is an error (so `--preset X --layers 5` cannot silently train something
else); a size flag set to its default value cannot be told apart from an absent one and is replaced.
Training options (batch, optimizer, lr, schedule, ...) are not part of a preset.
"""
import argparse
import json
import os
import sys


from . import nets, repo
from .config import DEFAULTS, config_from
from .data import SHAPES, family


def _pixelcnn(hidden, layers, output_features, input_kernel=7, block_kernel=3):
    return dict(hidden=hidden, layers=layers, output_features=output_features, input_kernel=input_kernel,
                block_kernel=block_kernel)


def _row_lstm(hidden, features, layers, output_features, input_kernel=7, is_kernel=3, ss_kernel=3):
    return dict(hidden=hidden, features=features, layers=layers, output_features=output_features,
                input_kernel=input_kernel, input_to_state_kernel=is_kernel, state_to_state_kernel=ss_kernel)


def _diagonal(hidden, features, layers, output_features, input_kernel=7):
    return dict(hidden=hidden, features=features, layers=layers, output_features=output_features,
                input_kernel=input_kernel)


def _preset(arch, dataset, args, note, guessed=""):
    return dict(arch=arch, dataset=dataset, args=args, note=note, guessed=guessed)


# name -> {arch, dataset, args (train.py dests), note, guessed (fields that are a guess, or "")}
PRESETS = {
    # --- the paper's sizes (GPU) ---
    "paper-pixelcnn-cifar10": _preset("pixelcnn", "cifar10", _pixelcnn(128, 15, 1024),
            "Table 1: 15 layers, h = 128 (residual stream 2h = 256), 1024 output features, 7x7 mask-A input, "
            "3x3 mask-B blocks; paper: 3.14 bits/dim"),
    "paper-row-lstm-cifar10": _preset("row-lstm", "cifar10", _row_lstm(128, 256, 12, 1024),
            "12 layers, h = 128, features 2h = 256, 1024 output features, 3x1 input-to-state and "
            "state-to-state kernels; paper: 3.07 bits/dim"),
    "paper-diagonal-bilstm-cifar10": _preset("diagonal-bilstm", "cifar10", _diagonal(128, 256, 12, 1024),
            "12 layers, h = 128, features 2h = 256, 1024 output features; paper: 3.00 bits/dim"),
    "paper-diagonal-bilstm-mnist": _preset("diagonal-bilstm", "mnist-binarized", _diagonal(16, 32, 7, 32),
            "7 layers, h = 16, features 2h = 32, 32 output features (the paper's MNIST output size); "
            "paper: 79.20 nats/image"),
    "paper-pixelcnn-mnist": _preset("pixelcnn", "mnist-binarized", _pixelcnn(16, 15, 32),
            "paper: 81.30 nats/image (secondary summary), no sizes given",
            guessed="layers 15 (the CIFAR-10 PixelCNN's depth; it sees 3 + 15 = 18 rows up) and "
            "h = 16 (residual stream 32, the MNIST Diagonal BiLSTM's width) are guesses; "
            "output 32 is the paper's MNIST output size"),
    "paper-row-lstm-mnist": _preset("row-lstm", "mnist-binarized", _row_lstm(16, 32, 7, 32),
            "paper: 80.54 nats/image (secondary summary), no sizes given",
            guessed="layers 7, h = 16, features 32 are guesses (the MNIST Diagonal BiLSTM's); output 32 is the "
            "paper's MNIST output size"),
}


def _shipped(model_id, arch, args, detail=""):
    """The preset of a shipped model: its architecture and train.py size arguments; the data set
    follows from the id (binarized MNIST or CIFAR-10)."""
    dataset = "cifar10" if model_id.endswith("cifar10") else "mnist-binarized"
    return {f"shipped-{model_id}": _preset(arch, dataset, args, f"weights/{model_id}.safetensors{detail}")}


# --- the shipped weights (weights-manifest.toml) ---
# Multi-scale: the big (conditional) stage takes the plain size arguments, the small stage the
# --small-* ones; both stages share --input-kernel and the Row LSTM kernels.
for _entry in (
    _shipped("pixelcnn-mnist", "pixelcnn", _pixelcnn(24, 12, 64)),
    _shipped("pixelcnn-cifar10", "pixelcnn", _pixelcnn(48, 6, 192)),
    _shipped("row-lstm-mnist", "row-lstm", _row_lstm(32, 64, 4, 64)),
    _shipped("row-lstm-cifar10", "row-lstm", _row_lstm(48, 96, 4, 192)),
    _shipped("diagonal-bilstm-mnist", "diagonal-bilstm", _diagonal(16, 32, 4, 64)),
    _shipped("diagonal-bilstm-cifar10", "diagonal-bilstm", _diagonal(24, 96, 3, 192)),
    _shipped("multiscale-mnist", "multiscale",
             dict(_row_lstm(32, 64, 4, 64), big_arch="row-lstm", upsampling_features=16, factor=2,
                  small_arch="diagonal-bilstm", small_hidden=16, small_features=32, small_layers=2,
                  small_output_features=32),
             " (small: Diagonal BiLSTM 14x14; big: Row LSTM)"),
    _shipped("multiscale-cifar10", "multiscale",
             dict(_row_lstm(48, 96, 4, 192), big_arch="row-lstm", upsampling_features=32, factor=2,
                  small_arch="row-lstm", small_hidden=32, small_features=64, small_layers=2,
                  small_output_features=128),
             " (small: Row LSTM 16x16; big: Row LSTM)"),
    _shipped("gated-pixelcnn-mnist", "gated-pixelcnn", dict(_pixelcnn(32, 8, 64), classes=10),
             " (conditioned on the digit)"),
    _shipped("gated-pixelcnn-cifar10", "gated-pixelcnn", dict(_pixelcnn(32, 8, 96), classes=10),
             " (conditioned on the class)"),
    _shipped("mixture-pixelcnn-cifar10", "mixture-pixelcnn", dict(hidden=256, layers=1, input_kernel=7, components=10)),
):
    PRESETS.update(_entry)

PAPER_CIFAR10 = ["paper-pixelcnn-cifar10", "paper-row-lstm-cifar10", "paper-diagonal-bilstm-cifar10"]
PAPER_MNIST = ["paper-pixelcnn-mnist", "paper-row-lstm-mnist", "paper-diagonal-bilstm-mnist"]


class PresetError(ValueError):
    pass


def names():
    return list(PRESETS)


def get(name):
    if name not in PRESETS:
        raise PresetError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}")
    return PRESETS[name]


def apply_preset(args, name):
    """Set args.arch, the size arguments and (when not given) args.dataset from preset `name`."""
    p = get(name)
    wanted = dict(p["args"], arch=p["arch"])
    conflicts = []
    for key, value in wanted.items():
        have = getattr(args, key, DEFAULTS.get(key))
        if have != value and have != DEFAULTS.get(key):
            conflicts.append(f"--{key.replace('_', '-')} {have} (the preset has {value})")
    if conflicts:
        raise PresetError(f"preset {name}: {'; '.join(conflicts)}; leave these flags out or drop --preset")
    given = getattr(args, "dataset", None)
    if given is None:
        args.dataset = p["dataset"]
    elif family(given) != family(p["dataset"]):
        raise PresetError(f"preset {name} is for {p['dataset']}, not --dataset {given}")
    for key, value in wanted.items():
        setattr(args, key, value)
    return args


def preset_args(name):
    """The architecture and size arguments of a preset (config.DEFAULTS elsewhere) and its data
    set, as an argument namespace for config_from."""
    return apply_preset(argparse.Namespace(**DEFAULTS, dataset=None), name)


def preset_config(name):
    args = preset_args(name)
    return config_from(args, SHAPES[family(args.dataset)])


def parameter_count(cfg):
    return sum(t.numel() for t in nets.build(cfg).parameters())


def check_shipped(verbose=True):
    """Every trained manifest model has a shipped-<id> preset whose config (config_from of its
    arguments) equals the manifest's config and the weights' metadata config; the weights load
    into nets.build(config) with strict=True. Returns the list of problems (empty = all good)."""
    problems = []
    models = repo.trained()
    shipped = {n[len("shipped-"):] for n in PRESETS if n.startswith("shipped-")}
    for missing in sorted(set(models) - shipped):
        problems.append(f"{missing}: in the manifest but no shipped-{missing} preset")
    for extra in sorted(shipped - set(models)):
        problems.append(f"shipped-{extra}: no trained model {extra} in the manifest")
    for model_id in sorted(set(models) & shipped):
        entry = models[model_id]
        dataset, want = entry["dataset"], repo.config_of(entry)
        name = f"shipped-{model_id}"
        args = preset_args(name)
        got = config_from(args, SHAPES[family(dataset)])
        ok = True
        if args.dataset != dataset:
            problems.append(f"{name}: dataset {args.dataset}, manifest {dataset}")
            ok = False
        if got != want:
            problems.append(f"{name}: config_from gives {json.dumps(got, sort_keys=True)}, "
                            f"manifest has {json.dumps(want, sort_keys=True)}")
            ok = False
        path = os.path.join(repo.WEIGHTS_DIR, entry["weights"])
        weights_note = "no weights file"
        if os.path.exists(path):
            meta_cfg = json.loads(nets.read_metadata(path).get("config", "null"))
            if meta_cfg != got:
                problems.append(f"{name}: the weights' metadata config {json.dumps(meta_cfg, sort_keys=True)} "
                                f"differs from config_from's")
                ok = False
            model = nets.build(got)
            try:
                model.load_state_dict(nets.load_tensors(path), strict=True)
                weights_note = f"weights load ({sum(t.numel() for t in model.parameters())} parameters)"
            except RuntimeError as e:
                problems.append(f"{name}: weights do not load: {e}")
                ok = False
        if verbose:
            print(f"{'ok  ' if ok else 'FAIL'} {name:34} == manifest config{', == metadata, ' + weights_note if ok else ''}")
    return problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="check the shipped-* presets against the manifest")
    ap.add_argument("--json", action="store_true", help="one JSON object per preset (name, config, params)")
    a = ap.parse_args(argv)
    if a.check:
        problems = check_shipped()
        for p in problems:
            print("problem:", p)
        print(f"check_shipped: {'all ok' if not problems else f'{len(problems)} problem(s)'}")
        sys.exit(1 if problems else 0)
    if not a.json:
        print(f"{'preset':32} {'arch':16} {'dataset':16} {'params':>10}  sizes")
    for name, p in PRESETS.items():
        cfg = preset_config(name)
        n = parameter_count(cfg)
        if a.json:
            print(json.dumps({"preset": name, "dataset": p["dataset"], "params": n, "config": cfg,
                              "note": p["note"], "guessed": p["guessed"]}))
            continue
        sizes = " ".join(f"{k}={v}" for k, v in p["args"].items())
        print(f"{name:32} {p['arch']:16} {p['dataset']:16} {n:10,}  {sizes}")
    if not a.json:
        print("\nguesses (the paper gives no size):")
        for name, p in PRESETS.items():
            if p["guessed"]:
                print(f"  {name}: {p['guessed']}")


if __name__ == "__main__":
    main()
