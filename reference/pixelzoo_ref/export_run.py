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
import csv
import hashlib
import json
import os
import shutil

from safetensors import safe_open


def toml_str(s):
    return json.dumps(str(s), ensure_ascii=False)


def merge_curves(run_csv, docs_csv):
    """The committed curves plus the run's rows at image counts they do not have yet, in order of
    images: a fine-tune's run holds only its own legs' rows, and a resumed run repeats earlier ones."""
    def rows(path):
        if not os.path.exists(path):
            return None, []
        with open(path, newline="") as f:
            r = list(csv.reader(f))
        return r[0], r[1:]
    header, committed = rows(docs_csv)
    run_header, new = rows(run_csv)
    if header is not None and header != run_header:
        raise SystemExit(f"{docs_csv} has columns {header}, the run's curves {run_header}: merge them by hand")
    at = run_header.index("images")
    seen = {int(r[at]) for r in committed}
    merged = committed + [r for r in new if int(r[at]) not in seen]
    merged.sort(key=lambda r: int(r[at]))
    with open(docs_csv, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([run_header] + merged)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--id", required=True)
    p.add_argument("--train-dir", default=os.environ.get("PIXEL_ZOO_TRAIN_DIR", os.path.expanduser("~/.cache/pixel-zoo/train")))
    p.add_argument("--weights-dir", default="../weights")
    p.add_argument("--docs-dir", default="../docs")
    p.add_argument("--dry-run", action="store_true", help="print the record, copy nothing")
    a = p.parse_args()
    run = os.path.join(a.train_dir, a.id)
    src = os.path.join(run, "model.safetensors")
    with safe_open(src, "pt") as f:
        meta = f.metadata()
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
        for k in ("from", "command", "hardware", "started", "ended", "start_images", "end_images", "start_seconds", "end_seconds"):
            if k in leg:
                v = leg[k]
                print(f"{k} = {v if isinstance(v, (int, float)) else toml_str(v)}")


if __name__ == "__main__":
    main()
