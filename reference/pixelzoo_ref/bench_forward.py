"""Forward speed of the shipped models in PyTorch: the reference side of a comparison with the zoo (Candle).

    cd reference && PYTHONPATH=. python -m pixelzoo_ref.bench_forward                  # the 8 trained models
    python -m pixelzoo_ref.bench_forward --models pixelcnn-mnist row-lstm-cifar10 --threads 1 --json

For each model: ../weights/ID.safetensors loaded into nets.build(config) (config from the file's
metadata, which the manifest's equals; the weights are stored already masked, and the modules mask
them again, which changes nothing), then the forward pass (all logits of a batch, as `zoo eval`
computes them) on `--batch` (16) real test images: binarized MNIST test images statically binarized
as data.load does (thresholded for mnist-thresholded), or the first CIFAR-10 test images. float32,
torch.inference_mode, `--threads` intra-op threads (default 2); the median (and min) of `--repeats`
(5) timed passes after `--warmup` (1). The NLL of the batch is printed too, as a check that the
weights loaded: it should be close to the manifest's test figure. A benchmark, not a test.
"""
import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import torch

from . import data as D
from . import nets, repo
from .nets.layers import nll_per_image


def time_forward(model, x, warmup, repeats):
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        for _ in range(repeats):
            t0 = time.perf_counter()
            logits = model(x)
            times.append(time.perf_counter() - t0)
    return times, logits


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=None, help="model ids (default: the trained ones in the manifest)")
    p.add_argument("--data-dir", default=repo.data_dir())
    p.add_argument("--weights-dir", default=repo.WEIGHTS_DIR)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", action="store_true", help="one JSON object per model instead of the table")
    a = p.parse_args(argv)

    torch.set_num_threads(a.threads)
    models = repo.models()
    ids = a.models or list(repo.trained())
    for mid in ids:
        if mid not in models:
            p.error(f"unknown model {mid}; the manifest has {', '.join(models)}")
    if not a.json:
        print(f"PyTorch {torch.__version__}, {a.threads} thread(s), {platform.machine()}, float32, batch {a.batch}, "
              f"median of {a.repeats} after {a.warmup} warm-up", flush=True)
        print(f"{'model':32} {'ms':>9} {'min ms':>9} {'img/s':>8} {'nll/img':>10} {'params':>9}", flush=True)
    data = {}
    for mid in ids:
        dataset = models[mid]["dataset"]
        path = os.path.join(a.weights_dir, models[mid]["weights"])
        if not os.path.exists(path):
            print(f"{mid}: {path} missing, skipped", flush=True)
            continue
        if dataset not in data:
            data[dataset] = D.load(dataset, a.data_dir, "test")
        x = torch.from_numpy(np.ascontiguousarray(data[dataset][: a.batch]))
        model, cfg = nets.load(path)
        times, logits = time_forward(model, x, a.warmup, a.repeats)
        nll = nll_per_image(logits.float(), x, cfg["head"]).mean().item()
        ms, ms_min = 1000 * statistics.median(times), 1000 * min(times)
        params = sum(t.numel() for t in model.parameters())
        if a.json:
            print(json.dumps({"model": mid, "impl": "pytorch", "torch": torch.__version__, "threads": a.threads,
                              "batch": len(x), "repeats": a.repeats, "ms": round(ms, 3), "ms_min": round(ms_min, 3),
                              "images_per_s": round(len(x) / (ms / 1000), 2), "nll_nats": round(nll, 4),
                              "params": params}), flush=True)
        else:
            print(f"{mid:32} {ms:9.2f} {ms_min:9.2f} {len(x) / (ms / 1000):8.1f} {nll:10.3f} {params:9}", flush=True)


if __name__ == "__main__":
    main()
