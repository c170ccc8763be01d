"""The zoo (Candle) against PyTorch on the CPU, in one run: the forward pass of a batch and `eval`
throughput, for the same weights, images, dtype (float32) and thread count.

    cargo build --release -p zoo
    cd reference && PYTHONPATH=. python -m pixelzoo_ref.bench_compare                 # every trained model
    python -m pixelzoo_ref.bench_compare --models pixelcnn-cifar10 --eval-images 200 --markdown

Per model, measured one after the other on this machine:
- forward: `zoo bench ID --forward-only --json` (the median of --repeats passes of a --batch of
  images, the batch split over the threads as the zoo's commands do) against `bench_forward`'s
  `torch.inference_mode` forward of the same batch with `--threads` intra-op threads;
- eval: the wall-clock of `zoo eval ID --limit N --batch B` (the process, including loading the
  weights and the data) against the same NLL loop in PyTorch with the loading of its weights (the
  test images are read once beforehand, off the clock: the comparison leans PyTorch's way by the
  zoo's start-up and data reading, 0.06-0.09 s on these machines), in images/s.

Each comparison is made in --rounds (forward, 7) and --eval-rounds (3) rounds, each round one
measurement of each side, back to back (the side that goes first alternates); a round's ratio is
PyTorch's time over the zoo's, and the figure reported is the median of the rounds' ratios, with
their range. The machines are shared and noisy: a load that comes and goes hits both sides of a
round alike, and the median over rounds discards the rounds it hit unevenly. The times reported
are each side's median over the rounds.

Ratios > 1 mean the zoo is faster. A benchmark, not a test.
"""
import statistics
import argparse
import json
import os
import platform
import subprocess
import time

import numpy as np
import torch

from . import data as D
from . import nets, repo
from .bench_forward import time_forward
from .nets.layers import nll_per_image


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def zoo_forward_ms(zoo, mid, batch, repeats, env):
    out = subprocess.run([zoo, "bench", mid, "--forward-only", "--json", "--batch", str(batch), "--reps", str(repeats)],
                         env=env, capture_output=True, text=True, check=True).stdout
    return 1000 * json.loads(out)[0]["forward_s"]


def zoo_eval(zoo, mid, n, batch, env):
    t0 = time.perf_counter()
    out = subprocess.run([zoo, "eval", mid, "--limit", str(n), "--batch", str(batch), "--json"],
                         env=env, capture_output=True, text=True, check=True).stdout
    seconds = time.perf_counter() - t0
    return seconds, json.loads(out)


def torch_eval(path, images, batch):
    t0 = time.perf_counter()
    model, cfg = nets.load(path)
    total = 0.0
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch]))
            total += nll_per_image(model(x).float(), x, cfg["head"]).double().sum().item()
    return time.perf_counter() - t0, total / len(images)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=None)
    p.add_argument("--zoo", default=os.path.join(repo.ROOT, "target", "release", "zoo"))
    p.add_argument("--data-dir", default=repo.data_dir())
    p.add_argument("--weights-dir", default=repo.WEIGHTS_DIR)
    p.add_argument("--batch", type=int, default=16, help="forward pass: images per batch")
    p.add_argument("--eval-images", type=int, default=1000, help="eval: test images (0 = skip eval)")
    p.add_argument("--eval-batch", type=int, default=50, help="eval: images per batch (zoo eval's default)")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--repeats", type=int, default=5, help="forward passes per measurement (their median)")
    p.add_argument("--rounds", type=int, default=7, help="forward: rounds of one measurement per side")
    p.add_argument("--eval-rounds", type=int, default=3, help="eval: rounds of one run per side")
    p.add_argument("--markdown", action="store_true", help="a Markdown table (for docs/performance.md)")
    a = p.parse_args(argv)
    if not os.path.exists(a.zoo):
        p.error(f"{a.zoo} not found: build it with `cargo build --release -p zoo`, or pass --zoo")

    torch.set_num_threads(a.threads)
    env = dict(os.environ, PIXEL_ZOO_DATA=a.data_dir, PIXEL_ZOO_WEIGHTS_DIR=a.weights_dir)
    # The zoo's bench splits the batch over every core and eval runs each product on every core:
    # compare at the machine's core count only.
    if a.threads != os.cpu_count():
        p.error(f"--threads {a.threads}: the zoo uses all {os.cpu_count()} cores; compare at --threads {os.cpu_count()}")
    models = repo.models()
    ids = a.models or list(repo.trained())
    data = {}
    rows = []
    for mid in ids:
        m = models[mid]
        path = os.path.join(a.weights_dir, m["weights"])
        if m["dataset"] not in data:
            data[m["dataset"]] = D.load(m["dataset"], a.data_dir, "test")
        images = data[m["dataset"]]
        model, _ = nets.load(path)
        x = torch.from_numpy(np.ascontiguousarray(images[: a.batch]))
        forward = []  # (zoo ms, torch ms) per round
        for r in range(a.rounds):
            def torch_side():
                times, _ = time_forward(model, x, 1, a.repeats)
                return 1000 * sorted(times)[len(times) // 2]
            def zoo_side():
                return zoo_forward_ms(a.zoo, mid, a.batch, a.repeats, env)
            if r % 2 == 0:
                z = zoo_side(); t = torch_side()
            else:
                t = torch_side(); z = zoo_side()
            forward.append((z, t))
        ratios = [t / z for z, t in forward]
        row = {"model": mid, "rounds": a.rounds,
               "zoo_forward_ms": round(statistics.median(z for z, _ in forward), 2),
               "torch_forward_ms": round(statistics.median(t for _, t in forward), 2),
               "forward_ratio": round(statistics.median(ratios), 3),
               "forward_ratio_range": [round(min(ratios), 3), round(max(ratios), 3)]}
        if a.eval_images:
            n = min(a.eval_images, len(images))
            evals = []  # (zoo s, torch s) per round
            for r in range(a.eval_rounds):
                if r % 2 == 0:
                    zoo_s, zoo_json = zoo_eval(a.zoo, mid, n, a.eval_batch, env)
                    torch_s, torch_nll = torch_eval(path, images[:n], a.eval_batch)
                else:
                    torch_s, torch_nll = torch_eval(path, images[:n], a.eval_batch)
                    zoo_s, zoo_json = zoo_eval(a.zoo, mid, n, a.eval_batch, env)
                evals.append((zoo_s, torch_s))
            eratios = [t / z for z, t in evals]
            row.update({"eval_images": n, "eval_rounds": a.eval_rounds,
                        "zoo_eval_img_s": round(n / statistics.median(z for z, _ in evals), 1),
                        "torch_eval_img_s": round(n / statistics.median(t for _, t in evals), 1),
                        "eval_ratio": round(statistics.median(eratios), 3),
                        "eval_ratio_range": [round(min(eratios), 3), round(max(eratios), 3)],
                        "zoo_nll": round(zoo_json["nll_nats_per_image"], 4), "torch_nll": round(torch_nll, 4)})
        rows.append(row)
        if not a.markdown:
            print(json.dumps(row), flush=True)
    head = (f"{cpu_model()}, {a.threads} threads, float32; forward: batch {a.batch}, median of {a.repeats} passes "
            f"per measurement, {a.rounds} rounds; eval: {a.eval_images} test images in batches of {a.eval_batch}, "
            f"wall-clock with loading, {a.eval_rounds} rounds; ratios: the median of the rounds' (range); "
            f"PyTorch {torch.__version__}")
    if a.markdown:
        print(head + "\n")
        print("| model | forward zoo (ms) | forward PyTorch (ms) | zoo faster by (range) | eval zoo (img/s) | eval PyTorch (img/s) | zoo faster by (range) |")
        print("| --- | --- | --- | --- | --- | --- | --- |")

        def ratio(r, key):
            if key not in r:
                return "–"
            lo, hi = r[key + "_range"]
            return f"{r[key]:.2f}× ({lo:.2f}–{hi:.2f})"
        for r in rows:
            print(f"| `{r['model']}` | {r['zoo_forward_ms']:.1f} | {r['torch_forward_ms']:.1f} | {ratio(r, 'forward_ratio')} | "
                  f"{r.get('zoo_eval_img_s', '–')} | {r.get('torch_eval_img_s', '–')} | {ratio(r, 'eval_ratio')} |")
    else:
        print(head)


if __name__ == "__main__":
    main()
