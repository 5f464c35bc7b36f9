#!/usr/bin/python3
"""torch_peer.py: the PyTorch peer of `regdist bench` for the reference MLP (launch/configs/mlp.cfg).

Times full training steps on random inputs: zero_grad, forward, CrossEntropyLoss with label
smoothing 0.1, backward, clip_grad_norm_(1.0), AdamW step (lr 3e-4, weight decay 0.01 on the
Linear weights only; biases and LayerNorm parameters in a no-decay group), dropout active.
The model is Flatten -> 3 x [Linear, LayerNorm, GELU, Dropout(0.3)] (784-256-256-128) ->
Linear(128, 10), as regdist's reference config.

Usage (Debian's python3 has torch):
    /usr/bin/python3 launch/bench/torch_peer.py [--threads 1] [--batch 128] [--steps 50]
                                                [--warmup 5] [--json]
--json prints one object with the fields regdist bench --json uses for the same quantities:
{"framework", "batch", "threads", "steps", "median_step_ms", "images_per_s"}.
"""
import argparse
import json
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=positive, default=1, help="torch.set_num_threads (1)")
    ap.add_argument("--batch", type=positive, default=128, help="images per step (128)")
    ap.add_argument("--steps", type=positive, default=50, help="timed steps (50)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (5)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--foreach", action="store_true",
                    help="AdamW's multi-tensor path (torch 1.13 defaults to the per-tensor one)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    if args.warmup < 0:
        ap.error("--warmup must be >= 0")

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    torch.manual_seed(args.seed)

    model = reference_mlp()
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
        print(json.dumps({"framework": "pytorch", "batch": args.batch, "threads": args.threads,
                          "steps": args.steps, "median_step_ms": round(1e3 * med, 4),
                          "images_per_s": round(ips, 1)}))
    else:
        print("pytorch %s: batch %d, %d thread%s, %d steps\n"
              "  median step %.3f ms  ->  %.0f images/s"
              % (torch.__version__, args.batch, args.threads, "s" if args.threads > 1 else "",
                 args.steps, 1e3 * med, ips))
    return 0


if __name__ == "__main__":
    sys.exit(main())
