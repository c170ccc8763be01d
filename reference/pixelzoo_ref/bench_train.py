"""Training speed: images/s of one training step (forward, backward, Adam) per configuration.

    python -m pixelzoo_ref.bench_train --data-dir ../../shared/data                 # the shipped configs
    python -m pixelzoo_ref.bench_train --models diagonal-bilstm-cifar10 --precision fp32 bf16 \\
        --threads 1 2 --batch 16 32 --compile off on

A benchmark, not a test: each cell is the median over --repeats timed windows of --steps steps, after
--warmup steps, on real training images. Configs are the shipped ones (read from
../weights-manifest.toml) or `--config NAME=JSON` for others. Prints a table and, with --json, one
JSON object per cell.
"""
import argparse
import json
import os
import statistics
import time

import numpy as np
import torch

from . import data as D
from . import nets, repo
from .training import conditional, training_step


def time_steps(cfg, images, batch, threads, precision, compiled, steps, warmup, repeats, seed=0):
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = nets.build(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    forward = torch.compile(model) if compiled else model
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    rng = np.random.default_rng(seed)

    def one_step():
        xb = torch.from_numpy(images[rng.integers(0, len(images), batch)])
        # A conditional model's step costs the same whatever the labels: draw them.
        labels = torch.from_numpy(rng.integers(0, cfg["classes"], batch)) if conditional(cfg) else None
        return training_step(model, forward, opt, xb, cfg["head"], autocast, labels).item()

    for _ in range(warmup):
        one_step()
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            one_step()
        rates.append(steps * batch / (time.perf_counter() - t0))
    return statistics.median(rates), sum(p.numel() for p in model.parameters())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=repo.data_dir())
    p.add_argument("--models", nargs="*", default=None, help="shipped ids (default: all)")
    p.add_argument("--config", action="append", default=[], help="NAME=DATASET:JSON config to time besides")
    p.add_argument("--batch", nargs="+", type=int, default=[16])
    p.add_argument("--threads", nargs="+", type=int, default=[1])
    p.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--compile", nargs="+", default=["off"], choices=["off", "on"])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    configs = {mid: (m["dataset"], repo.config_of(m)) for mid, m in repo.trained().items()}
    if args.models is not None:
        configs = {k: configs[k] for k in args.models}
    for spec in args.config:
        name, rest = spec.split("=", 1)
        dataset, js = rest.split(":", 1)
        configs[name] = (dataset, json.loads(js))
    data = {}
    print(f"{'model':32} {'batch':>5} {'thr':>3} {'prec':>5} {'compile':>7} {'img/s':>8} {'params':>9}", flush=True)
    for name, (dataset, cfg) in configs.items():
        if dataset not in data:
            data[dataset] = D.load(dataset, args.data_dir, "train")[:4096]
        for batch in args.batch:
            for threads in args.threads:
                for precision in args.precision:
                    for compiled in args.compile:
                        rate, n = time_steps(cfg, data[dataset], batch, threads, precision, compiled == "on",
                                             args.steps, args.warmup, args.repeats)
                        if args.json:
                            print(json.dumps({"model": name, "batch": batch, "threads": threads,
                                              "precision": precision, "compile": compiled,
                                              "images_per_s": round(rate, 2), "params": n}), flush=True)
                        else:
                            print(f"{name:32} {batch:5} {threads:3} {precision:>5} {compiled:>7} {rate:8.1f} {n:9}",
                                  flush=True)


if __name__ == "__main__":
    main()
