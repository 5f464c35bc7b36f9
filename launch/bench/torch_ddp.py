#!/usr/bin/python3
"""torch_ddp.py: the PyTorch DistributedDataParallel peer of regdist's data-parallel benchmark.

N processes on this machine (spawned from this script by torch.multiprocessing.spawn), each
with torch.set_num_threads(--threads), train the reference model of torch_peer.py (mlp or
cnn6_mlp4, built by the same functions) wrapped in torch.nn.parallel.DistributedDataParallel,
gloo backend, CPU, rendezvous at MASTER_ADDR=127.0.0.1 on a free port. The global batch
--batch is split evenly across the processes (it must divide); inputs are random, a different
stream on every rank. A full training step, as torch_peer.py: zero_grad, forward,
CrossEntropyLoss with label smoothing 0.1, backward (DDP all-reduces the gradients, averaged),
clip_grad_norm_(1.0), AdamW step (lr 3e-4, weight decay 0.01 on the weight matrices and kernels
only; biases and norm parameters in a no-decay group), dropout active.

BatchNorm is LOCAL: each process normalises with the statistics of its own slice of the batch
(ghost batches of batch/procs). PyTorch 1.13 cannot run SyncBatchNorm on CPU (its forward
requires CUDA tensors), so this is the only BatchNorm DDP can do here; compare it with regdist
running local BN (not bn.group / SyncBN). DDP's default broadcast_buffers=True also copies rank
0's running statistics to the others at every forward, as stock DDP does.

Timing: the processes meet at a barrier (untimed) before every step; each times its own step,
and the step's time is the slowest rank's (an all-reduce MAX after the run). Reported from rank
0: the median of those step times over --steps after --warmup untimed steps, and global
images/s = batch / median.

Usage (Debian's python3 has torch):
    /usr/bin/python3 launch/bench/torch_ddp.py [--model mlp|cnn6_mlp4] [--procs 2] [--threads 1]
                                               [--batch 128] [--steps 20] [--warmup 5] [--json]
                                               [--default-malloc]
Like torch_peer.py it runs with glibc malloc keeping freed memory (--default-malloc: not).
--json prints one object: {"framework": "pytorch-ddp-gloo", "model", "procs", "threads",
"batch", "steps", "median_step_ms", "images_per_s"}.
"""
import argparse
import json
import os
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
import torch.nn as nn  # noqa: E402
from torch.nn.parallel import DistributedDataParallel as DDP  # noqa: E402

from torch_peer import (MODELS, add_malloc_arg, keep_heap, malloc_words, param_groups,  # noqa: E402
                        positive)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank, args, port, result_q):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    dist.init_process_group("gloo", rank=rank, world_size=args.procs)
    try:
        torch.manual_seed(args.seed)  # same init everywhere (DDP also broadcasts rank 0's)
        model = MODELS[args.model]()
        model.train()  # dropout on, BN in training mode (local statistics)
        ddp = DDP(model)
        opt = torch.optim.AdamW(param_groups(model, 0.01), lr=3e-4, betas=(0.9, 0.999),
                                eps=1e-8, foreach=args.foreach)
        loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)

        local = args.batch // args.procs
        g = torch.Generator().manual_seed(args.seed * 1000 + rank + 1)
        x = torch.rand(local, 1, 28, 28, generator=g) * 2.0 - 1.0
        y = torch.randint(0, 10, (local,), generator=g)
        torch.manual_seed(args.seed * 1000 + rank + 1)  # per-rank dropout streams

        times = []
        for s in range(-args.warmup, args.steps):
            dist.barrier()
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(ddp(x), y)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            t1 = time.perf_counter()
            if s >= 0:
                times.append(t1 - t0)

        t = torch.tensor(times, dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        finite = torch.tensor([1.0 if bool(torch.isfinite(loss)) else 0.0])
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        if rank == 0:
            result_q.put((t.tolist(), bool(finite.item()), float(loss)))
    finally:
        dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(MODELS), default="cnn6_mlp4",
                    help="reference model (cnn6_mlp4)")
    ap.add_argument("--procs", type=positive, default=2, help="processes (2)")
    ap.add_argument("--threads", type=positive, default=1,
                    help="torch.set_num_threads per process (1)")
    ap.add_argument("--batch", type=positive, default=128,
                    help="global images per step, split evenly across processes (128)")
    ap.add_argument("--steps", type=positive, default=20, help="timed steps (20)")
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
    if args.batch % args.procs:
        ap.error("--batch %d does not split evenly across %d processes"
                 % (args.batch, args.procs))

    ctx = mp.get_context("spawn")
    result_q = ctx.SimpleQueue()
    mp.spawn(worker, args=(args, free_port(), result_q), nprocs=args.procs, join=True)
    times, finite, last_loss = result_q.get()
    if not finite:
        print("torch_ddp: loss is not finite (rank 0: %s)" % last_loss, file=sys.stderr)
        return 1

    med = statistics.median(times)
    ips = args.batch / med
    if args.json:
        print(json.dumps({"framework": "pytorch-ddp-gloo", "model": args.model,
                          "procs": args.procs, "threads": args.threads, "batch": args.batch,
                          "steps": args.steps, "median_step_ms": round(1e3 * med, 4),
                          "images_per_s": round(ips, 1)}))
    else:
        print("pytorch %s DDP gloo %s: %d process%s x %d thread%s, global batch %d (%d/proc), "
              "%d steps, %s\n  median step %.3f ms  ->  %.0f images/s"
              % (torch.__version__, args.model, args.procs, "es" if args.procs > 1 else "",
                 args.threads, "s" if args.threads > 1 else "", args.batch,
                 args.batch // args.procs, args.steps, malloc_words(args), 1e3 * med, ips))
    return 0


if __name__ == "__main__":
    sys.exit(main())
