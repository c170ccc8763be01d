"""Training curves: the `curves.csv` that train.py writes in a run's state directory (a row per
validation, COLUMNS), and their committed copies `docs/curves/<model id>.csv`, which export_run
merges a run into and plot_curves and trend read.

The validation figures are on each run's validation subset (`--valid-limit`), so they are close to,
not equal to, the test figures in the manifest.
"""
import csv
import math
import os

COLUMNS = ["step", "images", "train_seconds", "lr", "train_nll", "train_bpd", "valid_nll", "valid_bpd", "leg"]

# The curve of each family of data sets: (column, axis label, title).
FIGURES = {
    "mnist": ("valid_nll", "validation NLL (nats/image)", "binarized MNIST"),
    "cifar10": ("valid_bpd", "validation NLL (bits/dim)", "CIFAR-10"),
}


def dataset_of(model_id, overrides):
    """The family (a key of FIGURES) of a model's curve: from `overrides` (id -> family), else
    from the id (`-mnist` / `-cifar10`, as in the zoo's ids); None when neither says it."""
    if model_id in overrides:
        return overrides[model_id]
    for key in ("cifar10", "mnist"):
        if key in model_id:
            return key
    return None


def read_curve(path, column):
    """(images, hours, value) of the rows with a validation value, in file order."""
    images, hours, values = [], [], []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                v = float(row.get(column) or "nan")
            except ValueError:
                continue
            if math.isnan(v):
                continue
            images.append(float(row["images"]))
            hours.append(float(row["train_seconds"]) / 3600.0)
            values.append(v)
    return images, hours, values


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
