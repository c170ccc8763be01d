"""Where each training run is heading: a power-law fit to its validation curve.

    cd reference && PYTHONPATH=. python -m pixelzoo_ref.trend
    python -m pixelzoo_ref.trend --curves-dir ~/.cache/pixel-zoo/train/diagonal-bilstm-cifar10 --from 0.4
    python -m pixelzoo_ref.trend --markdown --target row-lstm-mnist=83.6   # a table for the docs

Reads the committed curves (docs/curves/<id>.csv, the same files plot_curves draws) or, with
--curves-dir, every curves.csv / <id>.csv below a folder, and fits

    valid(images) = a + b * images^-c        (b > 0, 0 < c <= 3)

to the validation points from the fraction --from of the run's images onward, by least squares
(a and b linear for each c on a fine grid of c). It prints, per model: the last validation figure,
the recent gain per 16,000 images (from the fit's slope at the end), the fitted asymptote `a` and the
fit's value at 1.5x and 2x the images seen so far, with the images (and hours at the run's recent
speed) the fit needs to reach --target ID=VALUE if it reaches it at all.

This is an extrapolation under the run's own schedule (the learning rate halves every 500,000 images
in the shipped recipe), not a promise: a bigger model, a new schedule or more data change the curve.
The figures are on each run's validation subset, so they are close to, not equal to, the test figures.
"""
import argparse
import glob
import os

import numpy as np

from . import repo
from .curves import FIGURES, dataset_of, read_curve


C_GRID = np.linspace(0.02, 3.0, 600)


def fit_power_law(images, values):
    """Least-squares a + b * n^-c over a grid of c; returns (a, b, c, rms) or None."""
    images = np.asarray(images, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if len(images) < 3 or np.ptp(images) <= 0:
        return None
    scale = images.max()
    x = images / scale
    best = None
    for c in C_GRID:
        basis = x ** -c
        design = np.stack([np.ones_like(basis), basis], axis=1)
        (a, b), *_ = np.linalg.lstsq(design, values, rcond=None)
        if b <= 0:
            continue
        rms = float(np.sqrt(np.mean((design @ np.array([a, b]) - values) ** 2)))
        if best is None or rms < best[3]:
            best = (float(a), float(b) * scale ** c, float(c), rms)
    return best


def evaluate(fit, images):
    a, b, c, _ = fit
    return a + b * images ** -c


def images_to_reach(fit, target):
    """Images at which the fit reaches target, or None if its asymptote is above it."""
    a, b, c, _ = fit
    if target <= a:
        return None
    return (b / (target - a)) ** (1.0 / c)


def describe(model_id, rows, start_fraction, target=None):
    """rows: (images, valid, train_seconds) of the validation points, in file order."""
    images = np.array([r[0] for r in rows])
    values = np.array([r[1] for r in rows])
    seconds = np.array([r[2] for r in rows])
    keep = images >= start_fraction * images.max()
    fit = fit_power_law(images[keep], values[keep])
    last_images, last_value = images[-1], values[-1]
    out = {"id": model_id, "images": int(last_images), "valid": float(last_value),
           "points": int(keep.sum()), "fit": fit}
    if fit is None:
        return out
    a, b, c, rms = fit
    out["gain_per_16k"] = float(b * c * last_images ** (-c - 1) * 16000)
    out["at_1_5x"] = float(evaluate(fit, 1.5 * last_images))
    out["at_2x"] = float(evaluate(fit, 2.0 * last_images))
    # recent speed: images per training second over the last quarter of the kept points
    tail = np.nonzero(keep)[0]
    tail = tail[len(tail) * 3 // 4:] if len(tail) >= 4 else tail
    if len(tail) >= 2 and seconds[tail[-1]] > seconds[tail[0]]:
        out["images_per_s"] = float((images[tail[-1]] - images[tail[0]]) /
                                    (seconds[tail[-1]] - seconds[tail[0]]))
    if target is not None:
        needed = images_to_reach(fit, target)
        out["target"] = target
        out["images_to_target"] = None if needed is None else float(needed)
    return out


def format_line(d, unit):
    if d.get("fit") is None:
        return f"{d['id']}: {d['points']} validation points, too few to fit"
    a, b, c, rms = d["fit"]
    text = (f"{d['id']}: valid {d['valid']:.4f} {unit} at {d['images']:,} images; "
            f"fit a + b*n^-{c:.2f} (rms {rms:.4f}, {d['points']} points): asymptote {a:.3f}, "
            f"gain {d['gain_per_16k']:.4f} per 16,000 images now, "
            f"{d['at_1_5x']:.3f} at 1.5x and {d['at_2x']:.3f} at 2x the images")
    if c <= C_GRID[0] + 1e-9 or c >= C_GRID[-1] - 1e-9:
        text += " [c at the edge of its grid: the curve is too flat or too short for an asymptote]"
    if "target" in d:
        needed = d["images_to_target"]
        if needed is None:
            text += f"; never reaches {d['target']} under this curve"
        else:
            text += f"; reaches {d['target']} at about {needed:,.0f} images"
            speed = d.get("images_per_s")
            if speed and needed > d["images"]:
                text += f" ({(needed - d['images']) / speed / 3600:.1f} more hours at {speed:.1f} img/s)"
    return text


MARKDOWN_HEADER = (
    "| model | valid now | images | fit | asymptote | gain per 16,000 images | at 2× the images "
    "| target (valid) | images to target | hours more |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")


def format_row(d):
    """One Markdown table row (the columns of MARKDOWN_HEADER) for a description."""
    cells = [f"`{d['id']}`", f"{d['valid']:.4g}", f"{d['images']:,}"]
    if d.get("fit") is None:
        return "| " + " | ".join(cells + ["too few points"] + [""] * 6) + " |"
    a, b, c, rms = d["fit"]
    cells += [f"n^-{c:.2f}", f"{a:.4g}", f"{d['gain_per_16k']:.3g}", f"{d['at_2x']:.4g}"]
    if "target" not in d:
        cells += ["", "", ""]
    elif d["images_to_target"] is None:
        cells += [f"{d['target']:g}", "never (asymptote above)", ""]
    else:
        needed = d["images_to_target"]
        speed = d.get("images_per_s")
        more = max(needed - d["images"], 0.0)
        hours = f"{more / speed / 3600:.1f} at {speed:.0f} img/s" if speed else ""
        cells += [f"{d['target']:g}", f"{needed:,.0f}", hours]
    return "| " + " | ".join(cells) + " |"


def find_curves(curves_dir):
    paths = sorted(glob.glob(os.path.join(curves_dir, "*.csv")))
    paths += sorted(glob.glob(os.path.join(curves_dir, "*", "curves.csv")))
    found = []
    for path in paths:
        name = os.path.basename(path)
        model_id = (os.path.basename(os.path.dirname(path)) if name == "curves.csv"
                    else name[:-len(".csv")])
        found.append((model_id, path))
    return found


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--curves-dir", default=repo.CURVES_DIR)
    p.add_argument("--from", dest="start", type=float, default=0.4,
                   help="fit the points from this fraction of the run's images onward (default 0.4)")
    p.add_argument("--target", action="append", default=[], metavar="ID=VALUE",
                   help="validation figure to project for a model (repeatable)")
    p.add_argument("--dataset", action="append", default=[], metavar="ID=mnist|cifar10")
    p.add_argument("--markdown", action="store_true",
                   help="print a Markdown table (for docs/training.md) instead of sentences")
    args = p.parse_args(argv)
    targets = {}
    for item in args.target:
        model_id, _, value = item.partition("=")
        targets[model_id] = float(value)
    overrides = dict(item.partition("=")[::2] for item in args.dataset)
    found = find_curves(os.path.expanduser(args.curves_dir))
    if not found:
        raise SystemExit(f"no curve CSVs in {args.curves_dir}")
    if args.markdown:
        print(MARKDOWN_HEADER)
    for model_id, path in found:
        dataset = dataset_of(model_id, overrides)
        if dataset is None:
            print(f"{model_id}: unknown data set; pass --dataset {model_id}=mnist|cifar10")
            continue
        column, _, _ = FIGURES[dataset]
        images, hours, values = read_curve(path, column)
        rows = [(n, v, h * 3600.0) for n, h, v in zip(images, hours, values)]
        if not rows:
            print(f"{model_id}: no validation points in {path}")
            continue
        unit = "nats/image" if dataset == "mnist" else "bits/dim"
        described = describe(model_id, rows, args.start, targets.get(model_id))
        print(format_row(described) if args.markdown else format_line(described, unit))


if __name__ == "__main__":
    main()
