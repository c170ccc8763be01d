"""Train the paper-size models on a GPU: one command, a total time budget split over the models.

    cd reference && PYTHONPATH=. python -m pixelzoo_ref.train_gpu --time-budget 36000 \\
        --data-dir /data/pixel-zoo --export-dir ~/pixel-zoo-gpu-weights

For each preset (default: the three CIFAR-10 paper presets, then the three MNIST ones; see
`python -m pixelzoo_ref.presets`) it runs `python -m pixelzoo_ref.train --preset NAME` in a
subprocess, one after the other, with the GPU settings below, then copies the run's best-validation
export `model.safetensors` to `EXPORT_DIR/NAME.safetensors` and checks that its metadata holds the
preset's config. The run's state (checkpoint.pt, curves.csv, model.safetensors) stays in
`TRAIN_DIR/NAME` (default `$PIXEL_ZOO_TRAIN_DIR/NAME`, i.e. `~/.cache/pixel-zoo/train/NAME`).

Settings: `--device cuda --precision bf16`, Adam, the `half-life` schedule (the lr halves every
`--lr-half-life` images; it depends only on the images seen), `--warmup` steps, an EMA of the
weights (`--ema`, validated and exported), GPU batch sizes (`--batch` overrides), `--resume`:
running the same command again continues every model where it stopped, for another leg of its share
of the budget. Unknown options are passed on to train.py (e.g. `--compile`, `--valid-limit 1000`).

Time: each model gets `--time-budget / number of models` seconds of *training* (train.py's
`--time-budget`; with `half-life` it is the length of this leg, not of the whole run: with the
`cosine` schedule it would instead shape the decay over the whole run). Start-up, data loading and
validation come on top, so the wall time is somewhat longer than the budget.

Several GPUs of one host: `--gpus N` runs each train.py under `torchrun --standalone
--nproc-per-node N` (DistributedDataParallel, one process per GPU); the default batch is then the
per-GPU batch below times N (`--batch` gives the global batch).

On the CPU (a smoke test): `--device cpu --batch 2 --threads 1 --valid-limit 4 --time-budget 120`.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

from . import nets, repo
from . import presets as P
from .data import family

# Batch sizes for a large GPU (the paper used 16 on one GPU for MNIST and CIFAR-10). The recurrent
# models advance one row / diagonal at a time, so their speed is bounded by kernel launches and
# grows almost linearly with the batch; 64 keeps the steps many enough for a few-hour budget.
GPU_BATCH = {"cifar10": 64, "mnist": 128}


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)  # so that train.py options pass through untouched
    p.add_argument("--time-budget", type=float, required=True,
                   help="seconds of training in all, split evenly over the models")
    p.add_argument("--presets", "--models", nargs="+", default=P.PAPER_CIFAR10 + P.PAPER_MNIST,
                   help="preset names (default: the CIFAR-10 paper presets, then the MNIST ones)")
    p.add_argument("--data-dir", default=repo.data_dir())
    p.add_argument("--train-dir", default=repo.train_dir(),
                   help="state directories go in TRAIN_DIR/NAME")
    p.add_argument("--export-dir", default=None, help="where NAME.safetensors copies go (default TRAIN_DIR/export)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    p.add_argument("--batch", type=int, default=0, help="the global batch; 0 = per data set and GPU: "
                   + ", ".join(f"{k} {v}" for k, v in GPU_BATCH.items()) + ", times --gpus")
    p.add_argument("--gpus", type=int, default=1, help="processes (GPUs) per run: > 1 launches train.py under torchrun")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-half-life", type=float, default=5e6,
                   help="images per halving of the lr (openai/pixel-cnn's 0.999995 per step at batch 128 is ~18M); "
                        "for about k halvings in a run of R images/s for T s, use R*T/k")
    p.add_argument("--warmup", type=int, default=200, help="steps of linear warm-up when the optimizer starts fresh")
    p.add_argument("--ema", type=float, default=0.9995)
    p.add_argument("--eval-every", type=int, default=1000, help="steps")
    p.add_argument("--valid-limit", type=int, default=0, help="0 = the whole validation split")
    p.add_argument("--checkpoint-minutes", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="CPU threads per run (0 = torch's default)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args, extra = p.parse_known_args(argv)
    for name in args.presets:
        try:
            P.get(name)
        except ValueError as e:
            p.error(str(e))
    args.extra = extra
    if args.export_dir is None:
        args.export_dir = os.path.join(args.train_dir, "export")
    return args


def gpu_description(device):
    """The accelerator's name (checked in a subprocess, so this process holds no CUDA context)."""
    if not device.startswith("cuda"):
        return None
    code = ("import torch, sys\n"
            "if not torch.cuda.is_available(): sys.exit('no CUDA device visible to torch ' + torch.__version__)\n"
            "d = torch.device(sys.argv[1]); i = d.index or 0\n"
            "pr = torch.cuda.get_device_properties(i)\n"
            "print(f'{pr.name}, {pr.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}')\n")
    r = subprocess.run([sys.executable, "-c", code, device], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"--device {device}: {(r.stderr or r.stdout).strip()}")
    return r.stdout.strip()


def train_command(args, name, budget, hardware):
    dataset = P.get(name)["dataset"]
    batch = args.batch or GPU_BATCH[family(dataset)] * args.gpus
    launch = [sys.executable]
    if args.gpus > 1:
        launch += ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(args.gpus)]
    cmd = launch + ["-m", "pixelzoo_ref.train", "--preset", name,
                    "--out", os.path.join(args.train_dir, name), "--data-dir", args.data_dir,
                    "--device", args.device, "--precision", args.precision,
                    "--batch", str(batch), "--optimizer", "adam", "--lr", str(args.lr),
                    "--schedule", "half-life", "--lr-half-life", str(args.lr_half_life), "--warmup", str(args.warmup),
                    "--ema", str(args.ema), "--time-budget", f"{budget:.1f}",
                    # half-life: --steps is only a cap, and counts the steps of all legs: set it out of the way
                    "--steps", str(10 ** 12),
                    "--eval-every", str(args.eval_every), "--valid-limit", str(args.valid_limit),
                    "--checkpoint-minutes", str(args.checkpoint_minutes), "--seed", str(args.seed), "--resume"]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if hardware:
        cmd += ["--hardware", hardware]
    return cmd + args.extra


def export_copy(args, name):
    """Copy TRAIN_DIR/NAME/model.safetensors to EXPORT_DIR/NAME.safetensors; check its config."""
    src = os.path.join(args.train_dir, name, "model.safetensors")
    if not os.path.exists(src):
        return None, f"{src} missing (no validation ran?)"
    meta = nets.read_metadata(src)
    want = P.preset_config(name)
    if "config" not in meta:
        return None, f"{src}: no config in the metadata"
    if json.loads(meta["config"]) != want:
        return None, f"{src}: metadata config {meta['config']} is not the preset's {json.dumps(want, sort_keys=True)}"
    os.makedirs(args.export_dir, exist_ok=True)
    dst = os.path.join(args.export_dir, f"{name}.safetensors")
    shutil.copyfile(src, dst + ".tmp")
    os.replace(dst + ".tmp", dst)
    return meta, dst


def main(argv=None):
    args = parse(argv)
    n = len(args.presets)
    share = args.time_budget / n
    hardware = gpu_description(args.device) if not args.dry_run else None
    env = dict(os.environ)
    env["PYTHONPATH"] = repo.REFERENCE + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    print(f"train_gpu: {n} model(s), {share:.0f} s of training each, on {args.device}"
          f"{' (' + hardware + ')' if hardware else ''}; state in {args.train_dir}, exports to {args.export_dir}",
          flush=True)

    stop = {"signal": None}
    child = {"proc": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum
        if child["proc"] is not None and child["proc"].poll() is None:
            child["proc"].send_signal(signum)  # train.py checkpoints and stops; Ctrl-C reaches it anyway

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    results = []
    for name in args.presets:
        if stop["signal"] is not None:
            results.append((name, "skipped (stopped)", None))
            continue
        cmd = train_command(args, name, share, hardware)
        print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
        if args.dry_run:
            continue
        t0 = time.time()
        child["proc"] = subprocess.Popen(cmd, cwd=repo.REFERENCE, env=env)
        rc = child["proc"].wait()
        child["proc"] = None
        wall = time.time() - t0
        # torchrun itself exits with an error after passing a signal on; its ranks have checkpointed
        if rc != 0 and not (args.gpus > 1 and stop["signal"] is not None):
            results.append((name, f"train.py failed (exit {rc}) after {wall:.0f} s", None))
            continue
        meta, where = export_copy(args, name)
        if meta is None:
            results.append((name, where, None))
            continue
        results.append((name, where, dict(meta, wall=f"{wall:.0f}")))

    if args.dry_run:
        return
    print("\n=== summary", flush=True)
    failed = 0
    for name, what, meta in results:
        if meta is None:
            failed += 1
            print(f"{name:32} {what}")
            continue
        cfg = json.loads(meta["config"])
        dims = cfg["channels"] * cfg["height"] * cfg["width"]
        v = float(meta["valid_nll"])
        print(f"{name:32} best valid {v:.4f} nats/image = {v / dims / 0.6931471805599453:.4f} bits/dim "
              f"(on {meta.get('valid_images')} images) at {meta.get('images')} images, "
              f"{meta.get('train_seconds')} s of training; this leg took {meta['wall']} s wall -> {what}")
    if stop["signal"] is not None:
        print(f"stopped by signal {stop['signal']}; run the same command again to continue")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
