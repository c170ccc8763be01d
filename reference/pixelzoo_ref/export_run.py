"""Export a training run's best weights into the zoo: the weights file, its curves and its record.

    python -m pixelzoo_ref.export_run --id diagonal-bilstm-cifar10 [--train-dir DIR] [--weights-dir ../weights]

Copies the run's `model.safetensors` (the best-validation EMA weights, float32) to
`WEIGHTS_DIR/ID.safetensors` (with `--dtype float16`, its values rounded to float16: half the bytes
in git, for networks whose scores the rounding leaves unchanged; the zoo loads either), adds its
`curves.csv` rows to `DOCS_DIR/curves/ID.csv` (those at image counts the committed curves do not
have yet), and prints the `[model.training]` table for weights-manifest.toml (every leg: command, hardware, start and end,
images, seconds) and the new sha256. The test figure is measured afterwards by the zoo
(`zoo eval ID --json`) and goes into `[model.metrics]`; this script never reads test images.
`update_manifest` writes the record and that figure into the manifest.
"""
import argparse
import hashlib
import json
import os
import shutil
import tempfile

import torch
from safetensors.torch import save_file

from . import nets, repo
from .curves import merge_curves
from .repo import leg_lines, toml_str


DTYPES = {"float32": torch.float32, "float16": torch.float16}


def write_weights(src, dst, dtype):
    """Copy the weights file `src` (float32) to `dst` with its tensors in `dtype` (a key of DTYPES)
    and its metadata unchanged: float32 byte for byte; float16 refuses a value it cannot hold (it
    would become infinite)."""
    if dtype == "float32":
        shutil.copyfile(src, dst)
        return
    meta = nets.read_metadata(src)
    tensors = {}
    for name, t in nets.load_tensors(src).items():
        out = t.to(DTYPES[dtype]).contiguous()
        if not torch.isfinite(out).all():
            raise SystemExit(f"{src}: tensor '{name}' holds values beyond {dtype}'s range "
                             f"(max |x| = {t.abs().max().item():.4g}); export it as float32")
        tensors[name] = out
    save_file(tensors, dst, metadata=meta)


def sha256_of(path):
    """Hex sha256 of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--id", required=True)
    p.add_argument("--train-dir", default=repo.train_dir())
    p.add_argument("--weights-dir", default=repo.WEIGHTS_DIR)
    p.add_argument("--docs-dir", default=repo.DOCS_DIR)
    p.add_argument("--dry-run", action="store_true", help="print the record, copy nothing")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32",
                   help="the exported file's floats (default float32, as trained)")
    a = p.parse_args(argv)
    run = os.path.join(a.train_dir, a.id)
    src = os.path.join(run, "model.safetensors")
    meta = nets.read_metadata(src)
    legs = json.loads(meta.get("legs", "[]"))
    images, seconds = int(meta["images"]), float(meta["train_seconds"])
    dims = 3072 if json.loads(meta["config"])["channels"] == 3 else 784
    valid = float(meta["valid_nll"])
    valid_desc = (f"{valid / dims / 0.6931471805599453:.4f} bits/dim" if dims == 3072 else f"{valid:.2f} nats/image")
    if a.dry_run:
        if a.dtype == "float32":
            print(f"sha256 = {toml_str(sha256_of(src))}")
        else:  # safetensors writes the metadata in no fixed order
            print("# sha256: that of the file written (a rewritten file's bytes are known only then)")
    else:
        dst = os.path.join(a.weights_dir, f"{a.id}.safetensors")
        with tempfile.TemporaryDirectory(dir=a.weights_dir) as tmp:
            out = os.path.join(tmp, "weights.safetensors")
            write_weights(src, out, a.dtype)
            os.replace(out, dst)
        os.makedirs(os.path.join(a.docs_dir, "curves"), exist_ok=True)
        merge_curves(os.path.join(run, "curves.csv"), os.path.join(a.docs_dir, "curves", f"{a.id}.csv"))
        print(f"sha256 = {toml_str(sha256_of(dst))}")
    print("\n[model.training]")
    print('trainer = "reference/pixelzoo_ref/train.py"')
    print(f"seed = {meta['seed']}")
    optimizer = f"{meta['optimizer']}, lr {meta['lr']}, schedule {meta['schedule']}, gradient norm clipped at 1"
    print(f"optimizer = {toml_str(optimizer)}")
    print(f"ema = {meta['ema']}")
    precision = f"{meta['precision']} (autocast; exported {a.dtype})"
    print(f"precision = {toml_str(precision)}")
    print(f"dynamic_binarization = {str(meta.get('dynamic_binarization') == 'True').lower()}")
    print(f"batch = {meta['batch']}")
    print(f"images_seen = {images}")
    print(f"train_seconds = {seconds:.0f}")
    n_valid = meta.get("valid_images", "?")
    validation = (f"EMA weights on the first {n_valid} validation images: {valid:.4f} nats/image ({valid_desc}) "
                  f"at {images} images, the best of the run")
    print(f"validation = {toml_str(validation)}")
    print(f"curves = {toml_str('docs/curves/' + a.id + '.csv')}")
    for leg in legs:
        print("\n[[model.training.legs]]")
        print("\n".join(leg_lines(leg)))


if __name__ == "__main__":
    main()
