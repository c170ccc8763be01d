"""What one training run is made of, apart from its command line (train.py): the step, the moving
average of the weights, the learning-rate schedule and the validation NLL. bench_train times the
same step.
"""
import math

import torch

from .nets.layers import nll_per_image


def conditional(cfg):
    """Whether a model of config `cfg` takes a class label per image (a class-conditional model)."""
    return bool(cfg.get("classes", 0))


@torch.no_grad()
def evaluate(model, x, head, device, batch=100, labels=None):
    """The mean NLL (nats per image) of images `x` (a uint8 array (n, c, h, w)) under `model`, in
    eval mode, `batch` images at a time; `labels` (n,): the class of each image, for a conditional
    model (the NLL is then the conditional one, -log p(x | class))."""
    was_training = model.training
    model.eval()
    total = 0.0
    for i in range(0, len(x), batch):
        xb = torch.from_numpy(x[i : i + batch]).to(device)
        out = model(xb) if labels is None else model(xb, torch.from_numpy(labels[i : i + batch]).long().to(device))
        total += nll_per_image(out.float(), xb, head).sum().item()
    model.train(was_training)
    return total / len(x)


def training_step(model, forward, opt, xb, head, autocast, labels=None):
    """One step on batch `xb` (and its class `labels`, for a conditional model): the loss (nats per
    image, float32) under `autocast`, its gradient clipped to norm 1, an optimizer step. `forward`
    is the model or its torch.compile'd form. Returns the loss tensor."""
    with autocast:
        logits = forward(xb) if labels is None else forward(xb, labels)
    loss = nll_per_image(logits.float(), xb, head).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss


class Ema:
    """An exponential moving average of the parameters: avg <- d * avg + (1 - d) * p after every step.
    The decay is min(d, (1 + n) / (10 + n)) over the n updates so far, so early averages are not
    dominated by the initial weights."""

    def __init__(self, model, decay):
        self.decay = decay
        self.updates = 0
        self.shadow = {k: p.detach().clone() for k, p in model.named_parameters()}

    @torch.no_grad()
    def update(self, model):
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, p in model.named_parameters():
            self.shadow[k].mul_(d).add_(p.detach(), alpha=1 - d)

    @torch.no_grad()
    def swap(self, model):
        """Exchange the model's parameters with the average (call again to swap back)."""
        for k, p in model.named_parameters():
            tmp = p.detach().clone()
            p.copy_(self.shadow[k])
            self.shadow[k].copy_(tmp)

    def state_dict(self):
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, st):
        self.updates = st["updates"]
        self.shadow = {k: v.to(self.shadow[k].device, copy=True) for k, v in st["shadow"].items()}


def learning_rate(args, step, images, seconds, leg_step):
    """The lr of schedule `args.schedule` (cosine, constant, half-life: train.py's doc) at this point,
    with `args.warmup` steps of linear warm-up after a start without optimizer state."""
    if args.schedule == "cosine":
        p = step / args.steps
        if args.time_budget:
            p = max(p, seconds / args.time_budget)
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * min(p, 1.0)))
    elif args.schedule == "constant":
        lr = args.lr
    else:
        lr = args.lr * 0.5 ** (images / args.lr_half_life)
    if args.warmup and leg_step < args.warmup:
        lr *= (leg_step + 1) / args.warmup
    return lr
