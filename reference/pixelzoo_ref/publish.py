"""A hub-ready model repository for one of the zoo's models, and its upload.

    python -m pixelzoo_ref.publish ID --out DIR            # write DIR: weights, config.json, README.md, samples.png
    python -m pixelzoo_ref.publish ID --out DIR --push     # and upload DIR to the manifest's hf_repo

DIR holds what the Hugging Face hub expects of a model repository:

- the weights file (`weights/<file>`, its sha256 checked against weights-manifest.toml);
- `config.json`: the architecture, data set and config of the manifest (the hub counts downloads
  by this file);
- `README.md`, the model card, made with huggingface_hub's `ModelCard` / `ModelCardData` /
  `EvalResult` (the library writes the YAML front matter): licence, tags, the hub's data set ids,
  a `model-index` with the test NLL; the body says what the model is, how it was trained (from the
  manifest's [model.training]), how to use it from the zoo, its limits and licence, and shows
  its sample grid;
- `samples.png`: the grid of docs/samples/ID.png.

The card is read back with `ModelCard.load` before anything is written in DIR's place (the library
parses the front matter and validates the eval results; a card it rejects is an error).
`--validate` also sends the card to the hub's own validator (`ModelCard.validate`, needs network).

`--push` creates the repository if needed and uploads DIR with `HfApi.upload_folder` (token from
`HF_TOKEN` or `huggingface-cli login`); it prints the commit, which goes into the manifest as the
entry's `hf_revision` (a commit, never a branch: the zoo pins what it downloads). Only then does
`zoo fetch ID` download from the hub.
"""
import argparse
import hashlib
import json
import os
import shutil
import struct
import sys
import tempfile

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData

from . import repo
from .config import NAMES
from .data import family

REPOSITORY = "https://github.com/pixel-zoo/pixel-zoo"

# The hub's data set ids (the canonical repositories of the torchvision sources the zoo reads).
HUB_DATASETS = {"mnist": "ylecun/mnist", "cifar10": "uoft-cs/cifar10"}
DATASET_NAMES = {
    "mnist-binarized": "Binarized MNIST (static binarization, seed 2017 for the test set)",
    "mnist-thresholded": "Thresholded MNIST (intensity >= 128)",
    "cifar10": "CIFAR-10",
}
# Every card carries these; the architecture adds its own (pixelcnn, or pixelrnn and its name).
COMMON_TAGS = ["autoregressive", "image-generation", "candle", "safetensors"]
TASK = "unconditional-image-generation"

TEMPLATE = """---
{{ card_data }}
---

# {{ model_id }}

{{ what }}

<img src="samples.png" width="320" alt="64 samples of {{ model_id }}">

*64 samples (`zoo sample {{ model_id }} -n 64 --seed 2016`).*

## Evaluation

{{ evaluation }}

## Training

{{ training }}

## Use it from the zoo

The weights are for [pixel-zoo]({{ repository }}), a Rust (Candle) zoo of the PixelRNN family; its
manifest pins this repository's commit and the file's sha256.

```sh
cargo run -p zoo -- sample {{ model_id }} -n 16 -o samples.png  # new images
cargo run -p zoo -- data fetch {{ data_files }}  # the data set, once
cargo run -p zoo -- eval {{ model_id }}  # the test NLL above
cargo run -p zoo -- score {{ model_id }} image.png  # the NLL of your own images
```

```rust
let zoo = pixel_zoo::Zoo::new()?;
let model = zoo.load("{{ model_id }}", &pixel_zoo::Device::Cpu)?; // downloaded, sha256-checked
let nats = model.nll(&images)?; // images: a (b, {{ shape }}) u8 tensor; nats: (b,)
```

`{{ weights }}` is a safetensors file whose tensor names are the PyTorch reference's parameter
names (`reference/pixelzoo_ref` of the zoo) and whose metadata carries the config (`config.json`
here holds the same). Masks are applied when the weights are loaded, not stored in them.

## Limits

{{ limits }}

## Licence

{{ licence }}

## Citation

```bibtex
@inproceedings{oord2016pixel,
  title     = {Pixel Recurrent Neural Networks},
  author    = {van den Oord, A{\\"a}ron and Kalchbrenner, Nal and Kavukcuoglu, Koray},
  booktitle = {Proceedings of the 33rd International Conference on Machine Learning},
  year      = {2016}
}
```
"""


def entry_of(model_id, manifest=repo.MANIFEST):
    models = repo.models(manifest)
    if model_id not in models:
        raise SystemExit(f"unknown model id '{model_id}' (known: {', '.join(models)})")
    if "hf_repo" not in models[model_id]:
        raise SystemExit(f"{model_id}: a third-party checkpoint (no hf_repo): the zoo does not publish it")
    return models[model_id]


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parameter_count(path):
    """Elements of every tensor of a safetensors file (read from its header)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    total = 0
    for name, t in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for d in t["shape"]:
            count *= d
        total += count
    return total


def tags_of(architecture):
    own = ["pixelcnn"] if architecture == "pixelcnn" else ["pixelrnn", architecture]
    return own + COMMON_TAGS


def metric_of(entry):
    """(value, unit, metric name) of the manifest's test figure: bits/dim for CIFAR-10, nats/image else."""
    m = entry["metrics"]
    images = m["test_images"]
    subset = "all 10,000 test images" if images == 10000 else f"the first {images:,} test images"
    if entry["dataset"] == "cifar10":
        return m["test_bits_per_dim"], "bits/dim", f"Test NLL (bits/dim, {subset})"
    return m["test_nll_nats"], "nats/image", f"Test NLL (nats/image, {subset})"


def describe_training(t):
    lines = []
    legs = t.get("legs")
    if legs:
        lines.append(f"{len(legs)} legs (each a start of the run; after the first, each continues from the weights "
                     "the one before ended with):")
        lines.append("")
        for i, leg in enumerate(legs, 1):
            lines.append(f"{i}. from {leg.get('from', 'scratch')}: `{leg['command']}`")
            for key in ("optimizer", "hardware", "validation"):
                if key in leg:
                    lines.append(f"   - {key}: {leg[key]}")
        lines.append("")
    elif "command" in t:
        lines.append(f"`{t['command']}`")
        lines.append("")
    facts = [(k, t[k]) for k in ("trainer", "seed", "optimizer", "ema", "precision", "batch", "steps",
                                 "images_seen", "train_seconds", "hardware", "validation") if k in t]
    for k, v in facts:
        if k == "train_seconds":
            v = f"{v:,.0f} s ({v / 3600:.1f} h)"
        elif isinstance(v, int) and not isinstance(v, bool) and v >= 10000:
            v = f"{v:,}"
        lines.append(f"- {k.replace('_', ' ')}: {v}")
    lines.append("")
    lines.append("Trained by the zoo's PyTorch reference (`reference/pixelzoo_ref/train.py`) on the training set "
                 "only; models were chosen on a validation split carved from the training images, never on the "
                 "test images. The full record is the model's entry in the zoo's `weights-manifest.toml`.")
    return "\n".join(lines)


def card_for(entry, params):
    arch = entry["architecture"]
    dataset = entry["dataset"]
    value, unit, metric_name = metric_of(entry)
    data_files = family(dataset)
    card_data = ModelCardData(
        license="other",
        license_name="mit-or-apache-2.0",
        license_link=REPOSITORY,
        tags=tags_of(arch),
        datasets=[HUB_DATASETS[data_files]],
        pipeline_tag=TASK,
        metrics=["nll"],
        model_name=entry["id"],
        eval_results=[
            EvalResult(
                task_type=TASK,
                task_name="Density estimation (negative log-likelihood)",
                dataset_type=HUB_DATASETS[data_files],
                dataset_name=DATASET_NAMES[dataset],
                dataset_split="test",
                metric_type="nll",
                metric_name=metric_name,
                metric_value=value,
            )
        ],
    )
    cfg = entry["config"]
    shape = f"{cfg.get('channels', 1)}, {cfg.get('height')}, {cfg.get('width')}"
    paper = entry.get("paper")
    m = entry["metrics"]
    what = (
        f"A {NAMES[arch]} (van den Oord, Kalchbrenner, Kavukcuoglu, *Pixel Recurrent Neural "
        f"Networks*, ICML 2016) trained on {DATASET_NAMES[dataset]}: an autoregressive model of "
        f"{cfg.get('height')}x{cfg.get('width')} images with {cfg.get('channels', 1)} channel(s) that gives the exact "
        f"likelihood of an image and draws new ones value by value. {params:,} parameters; the config is in "
        f"`config.json`."
    )
    evaluation = (
        f"Test NLL {value} {unit} "
        f"({m['test_nll_nats'] if unit == 'bits/dim' else m['test_bits_per_dim']} "
        f"{'nats/image' if unit == 'bits/dim' else 'bits/dim'}) on "
        f"{'all 10,000' if m['test_images'] == 10000 else 'the first ' + format(m['test_images'], ',')} test "
        f"images, measured by the zoo itself: `{m['measured_with']}`."
        + (f" The paper's figure for comparison: {paper}." if paper else "")
    )
    limits = (
        "- A small network trained briefly on a CPU (see Training): far from the paper's sizes and figures, and "
        "its samples show it; it is a faithful implementation to build on, not a state-of-the-art model.\n"
        + ("- The CIFAR-10 figure is on the first 1,000 test images (the data the zoo was developed with), good "
           "to about ±0.02 bits/dim of the whole test set; `zoo eval` uses all 10,000 when `zoo data fetch "
           "cifar10` has put them there.\n" if dataset == "cifar10" and m["test_images"] < 10000 else "")
        + ("- Binarized MNIST here is one static binarization with a fixed seed; other binarizations give "
           "slightly different figures.\n" if dataset == "mnist-binarized" else "")
        + "- It models the data set's images only: likelihoods of other kinds of images are not meaningful "
        "as anomaly scores without care, and it has no notion of labels.\n"
        "- Samples are drawn value by value (fast, cached, but still sequential); the Rust sampler is exact "
        "for the model, and the same seed gives the same images only on the same build and machine class."
    )
    dataset_licence = {
        "mnist": "MNIST (Yann LeCun, Corinna Cortes, Christopher J.C. Burges)",
        "cifar10": "CIFAR-10 (Alex Krizhevsky, Vinod Nair, Geoffrey Hinton; "
                   "https://www.cs.toronto.edu/~kriz/cifar.html)",
    }[data_files]
    licence = (
        "The weights, like the zoo's code, are under the MIT licence or the Apache licence 2.0, at your option "
        f"(`MIT OR Apache-2.0`). They were trained on {dataset_licence}; the data set's own terms apply to the "
        "data, not to these weights."
    )
    return ModelCard.from_template(
        card_data,
        template_str=TEMPLATE,
        model_id=entry["id"],
        what=what,
        evaluation=evaluation,
        training=describe_training(entry.get("training", {})),
        repository=REPOSITORY,
        data_files=data_files,
        shape=shape,
        weights=entry["weights"],
        limits=limits,
        licence=licence,
    )


def config_json(entry, params):
    return {
        "model_type": "pixel-zoo",
        "id": entry["id"],
        "architecture": entry["architecture"],
        "dataset": entry["dataset"],
        "weights": entry["weights"],
        "sha256": entry["sha256"],
        "parameters": params,
        "config": entry["config"],
    }


def write_repository(model_id, out, manifest=repo.MANIFEST, weights_dir=repo.WEIGHTS_DIR, samples_dir=repo.SAMPLES_DIR):
    """Writes the hub repository of `model_id` into `out` (which must not exist, or be empty); returns
    the ModelCard, as read back from out/README.md."""
    entry = entry_of(model_id, manifest)
    weights = os.path.join(weights_dir, entry["weights"])
    actual = sha256_of(weights)
    if actual != entry["sha256"]:
        raise SystemExit(f"{weights}: sha256 {actual}, but the manifest says {entry['sha256']}")
    samples = os.path.join(samples_dir, f"{model_id}.png")
    if not os.path.isfile(samples):
        raise SystemExit(f"{samples} is missing: scripts/pictures.sh draws it")
    if os.path.exists(out) and os.listdir(out):
        raise SystemExit(f"{out} exists and is not empty: give a new folder")
    params = parameter_count(weights)
    card = card_for(entry, params)
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    # Written beside, then renamed: a failure leaves no half-made repository.
    tmp = tempfile.mkdtemp(prefix=f".{model_id}-", dir=parent)
    try:
        shutil.copyfile(weights, os.path.join(tmp, entry["weights"]))
        shutil.copyfile(samples, os.path.join(tmp, "samples.png"))
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(config_json(entry, params), f, indent=2)
            f.write("\n")
        card.save(os.path.join(tmp, "README.md"))
        # The library's own reading of the card: front matter parsed, eval results validated.
        loaded = ModelCard.load(os.path.join(tmp, "README.md"), ignore_metadata_errors=False)
        if os.path.exists(out):
            os.rmdir(out)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return loaded


def push(out, repo_id, api=None, private=False):
    """Uploads folder `out` to model repository `repo_id`; returns the commit id."""
    api = api or HfApi()
    api.create_repo(repo_id=repo_id, repo_type="model", exist_ok=True, private=private)
    info = api.upload_folder(
        repo_id=repo_id,
        repo_type="model",
        folder_path=out,
        commit_message=f"{os.path.basename(os.path.abspath(out))}: weights, config and model card (pixel-zoo)",
    )
    return info.oid


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("id", help="model id (weights-manifest.toml)")
    p.add_argument("--out", required=True, help="folder to write (new, or empty)")
    p.add_argument("--push", action="store_true", help="upload the folder to the manifest's hf_repo (network, token)")
    p.add_argument("--repo", help="upload to this repository instead of the manifest's hf_repo")
    p.add_argument("--private", action="store_true", help="create the repository private")
    p.add_argument("--validate", action="store_true",
                   help="also check the card with the hub's validator (ModelCard.validate; network)")
    args = p.parse_args(argv)
    card = write_repository(args.id, args.out)
    print(f"{args.out}: {', '.join(sorted(os.listdir(args.out)))}")
    if args.validate or args.push:
        card.validate(repo_type="model")
        print("model card: accepted by the hub's validator")
    if args.push:
        repo_id = args.repo or entry_of(args.id)["hf_repo"]
        commit = push(args.out, repo_id, private=args.private)
        print(f"uploaded to https://huggingface.co/{repo_id} at commit {commit}")
        print(f"pin it in weights-manifest.toml, in the entry of {args.id}:  hf_revision = \"{commit}\"")
    return 0


if __name__ == "__main__":
    sys.exit(main())
