"""Train a zoo model with the PyTorch reference and export it in the zoo's safetensors layout.

    python -m pixelzoo_ref.train --id diagonal-bilstm-cifar10 --arch diagonal-bilstm --dataset cifar10 \\
        --hidden 24 --features 96 --layers 3 --output-features 192 --batch 16 \\
        --schedule half-life --ema 0.9995 --time-budget 9000 --resume --init-from ../weights/diagonal-bilstm-cifar10.safetensors

A run lives in its state directory, outside the work tree: `$PIXEL_ZOO_TRAIN_DIR/ID`, by default
`~/.cache/pixel-zoo/train/ID` (or `--out DIR`). It holds `checkpoint.pt` (model, optimizer, EMA,
both RNG states, the position in the data order, the legs so far), `curves.csv` and
`model.safetensors`, the best-validation export.

- Long runs survive being stopped at any moment: checkpoints are written every
  `--checkpoint-minutes`, at every validation and on SIGTERM/SIGINT, each atomically, and
  `--resume` continues exactly where the last one left off. When there is no checkpoint,
  `--init-from FILE` starts from exported weights (e.g. the committed ones) as a fine-tune whose
  images and hours carry on from that file's metadata. `--grow-from FILE` does the same from the
  weights of the same network with fewer layers (a multi-scale model: in its small stage, its big
  stage or both): those layers are copied and the new ones, on top, start as the identity
  (`nets/grow.py`), so the deeper network starts where the trained one was.
  `--big-from FILE` starts a multi-scale model's big stage from a trained single-scale network of the
  same config (its conditioning maps at zero, `nets/multiscale.py`), beside `--init-from` or a fresh
  start; the leg records it, and the images and hours carried on are `--init-from`'s.
  Each start is a *leg*: its command, host,
  threads, start and end, images and seconds are recorded in the checkpoint and the export.
- An exponential moving average of the weights (`--ema`, openai/pixel-cnn uses 0.9995) is what is
  validated and exported; the raw weights only train.
- Binarized MNIST can be binarized dynamically (`--dynamic-binarization`): a fresh draw from the
  intensities at every visit. Validation and test keep the static binarization the zoo evaluates on.
- Learning-rate schedules: `cosine` (to 0 over max(step/steps, time/budget): fixed length, as the
  first shipped weights used), `constant` and `half-life` (lr halves every `--lr-half-life`
  images): these two depend only on the images seen, so a run can be extended by any amount.
  `--warmup` steps of linear warm-up after every start without optimizer state.
- `--precision bf16` trains under CPU/CUDA bf16 autocast (the loss in float32); `--compile` wraps
  the model in torch.compile. Exports are always float32.
- Several processes, on one host or several: launched by torchrun, e.g.
  `torchrun --nproc-per-node 4 -m pixelzoo_ref.train ...`, it trains with DistributedDataParallel
  (gloo on CPUs, NCCL with `--device cuda`, one GPU per process). `--batch` is the global batch,
  split evenly over the ranks; every rank walks the same seeded order and takes its own slice of
  each batch (dynamic binarization draws for the whole batch, then slices), the gradient is the
  mean over the global batch, so the optimizer step and the EMA are those of one process with the
  same batch. Rank 0 alone reads the checkpoint or `--init-from` (and sends it to the others),
  validates, writes curves, checkpoints and exports. A checkpoint holds no trace of the number of
  ranks: it resumes with any number that divides the batch, or in one process.

Adam or RMSProp, shuffled batches from a fixed seed, gradient-norm clipping at 1, a validation split
carved from the training set (the last 10,000 MNIST / 5,000 CIFAR-10 training images; selection on
it, never on test images).
"""
import argparse
import csv
import datetime
import json
import math
import os
import platform
import shlex
import signal
import sys
import time

import numpy as np
import torch
import torch.distributed as dist

from . import data as D
from . import nets, repo
from .config import add_arguments, config_from
from .curves import COLUMNS
from .presets import apply_preset
from .training import Ema, conditional, evaluate, learning_rate, training_step


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--id", default=None, help="run name; the state directory is $PIXEL_ZOO_TRAIN_DIR/ID "
                                              "(default ~/.cache/pixel-zoo/train/ID)")
    p.add_argument("--out", default=None, help="state directory (overrides --id's)")
    p.add_argument("--preset", default=None, help="a named config from presets.py (sets the architecture and sizes)")
    p.add_argument("--dataset", default=None, choices=D.DATASETS,
                   help="required unless --preset gives it")
    p.add_argument("--data-dir", default=repo.data_dir())
    p.add_argument("--optimizer", default="adam", choices=["adam", "rmsprop"])
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--schedule", default="cosine", choices=["cosine", "constant", "half-life"])
    p.add_argument("--lr-half-life", type=float, default=2e6, help="half-life: images per halving of the lr")
    p.add_argument("--warmup", type=int, default=0, help="steps of linear warm-up when the optimizer starts fresh")
    p.add_argument("--ema", type=float, default=0.0, help="decay of the weights' moving average (0 = none)")
    p.add_argument("--dynamic-binarization", action="store_true", help="mnist-binarized: a fresh draw per visit")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=None,
                   help="cosine: the schedule's length (default 10000); other schedules: a cap on the run's steps "
                        "(default none)")
    p.add_argument("--time-budget", type=float, default=0.0,
                   help="seconds: cosine: the decay follows max(step/steps, time/budget), over the whole run; "
                        "other schedules: this leg stops after that many seconds of training (0 = no limit)")
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--valid-limit", type=int, default=0, help="0 = the whole validation split")
    p.add_argument("--checkpoint-every", type=int, default=500, help="steps")
    p.add_argument("--checkpoint-minutes", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--compile", action="store_true")
    p.add_argument("--resume", action="store_true", help="continue from the state directory's checkpoint")
    p.add_argument("--init-from", default=None,
                   help="exported weights to start from when there is no checkpoint (a fine-tune)")
    p.add_argument("--grow-from", default=None,
                   help="exported weights of this network with fewer layers, when there is no "
                        "checkpoint: a fine-tune of the deeper network, the new layers on top "
                        "starting as the identity")
    p.add_argument("--big-from", default=None,
                   help="multiscale, when there is no checkpoint: exported weights of the single-scale "
                        "network the big stage is (without its conditioning), to start the big stage from")
    p.add_argument("--hardware", default=None, help="what this leg runs on, for the record")
    p.add_argument("--dist-timeout", type=float, default=60.0,
                   help="torchrun: minutes a rank waits for the others (rank 0 validates meanwhile)")
    add_arguments(p)
    args = p.parse_args(argv)
    if args.init_from and args.grow_from:
        p.error("give --init-from or --grow-from, not both")
    if args.big_from and args.grow_from:
        p.error("give --big-from or --grow-from, not both")
    if args.steps is None:
        args.steps = 10000 if args.schedule == "cosine" else 2**62
    if args.out is None:
        if args.id is None:
            p.error("give --id (state in ~/.cache/pixel-zoo/train/ID) or --out DIR")
        args.out = os.path.join(repo.train_dir(), args.id)
    if args.preset:
        try:
            apply_preset(args, args.preset)
        except ValueError as e:
            p.error(str(e))
    if args.dataset is None:
        p.error("give --dataset (or a --preset, which implies one)")
    return args


def init_weights_record(path):
    """Images and seconds behind exported weights (their metadata), for a fine-tune's record."""
    meta = nets.read_metadata(path)
    images = int(meta.get("images", 0)) or int(meta.get("step", 0)) * int(meta.get("batch", 0))
    seconds = float(meta.get("train_seconds", 0.0))
    legs = json.loads(meta["legs"]) if "legs" in meta else []
    return images, seconds, legs, meta


def host_description(threads):
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {threads} thread(s)"


class Ranks:
    """This process among the ranks torchrun started (WORLD_SIZE, RANK, LOCAL_RANK in the
    environment), or the only one. With one rank there is no process group and no DDP: the run is
    exactly the single-process one."""

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = None

    @property
    def distributed(self):
        return self.world > 1

    @property
    def main(self):
        return self.rank == 0

    def start(self, args):
        """The device of this rank (`--device cuda` = cuda:LOCAL_RANK under torchrun) and the process
        group: NCCL for CUDA, gloo otherwise."""
        device = torch.device(args.device)
        if self.distributed and device.type == "cuda":
            if device.index is not None:
                raise SystemExit("under torchrun give --device cuda: rank r of a host uses cuda:LOCAL_RANK")
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        self.device = device
        if self.distributed:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                    timeout=datetime.timedelta(minutes=args.dist_timeout))
        return device

    def shard(self, batch):
        """Rows lo..hi of a global batch that are this rank's."""
        n = batch // self.world
        return self.rank * n, (self.rank + 1) * n

    def broadcast(self, obj):
        """Rank 0's `obj` on every rank (pickled; tensors in it should be on the CPU)."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def sum(self, values):
        """Elementwise sum over the ranks of a list of floats (float64)."""
        if not self.distributed:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def close(self):
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def read_start(args, cfg, ckpt_path):
    """What the run starts from, read by rank 0 alone: ("checkpoint", ck), ("init", (record,
    weights)), ("fresh", None) or ("error", message), and the weights of `--big-from` (None without
    it or from a checkpoint). Tensors on the CPU."""
    try:
        if args.resume and os.path.exists(ckpt_path):
            ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
            if ck.get("config", cfg) != cfg:
                return ("error", f"{ckpt_path} holds another config: {ck['config']}"), None
            return ("checkpoint", ck), None
        big = None
        if args.big_from:
            meta = nets.read_metadata(args.big_from)
            if "config" not in meta:
                return ("error", f"{args.big_from}: no config in its metadata, so no big stage to start from"), None
            problem = nets.multiscale.big_stage_problem(cfg, json.loads(meta["config"]))
            if problem:
                return ("error", f"--big-from {args.big_from}: {problem}"), None
            big = nets.load_tensors(args.big_from)
        return read_weights_start(args, cfg), big
    except (OSError, RuntimeError, KeyError, ValueError) as e:
        return ("error", f"cannot read the start of the run: {e}"), None


def read_weights_start(args, cfg):
    """("init", (record, weights)) from --init-from or --grow-from, ("fresh", None) or ("error", message)."""
    if args.init_from:
        record = init_weights_record(args.init_from)
        meta = record[3]
        if "config" in meta and json.loads(meta["config"]) != cfg:
            return "error", (f"{args.init_from}: its config {meta['config']} is not this run's "
                             f"{json.dumps(cfg, sort_keys=True)}")
        return "init", (record, nets.load_tensors(args.init_from))
    if args.grow_from:
        record = init_weights_record(args.grow_from)
        if "config" not in record[3]:
            return "error", f"{args.grow_from}: no config in its metadata, so nothing to grow from"
        problem = nets.grow.growth_problem(json.loads(record[3]["config"]), cfg)
        if problem:
            return "error", f"--grow-from {args.grow_from}: {problem}"
        return "init", (record, nets.load_tensors(args.grow_from))
    return "fresh", None


def main(argv=None):
    args = parse(argv)
    ranks = Ranks()
    if args.batch % ranks.world:
        raise SystemExit(f"--batch {args.batch} is the global batch: it must split evenly over the {ranks.world} "
                         f"ranks (give a multiple of {ranks.world}, or another --nproc-per-node)")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    dynamic = args.dynamic_binarization
    if dynamic and args.dataset != "mnist-binarized":
        raise SystemExit("--dynamic-binarization is for mnist-binarized only")
    device = ranks.start(args)
    try:
        run(args, ranks, rng, device, argv)
    finally:
        ranks.close()


def run(args, ranks, rng, device, argv):
    dynamic = args.dynamic_binarization
    say = print if ranks.main else (lambda *a, **k: None)
    if ranks.main:
        os.makedirs(args.out, exist_ok=True)
    train = D.load_intensities(args.dataset, args.data_dir, "train") if dynamic else D.load(args.dataset, args.data_dir, "train")
    valid = D.load(args.dataset, args.data_dir, "valid") if ranks.main else None
    if args.valid_limit and ranks.main:
        valid = valid[: args.valid_limit]
    cfg = config_from(args, train.shape[1:])
    dims = int(np.prod(train.shape[1:]))
    # A class-conditional model learns p(x | class) from each image's label.
    train_labels = D.load_labels(args.dataset, args.data_dir, "train") if conditional(cfg) else None
    valid_labels = None
    if conditional(cfg) and ranks.main:
        valid_labels = D.load_labels(args.dataset, args.data_dir, "valid")[: len(valid)]
    model = nets.build(cfg).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    opt_cls = torch.optim.Adam if args.optimizer == "adam" else torch.optim.RMSprop
    opt = opt_cls(model.parameters(), lr=args.lr)
    ema = Ema(model, args.ema) if args.ema else None

    ckpt_path = os.path.join(args.out, "checkpoint.pt")
    order, pos = rng.permutation(len(train)), 0
    step, images, best, train_seconds = 0, 0, float("inf"), 0.0
    legs, fresh_optimizer = [], True
    (kind, start), big_stage = ranks.broadcast(read_start(args, cfg, ckpt_path) if ranks.main else None)
    if kind == "error":
        raise SystemExit(start)
    if kind == "checkpoint":
        ck = start
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        rng = ck["rng"]
        torch.set_rng_state(ck["torch_rng"].cpu())
        step, best, train_seconds = ck["step"], ck["best"], ck["train_seconds"]
        images = ck.get("images", step * args.batch)
        order, pos = ck["order"], ck["pos"]
        legs = ck.get("legs", [])
        if ema is not None:
            if "ema" in ck:
                ema.load_state_dict(ck["ema"])
            else:
                ema = Ema(model, args.ema)
        fresh_optimizer = False
        say(f"resumed at step {step} ({images} images, {train_seconds:.0f} s), best valid {best:.4f}", flush=True)
    elif kind == "init":
        (images, train_seconds, legs, meta), weights = start
        if args.grow_from:
            try:
                grown = nets.grow.grow(model, weights, json.loads(meta["config"]))
            except ValueError as e:
                raise SystemExit(f"--grow-from {args.grow_from}: {e}")
            say(f"grown from {args.grow_from}: new layers {', '.join(p.rstrip('.') for p in grown)} "
                "start as the identity", flush=True)
        else:
            missing, unexpected = model.load_state_dict(weights, strict=False)
            if missing or unexpected:
                raise SystemExit(f"{args.init_from}: missing {missing}, unexpected {unexpected}")
        if ema is not None:
            ema = Ema(model, args.ema)
        say(f"fine-tune from {args.init_from or args.grow_from} ({images} images, "
            f"{train_seconds:.0f} s behind it)", flush=True)
    elif args.resume:
        say(f"no checkpoint in {args.out}: a fresh run", flush=True)
    if big_stage is not None:
        try:
            model.start_big_stage_from(big_stage)
        except ValueError as e:
            raise SystemExit(f"--big-from {args.big_from}: {e}")
        if ema is not None:
            ema = Ema(model, args.ema)
        say(f"big stage from {args.big_from}, its conditioning maps at zero", flush=True)
    del start, big_stage

    launcher = "torchrun -m" if ranks.distributed else "python -m"
    leg = {"command": f"{launcher} pixelzoo_ref.train " + shlex.join(sys.argv[1:] if argv is None else argv),
           "hardware": args.hardware or host_description(torch.get_num_threads()),
           "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "start_step": step, "start_images": images, "start_seconds": round(train_seconds, 1),
           "from": "checkpoint" if not fresh_optimizer else (
               (args.init_from or (f"grown from {args.grow_from}" if args.grow_from else "scratch"))
               + (f", its big stage from {args.big_from}" if args.big_from else ""))}
    if ranks.distributed:
        leg["ranks"] = ranks.world  # "hardware" is rank 0's host
    legs.append(leg)

    def record_leg():
        leg.update(end_step=step, end_images=images, end_seconds=round(train_seconds, 1),
                   ended=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))

    if ranks.main:
        csv_path = os.path.join(args.out, "curves.csv")
        new_csv = not os.path.exists(csv_path) or (fresh_optimizer and not args.init_from
                                                    and not args.grow_from and not args.resume)
        csv_file = open(csv_path, "w" if new_csv else "a", newline="")
        writer = csv.writer(csv_file)
        if new_csv:
            writer.writerow(COLUMNS)
        print(f"config {json.dumps(cfg)}; {n_params} parameters; {len(train)} train, {len(valid)} valid images; "
              f"state in {args.out}" + (f"; {ranks.world} ranks of {args.batch // ranks.world} images" if
                                        ranks.distributed else ""), flush=True)

    net = model
    if ranks.distributed:
        # Every rank holds the same weights already; the masks are buffers that never change.
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, forward_sync_buffers=False)
    forward = torch.compile(net) if args.compile else net
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def save_checkpoint():
        record_leg()
        st = {"model": model.state_dict(), "opt": opt.state_dict(), "rng": rng, "torch_rng": torch.get_rng_state(),
              "step": step, "images": images, "best": best, "train_seconds": train_seconds, "order": order,
              "pos": pos, "legs": legs, "config": cfg}
        if ema is not None:
            st["ema"] = ema.state_dict()
        torch.save(st, ckpt_path + ".tmp")
        os.replace(ckpt_path + ".tmp", ckpt_path)

    # "signal": the stop every rank agrees on (the same step everywhere); "local": this rank's
    stop = {"signal": None, "local": None}

    def on_signal(signum, _frame):
        stop["local"] = signum
        if not ranks.distributed:
            stop["signal"] = signum

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def validate():
        nonlocal best
        if ema is not None:
            ema.swap(model)
        v = evaluate(model, valid, cfg["head"], device, labels=valid_labels)
        improved = v < best
        if improved:
            best = v
            record_leg()
            nets.save(model, cfg, os.path.join(args.out, "model.safetensors"),
                      {"seed": args.seed, "step": step, "images": images, "valid_nll": f"{v:.4f}",
                       "valid_images": len(valid), "train_seconds": f"{train_seconds:.0f}", "dataset": args.dataset,
                       "optimizer": args.optimizer, "lr": args.lr, "schedule": args.schedule, "batch": args.batch,
                       "ema": args.ema, "dynamic_binarization": dynamic, "precision": args.precision,
                       "legs": json.dumps(legs)})
        if ema is not None:
            ema.swap(model)
        writer.writerow([step, images, f"{train_seconds:.1f}", f"{opt.param_groups[0]['lr']:.3e}",
                         f"{train_nll:.4f}", f"{train_nll / dims / math.log(2):.5f}",
                         f"{v:.4f}", f"{v / dims / math.log(2):.5f}", len(legs)])
        csv_file.flush()
        print(f"== step {step} images {images} valid {v:.4f} nats/img {v / dims / math.log(2):.4f} bits/dim"
              f"{' (best)' if improved else ''}", flush=True)

    def leg_over():
        if stop["signal"] is not None or step >= args.steps:
            return True
        if args.schedule == "cosine":
            return learning_rate(args, step, images, train_seconds, leg_step) <= 0 or (
                args.time_budget and train_seconds >= args.time_budget)
        return bool(args.time_budget) and train_seconds - leg["start_seconds"] >= args.time_budget

    window_loss, window_n, t_window = 0.0, 0, time.time()
    train_nll = float("nan")
    leg_step = 0 if fresh_optimizer else args.warmup
    last_ckpt = time.time()
    while not leg_over():
        t0 = time.time()
        lr = learning_rate(args, step, images, train_seconds, leg_step)
        for g in opt.param_groups:
            g["lr"] = lr
        if pos + args.batch > len(train):
            order, pos = rng.permutation(len(train)), 0
        idx = order[pos : pos + args.batch]
        pos += args.batch
        if ranks.distributed:
            lo, hi = ranks.shard(args.batch)
            batch = D.binarize_dynamic(train[idx[lo:hi]], rng, (lo, hi, len(idx))) if dynamic else train[idx[lo:hi]]
            mine = idx[lo:hi]
        else:
            batch = D.binarize_dynamic(train[idx], rng) if dynamic else train[idx]
            mine = idx
        labels = None if train_labels is None else torch.from_numpy(train_labels[mine]).long().to(device)
        loss = training_step(model, forward, opt, torch.from_numpy(batch).to(device), cfg["head"], autocast, labels)
        if ema is not None:
            ema.update(model)
        step += 1
        leg_step += 1
        images += args.batch
        dt, loss_value = time.time() - t0, loss.item()
        if ranks.distributed:
            # One reduction per step: the global batch's mean loss, the mean step time (so that
            # every rank's schedule and time budget agree) and whether any rank was signalled.
            loss_sum, dt_sum, signalled = ranks.sum([loss_value, dt, float(stop["local"] is not None)])
            loss_value, dt = loss_sum / ranks.world, dt_sum / ranks.world
            if signalled:
                stop["signal"] = stop["local"] or "(on another rank)"
        train_seconds += dt
        window_loss += loss_value
        window_n += 1
        if step % 50 == 0:
            dt = time.time() - t_window
            l = window_loss / window_n
            say(f"step {step} images {images} ({train_seconds:.0f} s) loss {l:.3f} nats/img "
                f"{l / dims / math.log(2):.4f} bits/dim {window_n * args.batch / dt:.1f} img/s lr {lr:.2e}", flush=True)
            train_nll = l
            window_loss, window_n, t_window = 0.0, 0, time.time()
        finished = leg_over()
        if not ranks.main:
            continue  # rank 0 alone validates and writes; the others wait for it in the next step
        if stop["signal"] is not None:
            save_checkpoint()  # first: a second signal may follow soon
        if step % args.eval_every == 0 or finished and stop["signal"] is None:
            validate()
        if step % args.checkpoint_every == 0 or finished or time.time() - last_ckpt > 60 * args.checkpoint_minutes:
            save_checkpoint()
            last_ckpt = time.time()
    if stop["signal"] is not None:
        say(f"stopped by signal {stop['signal']}; checkpoint saved at step {step}", flush=True)
    say(f"done: {step} steps, {images} images, {train_seconds:.0f} s training, best valid {best:.4f} nats/img",
        flush=True)
    if ranks.main:
        csv_file.close()


if __name__ == "__main__":
    main()
