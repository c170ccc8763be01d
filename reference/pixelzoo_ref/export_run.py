"""Export a training run's best weights into the zoo: the weights file, its curves and its record.

    python -m pixelzoo_ref.export_run --id diagonal-bilstm-cifar10 [--train-dir DIR] [--weights-dir ../weights]

Copies the run's `model.safetensors` (the best-validation EMA weights, float32) to
`WEIGHTS_DIR/ID.safetensors`, adds its `curves.csv` rows to `DOCS_DIR/curves/ID.csv` (those at image
counts the committed curves do not have yet), and prints the
`[model.training]` table for weights-manifest.toml (every leg: command, hardware, start and end,
images, seconds) and the new sha256. The test figure is measured afterwards by the zoo
(`zoo eval ID --json`) and goes into `[model.metrics]`; this script never reads test images.
`update_manifest` writes the record and that figure into the manifest.
"""
import argparse
import hashlib
import json
import os
import shutil

from . import nets, repo
from .curves import merge_curves
from .repo import leg_lines, toml_str


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--id", required=True)
    p.add_argument("--train-dir", default=repo.train_dir())
    p.add_argument("--weights-dir", default=repo.WEIGHTS_DIR)
    p.add_argument("--docs-dir", default=repo.DOCS_DIR)
    p.add_argument("--dry-run", action="store_true", help="print the record, copy nothing")
    a = p.parse_args()
    run = os.path.join(a.train_dir, a.id)
    src = os.path.join(run, "model.safetensors")
    meta = nets.read_metadata(src)
    legs = json.loads(meta.get("legs", "[]"))
    images, seconds = int(meta["images"]), float(meta["train_seconds"])
    dims = 3072 if json.loads(meta["config"])["channels"] == 3 else 784
    valid = float(meta["valid_nll"])
    valid_desc = (f"{valid / dims / 0.6931471805599453:.4f} bits/dim" if dims == 3072 else f"{valid:.2f} nats/image")
    digest = hashlib.sha256(open(src, "rb").read()).hexdigest()
    if not a.dry_run:
        os.makedirs(os.path.join(a.docs_dir, "curves"), exist_ok=True)
        shutil.copyfile(src, os.path.join(a.weights_dir, f"{a.id}.safetensors"))
        merge_curves(os.path.join(run, "curves.csv"), os.path.join(a.docs_dir, "curves", f"{a.id}.csv"))
    print(f"sha256 = {toml_str(digest)}")
    print("\n[model.training]")
    print('trainer = "reference/pixelzoo_ref/train.py"')
    print(f"seed = {meta['seed']}")
    optimizer = f"{meta['optimizer']}, lr {meta['lr']}, schedule {meta['schedule']}, gradient norm clipped at 1"
    print(f"optimizer = {toml_str(optimizer)}")
    print(f"ema = {meta['ema']}")
    print(f"precision = {toml_str(meta['precision'] + ' (autocast; exported float32)')}")
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
