"""Train a zoo model with the PyTorch reference and export it in the zoo's safetensors layout.

    python -m pixelzoo_ref.train --arch pixelcnn --dataset mnist-binarized --data-dir ../../shared/data \
        --hidden 16 --layers 5 --output-features 32 --steps 20000 --out runs/pixelcnn-mnist

Adam or RMSProp, shuffled batches from a fixed seed, a cosine learning-rate decay over --steps, a
validation split carved from the training set (model selection on it, never on test images),
checkpoints every --checkpoint-every steps and --resume, progress lines with loss, bits/dim and
images/s, a CSV of the curves, export of the best-validation weights to safetensors with the config
as JSON in the metadata.
"""
import argparse
import csv
import json
import math
import os
import time

import numpy as np
import torch
from safetensors.torch import save_file

from . import data as D
from .layers import nll_per_image
from .models import build


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="pixelcnn", choices=["pixelcnn", "row-lstm", "diagonal-bilstm", "multiscale"])
    p.add_argument("--big-arch", default="row-lstm", choices=["row-lstm", "diagonal-bilstm"],
                   help="multiscale: the conditional (big) stage; it takes --hidden, --features, --layers, ...")
    p.add_argument("--small-arch", default="row-lstm", choices=["pixelcnn", "row-lstm", "diagonal-bilstm"],
                   help="multiscale: the unconditional (small) stage")
    p.add_argument("--small-hidden", type=int, default=16)
    p.add_argument("--small-features", type=int, default=0, help="0 = 2 x --small-hidden")
    p.add_argument("--small-layers", type=int, default=2)
    p.add_argument("--small-output-features", type=int, default=32)
    p.add_argument("--upsampling-features", type=int, default=16,
                   help="multiscale: features c of the upsampled c x n x n conditioning map")
    p.add_argument("--factor", type=int, default=2, help="multiscale: n / s")
    p.add_argument("--dataset", required=True, choices=["mnist-binarized", "mnist-thresholded", "cifar10"])
    p.add_argument("--data-dir", default=os.environ.get("PIXEL_ZOO_DATA", "../../shared/data"))
    p.add_argument("--hidden", type=int, default=16, help="h: PixelCNN's residual stream has 2h features; LSTM state size")
    p.add_argument("--features", type=int, default=0, help="LSTM models: residual stream width (0 = 2h)")
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--output-features", type=int, default=32)
    p.add_argument("--input-kernel", type=int, default=7)
    p.add_argument("--block-kernel", type=int, default=3, help="PixelCNN: kernel of the residual blocks")
    p.add_argument("--input-to-state-kernel", type=int, default=3, help="Row LSTM: k of the k x 1 input-to-state conv")
    p.add_argument("--state-to-state-kernel", type=int, default=3, help="Row LSTM: k of the state-to-state conv")
    p.add_argument("--optimizer", default="adam", choices=["adam", "rmsprop"])
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=10000)
    p.add_argument("--time-budget", type=float, default=0.0,
                   help="seconds of training; the cosine decay follows max(step/steps, time/budget) and "
                        "training stops when either reaches 1 (0 = steps only)")
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--valid-limit", type=int, default=0, help="0 = the whole validation split")
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--out", required=True)
    return p.parse_args()


def config_from(args, shape):
    c, h, w = shape
    if args.arch == "multiscale":
        f = args.factor
        big = stage_config(args, args.big_arch, shape, args.hidden, args.features, args.layers, args.output_features)
        big["conditioning"] = args.upsampling_features
        small = stage_config(args, args.small_arch, (c, h // f, w // f), args.small_hidden, args.small_features,
                             args.small_layers, args.small_output_features)
        return {"architecture": "multiscale", "channels": int(c), "height": int(h), "width": int(w),
                "head": big["head"], "factor": f, "small": small, "big": big}
    return stage_config(args, args.arch, shape, args.hidden, args.features, args.layers, args.output_features)


def stage_config(args, arch, shape, hidden, features, layers, output_features):
    c, h, w = shape
    cfg = {
        "architecture": arch,
        "channels": int(c),
        "height": int(h),
        "width": int(w),
        "head": "bernoulli" if args.dataset.startswith("mnist") else "softmax256",
        "hidden": hidden,
        "layers": layers,
        "output_features": output_features,
        "input_kernel": args.input_kernel,
    }
    if arch == "pixelcnn":
        cfg["block_kernel"] = args.block_kernel
        return cfg
    cfg["features"] = features or 2 * hidden
    if arch == "row-lstm":
        cfg["input_to_state_kernel"] = args.input_to_state_kernel
        cfg["state_to_state_kernel"] = args.state_to_state_kernel
    return cfg


@torch.no_grad()
def evaluate(model, x, head, device, batch=100):
    model.eval()
    total = 0.0
    for i in range(0, len(x), batch):
        xb = torch.from_numpy(x[i : i + batch]).to(device)
        total += nll_per_image(model(xb), xb, head).sum().item()
    model.train()
    return total / len(x)


def export(model, cfg, path, extra):
    tensors = {}
    for name, p in model.named_parameters():
        mod = model.get_submodule(name.rsplit(".", 1)[0])
        t = p.detach()
        if name.endswith("weight") and hasattr(mod, "mask"):
            t = t * mod.mask  # store the masked values; the zoo applies the mask again at load
        tensors[name] = t.cpu().contiguous().float()
    meta = {"format": "pixel-zoo", "config": json.dumps(cfg, sort_keys=True)}
    meta.update({k: str(v) for k, v in extra.items()})
    tmp = path + ".tmp"
    save_file(tensors, tmp, metadata=meta)
    os.replace(tmp, path)


def main():
    args = parse()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    os.makedirs(args.out, exist_ok=True)
    train = D.load(args.dataset, args.data_dir, "train")
    valid = D.load(args.dataset, args.data_dir, "valid")
    if args.valid_limit:
        valid = valid[: args.valid_limit]
    cfg = config_from(args, train.shape[1:])
    dims = int(np.prod(train.shape[1:]))
    device = torch.device(args.device)
    model = build(cfg).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    opt_cls = torch.optim.Adam if args.optimizer == "adam" else torch.optim.RMSprop
    opt = opt_cls(model.parameters(), lr=args.lr)
    def progress(step, seconds):
        p = step / args.steps
        if args.time_budget:
            p = max(p, seconds / args.time_budget)
        return min(p, 1.0)

    def set_lr(p):
        for g in opt.param_groups:
            g["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * p))
    ckpt_path = os.path.join(args.out, "checkpoint.pt")
    order, pos = rng.permutation(len(train)), 0
    step, best, train_seconds = 0, float("inf"), 0.0
    if args.resume and os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        rng = ck["rng"]
        torch.set_rng_state(ck["torch_rng"])
        step, best, train_seconds = ck["step"], ck["best"], ck["train_seconds"]
        order, pos = ck["order"], ck["pos"]
        print(f"resumed at step {step}, best valid {best:.4f}", flush=True)
    csv_path = os.path.join(args.out, "curves.csv")
    new_csv = not os.path.exists(csv_path) or not args.resume
    csv_file = open(csv_path, "w" if new_csv else "a", newline="")
    writer = csv.writer(csv_file)
    if new_csv:
        writer.writerow(["step", "images", "train_seconds", "lr", "train_nll", "train_bpd", "valid_nll", "valid_bpd"])
    print(f"config {json.dumps(cfg)}; {n_params} parameters; {len(train)} train, {len(valid)} valid images", flush=True)

    window_loss, window_n, t_window = 0.0, 0, time.time()
    train_nll = float("nan")
    train_nll = float("nan")
    while progress(step, train_seconds) < 1.0:
        t0 = time.time()
        set_lr(progress(step, train_seconds))
        if pos + args.batch > len(train):
            order, pos = rng.permutation(len(train)), 0
        idx = order[pos : pos + args.batch]
        pos += args.batch
        xb = torch.from_numpy(train[idx]).to(device)
        loss = nll_per_image(model(xb), xb, cfg["head"]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        train_seconds += time.time() - t0
        window_loss += loss.item()
        window_n += 1
        if step % 50 == 0:
            dt = time.time() - t_window
            l = window_loss / window_n
            print(
                f"step {step}/{args.steps} ({train_seconds:.0f} s) loss {l:.3f} nats/img {l / dims / math.log(2):.4f} bits/dim "
                f"{window_n * args.batch / dt:.1f} img/s lr {opt.param_groups[0]['lr']:.2e}",
                flush=True,
            )
            train_nll = l
            window_loss, window_n, t_window = 0.0, 0, time.time()
        finished = progress(step, train_seconds) >= 1.0
        if step % args.eval_every == 0 or finished:
            v = evaluate(model, valid, cfg["head"], device)
            writer.writerow([step, step * args.batch, f"{train_seconds:.1f}", opt.param_groups[0]['lr'],
                             f"{train_nll:.4f}", f"{train_nll / dims / math.log(2):.5f}",
                             f"{v:.4f}", f"{v / dims / math.log(2):.5f}"])
            csv_file.flush()
            print(f"== step {step} valid {v:.4f} nats/img {v / dims / math.log(2):.4f} bits/dim", flush=True)
            if v < best:
                best = v
                export(model, cfg, os.path.join(args.out, "model.safetensors"),
                       {"seed": args.seed, "step": step, "valid_nll": f"{v:.4f}", "train_seconds": f"{train_seconds:.0f}",
                        "dataset": args.dataset, "optimizer": args.optimizer, "lr": args.lr, "batch": args.batch,
                        "time_budget": args.time_budget})
        if step % args.checkpoint_every == 0 or finished:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                        "rng": rng, "torch_rng": torch.get_rng_state(), "step": step, "best": best,
                        "train_seconds": train_seconds, "order": order, "pos": pos}, ckpt_path + ".tmp")
            os.replace(ckpt_path + ".tmp", ckpt_path)
    print(f"done: {step} steps, {train_seconds:.0f} s training, best valid {best:.4f} nats/img", flush=True)


if __name__ == "__main__":
    main()
