"""Plot the committed training curves: docs/curves/*.csv -> docs/curves-mnist.png, docs/curves-cifar10.png.

    cd reference && PYTHONPATH=. python -m pixelzoo_ref.plot_curves
    python -m pixelzoo_ref.plot_curves --curves-dir /tmp/curves --out-dir /tmp/plots

Each CSV is one model's curves.csv from train.py (columns step, images, train_seconds, lr,
train_nll, train_bpd, valid_nll, valid_bpd, leg), named <model id>.csv. The data set comes from the
id (`-mnist` / `-cifar10`, as in the zoo's ids), or from --dataset ID=mnist|cifar10. For each data
set one PNG with two panels side by side: validation NLL (nats/image for MNIST, bits/dim for
CIFAR-10) against images seen and against training hours; one line per model. Rows without a
validation value are skipped. The validation figures are on each run's validation subset
(`--valid-limit`), so they are close to, not equal to, the test figures in the manifest.
"""
import argparse
import glob
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from . import repo  # noqa: E402
from .curves import FIGURES, dataset_of, read_curve  # noqa: E402

def plot(curves, dataset, out_path, width_px, height_px, ymax=None, dpi=100):
    column, ylabel, title = FIGURES[dataset]
    fig, (ax_img, ax_hours) = plt.subplots(1, 2, figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    for model_id, path in sorted(curves):
        images, hours, values = read_curve(path, column)
        if not values:
            print(f"{path}: no validation rows, left out")
            continue
        style = dict(marker="." if len(values) < 30 else None, linewidth=1.2, label=model_id)
        ax_img.plot(images, values, **style)
        ax_hours.plot(hours, values, **style)
    ax_img.set_xlabel("training images seen")
    ax_hours.set_xlabel("training hours")
    for ax in (ax_img, ax_hours):
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=8)
    if ymax is not None:  # early validations can dwarf the rest
        for ax in (ax_img, ax_hours):
            ax.set_ylim(top=ymax)
    ax_img.ticklabel_format(axis="x", style="sci", scilimits=(0, 3))
    ax_img.legend(fontsize=8)
    fig.suptitle(f"{title}: validation NLL during training", fontsize=10)
    fig.tight_layout()
    fig.savefig(out_path, dpi=dpi)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--curves-dir", default=repo.CURVES_DIR)
    p.add_argument("--out-dir", default=repo.DOCS_DIR)
    p.add_argument("--dataset", action="append", default=[], metavar="ID=mnist|cifar10",
                   help="the data set of a curve whose id does not say it")
    p.add_argument("--ymax", action="append", default=[], metavar="mnist|cifar10=VALUE",
                   help="top of the y axis for a data set, e.g. --ymax mnist=120 --ymax cifar10=6")
    p.add_argument("--width", type=int, default=1000, help="pixels")
    p.add_argument("--height", type=int, default=400, help="pixels")
    a = p.parse_args(argv)
    overrides = dict(s.split("=", 1) for s in a.dataset)
    ymax = {k: float(v) for k, v in (s.split("=", 1) for s in a.ymax)}
    by_dataset = {k: [] for k in FIGURES}
    files = sorted(glob.glob(os.path.join(a.curves_dir, "*.csv")))
    if not files:
        raise SystemExit(f"no *.csv in {a.curves_dir}")
    for path in files:
        model_id = os.path.splitext(os.path.basename(path))[0]
        ds = dataset_of(model_id, overrides)
        if ds not in FIGURES:
            print(f"{path}: data set unknown (give --dataset {model_id}=mnist|cifar10), left out")
            continue
        by_dataset[ds].append((model_id, path))
    os.makedirs(a.out_dir, exist_ok=True)
    for ds, curves in by_dataset.items():
        if not curves:
            continue
        out = os.path.join(a.out_dir, f"curves-{ds}.png")
        plot(curves, ds, out, a.width, a.height, ymax.get(ds))
        print(f"{out}: {len(curves)} model(s): {', '.join(m for m, _ in sorted(curves))}")


if __name__ == "__main__":
    main()
