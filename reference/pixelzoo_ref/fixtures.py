"""Reference logits for the Rust tests (the way candle checks its models against PyTorch).

    cd reference && PYTHONPATH=. python -m pixelzoo_ref.fixtures --data-dir ../../shared/data

Writes into ../tests/fixtures/:
- <arch>-random-<name>.safetensors: a small random-weight model of each architecture in the zoo's
  layout, its weights stored UNMASKED (the zoo must apply the masks at load time), config in the
  metadata (`rgb`, `binary`, and for the Diagonal BiLSTM `options`: the third-party options);
- <arch>-random-<name>.logits.safetensors: `input` (n, c, h, w) u8, for a class-conditional model
  `labels` (n,) u8 and `marginal_nll` (n,), and `logits` (n, c, levels, h, w) computed by this
  reference (`nets.logits`: for the logistic mixture, each channel's 256 log-probabilities), and
  `nll` (n,) nats;
- <model-id>.logits.safetensors for each shipped model in ../weights: `input` = its first test
  images, `logits` of the first 2 images in rows 0..4 (n, c, levels, 4, w), `nll` (n,) nats of all;
  for a class-conditional model also `labels` (their true classes), the logits and `nll` given them,
  and `marginal_nll` (n,), -log sum_c p(c) p(x | c) with the uniform p(c).

Logits and NLL are computed in float64 from the float32 weights, so they are the exact values the
weights define; float32 implementations (the zoo's and this one's) differ from them by rounding only.
"""
import argparse
import math
import os

import numpy as np
import torch
from safetensors.torch import save_file

from . import data as D
from . import nets, repo
from .nets.layers import nll_per_image

_ROW = dict(input_to_state_kernel=3, state_to_state_kernel=3)
RANDOM = {
    ("pixelcnn", "rgb"): dict(channels=3, height=6, width=5, head="softmax256", hidden=12,
                              layers=2, output_features=24, input_kernel=7, block_kernel=3),
    ("pixelcnn", "binary"): dict(channels=1, height=5, width=4, head="bernoulli", hidden=4,
                                 layers=2, output_features=8, input_kernel=7, block_kernel=3),
    ("row-lstm", "rgb"): dict(channels=3, height=6, width=5, head="softmax256", features=12, hidden=6,
                              layers=2, output_features=24, input_kernel=7, **_ROW),
    ("row-lstm", "binary"): dict(channels=1, height=5, width=4, head="bernoulli", features=8, hidden=4,
                                 layers=2, output_features=8, input_kernel=3, **_ROW),
    ("diagonal-bilstm", "rgb"): dict(channels=3, height=6, width=5, head="softmax256", features=12, hidden=6,
                                     layers=2, output_features=24, input_kernel=7),
    ("diagonal-bilstm", "binary"): dict(channels=1, height=5, width=4, head="bernoulli", features=8, hidden=4,
                                        layers=2, output_features=8, input_kernel=3),
    # The options of the third-party checkpoint (taimir/pixel-rnn-lasagne).
    ("diagonal-bilstm", "options"): dict(channels=1, height=5, width=4, head="bernoulli", features=4, hidden=4,
                                         layers=2, output_features=6, input_kernel=3, residual_conv=False,
                                         state_bias="scalar", output_projection=True, input_encoding="unit"),
    # Multi-scale: each inner architecture as the small stage, both recurrent ones as the big stage.
    ("multiscale", "rgb"): dict(
        channels=3, height=6, width=6, head="softmax256", factor=2,
        small=dict(architecture="row-lstm", channels=3, height=3, width=3, head="softmax256", features=12, hidden=6,
                   layers=1, output_features=24, input_kernel=7, **_ROW),
        big=dict(architecture="diagonal-bilstm", channels=3, height=6, width=6, head="softmax256", features=12,
                 hidden=6, layers=2, output_features=24, input_kernel=7, conditioning=5)),
    ("multiscale", "binary"): dict(
        channels=1, height=4, width=4, head="bernoulli", factor=2,
        small=dict(architecture="diagonal-bilstm", channels=1, height=2, width=2, head="bernoulli", features=4,
                   hidden=3, layers=1, output_features=4, input_kernel=3),
        big=dict(architecture="row-lstm", channels=1, height=4, width=4, head="bernoulli", features=8, hidden=4,
                 layers=2, output_features=8, input_kernel=3, conditioning=3, **_ROW)),
    ("multiscale", "pixelcnn"): dict(
        channels=1, height=6, width=6, head="bernoulli", factor=2,
        small=dict(architecture="pixelcnn", channels=1, height=3, width=3, head="bernoulli", hidden=4, layers=1,
                   output_features=8, input_kernel=3, block_kernel=3),
        big=dict(architecture="diagonal-bilstm", channels=1, height=6, width=6, head="bernoulli", features=8,
                 hidden=4, layers=2, output_features=8, input_kernel=3, conditioning=3)),
    # Gated PixelCNN: class-conditional on 8-bit images, unconditional on binary ones.
    ("gated-pixelcnn", "rgb"): dict(channels=3, height=6, width=5, head="softmax256", hidden=12, layers=2,
                                    output_features=24, input_kernel=5, block_kernel=3, classes=4),
    ("gated-pixelcnn", "binary"): dict(channels=1, height=5, width=4, head="bernoulli", hidden=8, layers=2,
                                       output_features=8, input_kernel=3, block_kernel=3, classes=0),
    # The logistic mixture models 8-bit images only.
    ("mixture-pixelcnn", "rgb"): dict(channels=3, height=6, width=5, head="logistic-mixture", hidden=16, layers=1,
                                      input_kernel=3, components=3),
}


def reference_outputs(model, cfg, x, labels=None):
    """The float64 model's `logits` and `nll` of x (given `labels`, the classes of a
    class-conditional model), and for such a model the `marginal_nll` -log sum_c p(c) p(x | c) with
    the uniform p(c), from one pass per class."""
    head = "softmax256" if cfg["head"] == "logistic-mixture" else cfg["head"]  # log-probs as logits
    with torch.no_grad():
        logits = nets.logits(model, cfg, x, labels)
        out = {"logits": logits, "nll": nll_per_image(logits, x, head)}
        if labels is not None:
            per_class = torch.stack([nll_per_image(nets.logits(model, cfg, x, torch.full_like(labels, c)), x, head)
                                     for c in range(cfg["classes"])], dim=1)
            out["marginal_nll"] = math.log(cfg["classes"]) - torch.logsumexp(-per_class, dim=1)
    return out


def random_fixture(arch, name, cfg, out, seed):
    torch.manual_seed(seed)
    cfg = dict(architecture=arch, **cfg)
    model = nets.build(cfg)
    with torch.no_grad():  # larger than default init, so every layer matters to the logits
        for pname, p in model.named_parameters():
            p.mul_(3.0)
            if pname.endswith("state_bias"):  # initialised to 0: make it matter too
                p.uniform_(-1.0, 1.0)
    stem = f"{arch}-random-{name}"
    nets.save(model, cfg, os.path.join(out, f"{stem}.safetensors"), masked=False)
    hi = 2 if cfg["head"] == "bernoulli" else 256
    x = torch.randint(0, hi, (3, cfg["channels"], cfg["height"], cfg["width"]), dtype=torch.uint8)
    tensors = {"input": x}
    labels = None
    if cfg.get("classes"):
        labels = torch.randint(0, cfg["classes"], (3,), dtype=torch.int64)
        tensors["labels"] = labels.to(torch.uint8)
    outputs = reference_outputs(model.double(), cfg, x, labels)
    tensors.update({k: v.contiguous() for k, v in outputs.items()})
    save_file(tensors, os.path.join(out, f"{stem}.logits.safetensors"))
    print(f"random {stem}: logits {tuple(outputs['logits'].shape)}, nll {outputs['nll'].tolist()}")


def write_random(out, only=()):
    """Every random-weight fixture of RANDOM (or those of the architectures in `only`) into `out`;
    fixture i of RANDOM is drawn from seed 100 + i."""
    for i, ((arch, name), cfg) in enumerate(RANDOM.items()):
        if not only or arch in only:
            random_fixture(arch, name, cfg, out, seed=100 + i)


def shipped_fixture(path, model_id, data_dir, out, n=8):
    model, cfg = nets.load(path)
    model = model.double()
    dataset = "cifar10" if cfg["channels"] == 3 else ("mnist-binarized" if "lasagne" not in model_id else "mnist-thresholded")
    x = torch.from_numpy(np.ascontiguousarray(D.load(dataset, data_dir, "test")[:n]))
    tensors = {"input": x}
    labels = None
    if cfg.get("classes", 0):
        # A class-conditional model: the logits and NLL given each image's true class.
        labels = torch.from_numpy(D.load_labels(dataset, data_dir, "test")[:n].astype(np.int64))
        tensors["labels"] = labels.to(torch.uint8)
    outputs = reference_outputs(model, cfg, x, labels)
    nll = outputs["nll"]
    outputs["logits"] = outputs["logits"][:2, :, :, :4]
    tensors.update({k: v.contiguous() for k, v in outputs.items()})
    save_file(tensors, os.path.join(out, f"{model_id}.logits.safetensors"))
    print(f"{model_id}: nll of the first {n} test images {[round(v, 3) for v in nll.tolist()]}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", default=repo.data_dir())
    p.add_argument("--weights-dir", default=repo.WEIGHTS_DIR)
    p.add_argument("--out", default=repo.FIXTURES_DIR)
    p.add_argument("--only", default="", help="comma-separated architectures / model ids (default: all)")
    a = p.parse_args()
    only = set(filter(None, a.only.split(",")))
    torch.set_num_threads(1)
    os.makedirs(a.out, exist_ok=True)
    write_random(a.out, only)
    if os.path.isdir(a.weights_dir):
        for f in sorted(os.listdir(a.weights_dir)):
            if f.endswith(".safetensors") and (not only or f[: -len(".safetensors")] in only):
                shipped_fixture(os.path.join(a.weights_dir, f), f[: -len(".safetensors")], a.data_dir, a.out)


if __name__ == "__main__":
    main()
