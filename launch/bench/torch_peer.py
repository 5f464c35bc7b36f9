#!/usr/bin/python3
"""torch_peer.py: the PyTorch peer of `regdist bench` for the reference models.

Times full training steps on random inputs: zero_grad, forward, CrossEntropyLoss with label
smoothing 0.1, backward, clip_grad_norm_(1.0), AdamW step (lr 3e-4, weight decay 0.01 on the
weight matrices and kernels only; biases and norm parameters in a no-decay group), dropout
active. The models, as regdist's configs:
  mlp (launch/configs/mlp.cfg): Flatten -> 3 x [Linear, LayerNorm, GELU, Dropout(0.3)]
      (784-256-256-128) -> Linear(128, 10).
  cnn6_mlp4 (launch/configs/cnn6_mlp4.cfg): three stages of 2 x [Conv2d 3x3 pad 1 no bias,
      BatchNorm2d, ReLU, Dropout2d(0.1)] with 32, 64, 128 channels, each stage followed by
      MaxPool2d(2) (28 -> 14 -> 7 -> 3); Flatten; 3 x [Linear, ReLU, Dropout(0.3)]
      (1152-256-128-64) -> Linear(64, 10).

Usage (Debian's python3 has torch):
    /usr/bin/python3 launch/bench/torch_peer.py [--model mlp|cnn6_mlp4] [--threads 1]
                                                [--batch 128] [--steps 50] [--warmup 5] [--json]
                                                [--default-malloc]
It runs with glibc malloc keeping freed memory (keep_heap; --default-malloc: glibc's defaults).
--json prints one object with the fields regdist bench --json uses for the same quantities:
{"framework", "batch", "threads", "steps", "median_step_ms", "images_per_s"}, and "model"
when --model is not mlp.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn as nn


def reference_mlp():
    def block(i, o):
        return [nn.Linear(i, o), nn.LayerNorm(o), nn.GELU(), nn.Dropout(0.3)]

    return nn.Sequential(nn.Flatten(), *block(784, 256), *block(256, 256), *block(256, 128),
                         nn.Linear(128, 10))


def reference_cnn6_mlp4():
    layers = []
    cin = 1
    for cout in (32, 64, 128):
        for _ in range(2):
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                       nn.ReLU(), nn.Dropout2d(0.1)]
            cin = cout
        layers.append(nn.MaxPool2d(2))
    layers.append(nn.Flatten())
    fin = 128 * 3 * 3
    for fout in (256, 128, 64):
        layers += [nn.Linear(fin, fout), nn.ReLU(), nn.Dropout(0.3)]
        fin = fout
    layers.append(nn.Linear(fin, 10))
    return nn.Sequential(*layers)


MODELS = {"mlp": reference_mlp, "cnn6_mlp4": reference_cnn6_mlp4}


def param_groups(model, weight_decay):
    # as regdist: decay on weight matrices (ndim >= 2), never on biases or norm parameters
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def positive(s):
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError("must be >= 1, got %s" % s)
    return v


# glibc malloc told to keep what PyTorch frees: no mmap for blocks up to 32 MiB, no trimming.
KEEP_HEAP = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "17179869184",
             "MALLOC_TOP_PAD_": "536870912"}


def keep_heap(args):
    """Run this script again with KEEP_HEAP in its environment (unless --default-malloc).

    PyTorch frees and reallocates its activations every step; with glibc's defaults large
    blocks go back to the kernel and fault back in, which on the development VM made its
    cnn6_mlp4 rate vary from 404 to 626 images/s between runs; with KEEP_HEAP it held 628 to
    641 (docs/performance.md). regdist allocates once, so the peer is measured at its best.
    """
    if args.default_malloc or all(os.environ.get(k) == v for k, v in KEEP_HEAP.items()):
        return
    os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, **KEEP_HEAP))


def malloc_words(args):
    return "glibc malloc defaults" if args.default_malloc else "malloc keeps freed memory"


def add_malloc_arg(ap):
    ap.add_argument("--default-malloc", action="store_true",
                    help="glibc malloc's defaults (else freed memory is kept: see keep_heap)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(MODELS), default="mlp",
                    help="reference model (mlp)")
    ap.add_argument("--threads", type=positive, default=1, help="torch.set_num_threads (1)")
    ap.add_argument("--batch", type=positive, default=128, help="images per step (128)")
    ap.add_argument("--steps", type=positive, default=50, help="timed steps (50)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (5)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--foreach", action="store_true",
                    help="AdamW's multi-tensor path (torch 1.13 defaults to the per-tensor one)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    add_malloc_arg(ap)
    args = ap.parse_args()
    keep_heap(args)
    if args.warmup < 0:
        ap.error("--warmup must be >= 0")

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    torch.manual_seed(args.seed)

    model = MODELS[args.model]()
    model.train()  # dropout on, as regdist's training step
    opt = torch.optim.AdamW(param_groups(model, 0.01), lr=3e-4, betas=(0.9, 0.999), eps=1e-8,
                            foreach=args.foreach)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    x = torch.rand(args.batch, 1, 28, 28) * 2.0 - 1.0
    y = torch.arange(args.batch) % 10

    times = []
    for s in range(-args.warmup, args.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        t1 = time.perf_counter()
        if s >= 0:
            times.append(t1 - t0)
    if not torch.isfinite(loss):
        print("torch_peer: loss is not finite (%s)" % float(loss), file=sys.stderr)
        return 1

    med = statistics.median(times)
    ips = args.batch / med
    if args.json:
        out = {"framework": "pytorch", "batch": args.batch, "threads": args.threads,
               "steps": args.steps, "median_step_ms": round(1e3 * med, 4),
               "images_per_s": round(ips, 1)}
        if args.model != "mlp":
            out["model"] = args.model
        print(json.dumps(out))
    else:
        name = "" if args.model == "mlp" else " " + args.model
        print("pytorch %s%s: batch %d, %d thread%s, %d steps, %s\n"
              "  median step %.3f ms  ->  %.0f images/s"
              % (torch.__version__, name, args.batch, args.threads,
                 "s" if args.threads > 1 else "", args.steps, malloc_words(args), 1e3 * med, ips))
    return 0


if __name__ == "__main__":
    sys.exit(main())
