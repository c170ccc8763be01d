"""Where things are: the repository around the reference, the data and training directories, and
weights-manifest.toml (read here; `update_manifest` rewrites an entry's text, in this module's form).

Paths are the repository's, whatever the working directory. `PIXEL_ZOO_DATA` (the zoo's variable
too) overrides the data directory (default: `shared/data` beside the repository),
`PIXEL_ZOO_TRAIN_DIR` the training directory (default `~/.cache/pixel-zoo/train`).
"""
import json
import os
import tomllib

REFERENCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(REFERENCE)
MANIFEST = os.path.join(ROOT, "weights-manifest.toml")
WEIGHTS_DIR = os.path.join(ROOT, "weights")
DOCS_DIR = os.path.join(ROOT, "docs")
CURVES_DIR = os.path.join(DOCS_DIR, "curves")
SAMPLES_DIR = os.path.join(DOCS_DIR, "samples")
FIXTURES_DIR = os.path.join(ROOT, "tests", "fixtures")


def data_dir():
    """The data directory: $PIXEL_ZOO_DATA, or shared/data beside the repository."""
    return os.environ.get("PIXEL_ZOO_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))


def train_dir():
    """Where training runs keep their state, one directory per run: $PIXEL_ZOO_TRAIN_DIR, or
    ~/.cache/pixel-zoo/train."""
    return os.environ.get("PIXEL_ZOO_TRAIN_DIR", os.path.expanduser("~/.cache/pixel-zoo/train"))


def models(manifest=MANIFEST):
    """The manifest's [[model]] entries by id, in the file's order."""
    with open(manifest, "rb") as f:
        return {m["id"]: m for m in tomllib.load(f)["model"]}


def trained(manifest=MANIFEST):
    """The entries of the models this reference trained, by id: all but the third-party checkpoint,
    the one without an `hf_repo`."""
    return {mid: m for mid, m in models(manifest).items() if "hf_repo" in m}


def config_of(entry):
    """A manifest entry's config, with its architecture (the form nets.build takes)."""
    return dict(entry["config"], architecture=entry["architecture"])


# The keys of a [[model.training.legs]] table, in the manifest's order.
LEG_KEYS = ("from", "command", "hardware", "optimizer", "started", "ended", "start_images", "end_images",
            "start_seconds", "end_seconds", "validation")


def toml_str(s):
    """`s` as a TOML basic string."""
    return json.dumps(str(s), ensure_ascii=False)


def toml_value(v):
    return str(v).lower() if isinstance(v, bool) else v if isinstance(v, (int, float)) else toml_str(v)


def leg_lines(leg):
    """The `key = value` lines of a leg's table (its keys of LEG_KEYS, in that order)."""
    return [f"{k} = {toml_value(leg[k])}" for k in LEG_KEYS if k in leg]
