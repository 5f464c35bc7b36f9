#!/usr/bin/python3
"""gen_fixtures.py: PyTorch reference values for tests/test_core_torch.c.

Runs small float32 cases through torch (nn.Linear, nn.LayerNorm, nn.GELU,
nn.CrossEntropyLoss with label smoothing, torch.optim SGD/Adam/AdamW, clip_grad_norm_,
nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.BatchNorm2d/1d)
and writes them as C arrays to tests/fixtures/torch_reference.h, so that regdist's core
can be checked number for number against PyTorch without PyTorch at test time.

Usage (Debian's python3 has torch; a pyenv python3 on PATH may not):
    /usr/bin/python3 tests/torch/gen_fixtures.py [-o tests/fixtures/torch_reference.h]

Every float is printed with '%.9g', which round-trips float32 exactly. Arrays are
row-major, as torch's contiguous tensors (Linear weight is (out, in)).
"""
import argparse
import math
import os
import sys

import torch

SEED = 20240601


class Header:
    def __init__(self):
        self.parts = []

    def comment(self, text):
        self.parts.append("\n" + "".join("// " + line + "\n" for line in text.strip().splitlines()))

    def define(self, name, value):
        self.parts.append("#define %s %s\n" % (name, value))

    def floats(self, name, t):
        vals = [float(v) for v in torch.as_tensor(t, dtype=torch.float32).reshape(-1).tolist()]
        body = ",\n    ".join(
            ", ".join(c_float(v) for v in vals[i:i + 6]) for i in range(0, len(vals), 6))
        self.parts.append("static const float %s[%d] = {\n    %s};\n" % (name, len(vals), body))

    def ints(self, name, t):
        vals = [int(v) for v in torch.as_tensor(t).reshape(-1).tolist()]
        self.parts.append("static const int32_t %s[%d] = {%s};\n"
                          % (name, len(vals), ", ".join(str(v) for v in vals)))

    def text(self):
        return "".join(self.parts)


def c_float(v):
    if not math.isfinite(v):
        raise ValueError("non-finite reference value %r" % v)
    s = "%.9g" % v
    if not any(ch in s for ch in ".e"):
        s += ".0"  # "1f" is not a C float literal
    return s + "f"


def case_linear(h):
    torch.manual_seed(SEED + 1)
    B, C, OC = 4, 5, 3
    lin = torch.nn.Linear(C, OC)
    x = torch.randn(B, C, requires_grad=True)
    dy = torch.randn(B, OC)
    y = lin(x)
    y.backward(dy)
    h.comment("(a) nn.Linear(%d, %d): y = x W^T + b, and backward of dy." % (C, OC))
    h.define("LIN_B", B)
    h.define("LIN_C", C)
    h.define("LIN_OC", OC)
    h.floats("lin_x", x.detach())
    h.floats("lin_w", lin.weight.detach())
    h.floats("lin_b", lin.bias.detach())
    h.floats("lin_dy", dy)
    h.floats("lin_y", y.detach())
    h.floats("lin_dx", x.grad)
    h.floats("lin_dw", lin.weight.grad)
    h.floats("lin_db", lin.bias.grad)


def case_layernorm(h):
    torch.manual_seed(SEED + 2)
    B, D = 3, 6
    ln = torch.nn.LayerNorm(D, eps=1e-5)
    with torch.no_grad():
        ln.weight.copy_(1.0 + 0.5 * torch.randn(D))
        ln.bias.copy_(0.3 * torch.randn(D))
    x = torch.randn(B, D)
    x[1] = x[1] * 4.0 + 10.0  # a row far from zero mean: the mean must be subtracted well
    x[2] = x[2] * 1e-2        # a row with variance near eps: eps must sit inside the sqrt
    x.requires_grad_(True)
    dy = torch.randn(B, D)
    y = ln(x)
    y.backward(dy)
    h.comment("(b) nn.LayerNorm(%d, eps=1e-5) with non-trivial weight and bias.\n"
              "Row 1 has mean ~10, row 2 has variance ~1e-4 (comparable to eps)." % D)
    h.define("LN_B", B)
    h.define("LN_D", D)
    h.define("LN_EPS", "1e-5f")
    h.floats("ln_x", x.detach())
    h.floats("ln_w", ln.weight.detach())
    h.floats("ln_b", ln.bias.detach())
    h.floats("ln_dy", dy)
    h.floats("ln_y", y.detach())
    h.floats("ln_dx", x.grad)
    h.floats("ln_dw", ln.weight.grad)
    h.floats("ln_db", ln.bias.grad)


def case_gelu(h):
    N = 16
    x = torch.linspace(-6.0, 6.0, N).requires_grad_(True)
    gelu = torch.nn.GELU()  # approximate='none': exact erf form
    y = gelu(x)
    dy = torch.linspace(-1.5, 2.5, N)  # varied upstream gradients, signs included
    (dx,) = torch.autograd.grad(y, x, dy, retain_graph=True)
    (dx1,) = torch.autograd.grad(y, x, torch.ones(N))
    h.comment("(c) nn.GELU() (exact erf) on %d points spanning [-6, 6]:\n"
              "gelu_dx for the varied gelu_dy, gelu_dx_ones for dy = 1 (the derivative itself)."
              % N)
    h.define("GELU_N", N)
    h.floats("gelu_x", x.detach())
    h.floats("gelu_y", y.detach())
    h.floats("gelu_dy", dy)
    h.floats("gelu_dx", dx)
    h.floats("gelu_dx_ones", dx1)


def case_xent(h):
    torch.manual_seed(SEED + 4)
    B, K = 5, 4
    logits = 2.0 * torch.randn(B, K)
    logits[1] = torch.tensor([80.0, -3.0, 79.5, 2.0])      # large: overflows exp() unshifted
    logits[3] = torch.tensor([-90.0, 100.0, -100.0, 95.0])  # large, true class far from max
    labels = torch.tensor([2, 0, 1, 0, 3], dtype=torch.int64)
    logits.requires_grad_(True)
    loss = torch.nn.CrossEntropyLoss(label_smoothing=0.1, reduction="mean")(logits, labels)
    loss.backward()
    correct = int((logits.detach().argmax(dim=1) == labels).sum())
    h.comment("(d) nn.CrossEntropyLoss(label_smoothing=0.1, reduction='mean') on (%d, %d)\n"
              "logits; rows 1 and 3 hold values of 80..100. XENT_LOSS is the mean loss,\n"
              "xent_dlogits its gradient; XENT_CORRECT counts argmax == label." % (B, K))
    h.define("XENT_B", B)
    h.define("XENT_K", K)
    h.define("XENT_SMOOTHING", "0.1f")
    h.define("XENT_LOSS", c_float(float(loss)))
    h.define("XENT_CORRECT", correct)
    h.floats("xent_logits", logits.detach())
    h.ints("xent_labels", labels)
    h.floats("xent_dlogits", logits.grad)


OPT_STEPS = 5


def optimizer_trajectory(make_opt, W0, b0, gW, gb):
    W = W0.clone().requires_grad_(True)
    b = b0.clone().requires_grad_(True)
    opt = make_opt([{"params": [W]}, {"params": [b], "weight_decay": 0.0}])
    Ws, bs = [], []
    for s in range(OPT_STEPS):
        W.grad = gW[s].clone()
        b.grad = gb[s].clone()
        opt.step()
        Ws.append(W.detach().clone())
        bs.append(b.detach().clone())
    return torch.stack(Ws), torch.stack(bs)


def case_optim(h):
    torch.manual_seed(SEED + 5)
    W0 = torch.randn(3, 4)
    b0 = torch.randn(3)
    # gradients of varied size and sign, one step nearly zero (Adam's denominators)
    gW = torch.randn(OPT_STEPS, 3, 4)
    gb = torch.randn(OPT_STEPS, 3)
    gW[3] *= 1e-3
    gb[3] *= 1e-3
    gW[:, 2, 3] *= 1e-7  # sqrt(v) ~ 1e-7 ~ 10 eps: where Adam's eps sits matters
    h.comment("(e) torch.optim, %d steps from W0 (3,4) and b0 (3) with the gradients\n"
              "opt_gW[s], opt_gb[s] (step 4's are ~1e-3, W[2][3]'s always ~1e-7 so that\n"
              "Adam's eps matters). Two parameter groups: weight_decay on W only,\n"
              "{'params': [b], 'weight_decay': 0.0}. <name>_W[s], <name>_b[s] are the values\n"
              "after step s+1. foreach=False: torch 1.13's single-tensor formulas." % OPT_STEPS)
    h.define("OPT_STEPS", OPT_STEPS)
    h.floats("opt_W0", W0)
    h.floats("opt_b0", b0)
    h.floats("opt_gW", gW)
    h.floats("opt_gb", gb)
    cases = [
        ("adamw", "AdamW(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)",
         lambda g: torch.optim.AdamW(g, lr=1e-2, betas=(0.9, 0.999), eps=1e-8,
                                     weight_decay=0.1, foreach=False)),
        ("adam", "Adam(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1) (coupled L2)",
         lambda g: torch.optim.Adam(g, lr=1e-2, betas=(0.9, 0.999), eps=1e-8,
                                    weight_decay=0.1, foreach=False)),
        ("sgd_nesterov", "SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)",
         lambda g: torch.optim.SGD(g, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01,
                                   foreach=False)),
        ("sgd_damp", "SGD(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)",
         lambda g: torch.optim.SGD(g, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01,
                                   foreach=False)),
    ]
    for name, desc, make in cases:
        Ws, bs = optimizer_trajectory(make, W0, b0, gW, gb)
        h.comment(desc)
        h.floats("%s_W" % name, Ws)
        h.floats("%s_b" % name, bs)


def case_clip(h):
    torch.manual_seed(SEED + 6)
    h.comment("(f) torch.nn.utils.clip_grad_norm_(max_norm=1.0) over two tensors, W (3,4)\n"
              "and b (3), flattened W then b. 'big' has norm > 1 (clipped), 'small' < 1\n"
              "(left alone). CLIP_<x>_NORM is the returned norm before clipping.")
    h.define("CLIP_N", 15)
    for name, scale in (("big", 1.0), ("small", 0.1)):
        W = torch.zeros(3, 4, requires_grad=True)
        b = torch.zeros(3, requires_grad=True)
        W.grad = scale * torch.randn(3, 4)
        b.grad = scale * torch.randn(3)
        g_in = torch.cat([W.grad.reshape(-1), b.grad]).clone()
        norm = torch.nn.utils.clip_grad_norm_([W, b], max_norm=1.0)
        assert (float(norm) > 1.0) == (name == "big"), (name, float(norm))
        h.define("CLIP_%s_NORM" % name.upper(), c_float(float(norm)))
        h.floats("clip_%s_in" % name, g_in)
        h.floats("clip_%s_out" % name, torch.cat([W.grad.reshape(-1), b.grad]))


def case_schedule(h):
    lr, min_lr, warmup, total = 0.1, 1e-3, 5, 20
    vals = []
    for step in range(total + 1):
        if step < warmup:
            vals.append(lr * (step + 1) / warmup)
        else:
            p = (step - warmup) / (total - warmup)
            vals.append(min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * p)))
    h.comment("(g) cosine schedule with linear warmup (a formula, evaluated in double):\n"
              "lr (step+1)/warmup for step < warmup, then\n"
              "min_lr + (lr - min_lr)/2 (1 + cos(pi (step - warmup) / (total - warmup))),\n"
              "for steps 0..total.")
    h.define("SCHED_LR", "0.1f")
    h.define("SCHED_MIN_LR", "1e-3f")
    h.define("SCHED_WARMUP", warmup)
    h.define("SCHED_TOTAL", total)
    h.floats("sched_lr", vals)


def case_conv2d(h):
    torch.manual_seed(SEED + 7)
    B, C, H, W, OC, K, S, P = 2, 3, 7, 6, 4, 3, 2, 1
    conv = torch.nn.Conv2d(C, OC, K, stride=S, padding=P)
    x = torch.randn(B, C, H, W, requires_grad=True)
    y = conv(x)
    dy = torch.randn(y.shape)
    y.backward(dy)
    h.comment("(h) nn.Conv2d(%d, %d, %d, stride=%d, padding=%d) on a (%d,%d,%d,%d) input\n"
              "(H != W; along W the stride leaves the last padded column unused): y, and backward of dy.\n"
              "CONV_OH, CONV_OW are the output size." % (C, OC, K, S, P, B, C, H, W))
    for name, v in (("B", B), ("C", C), ("H", H), ("W", W), ("OC", OC), ("K", K), ("S", S),
                    ("P", P), ("OH", y.shape[2]), ("OW", y.shape[3])):
        h.define("CONV_" + name, v)
    h.floats("conv_x", x.detach())
    h.floats("conv_w", conv.weight.detach())
    h.floats("conv_b", conv.bias.detach())
    h.floats("conv_dy", dy)
    h.floats("conv_y", y.detach())
    h.floats("conv_dx", x.grad)
    h.floats("conv_dw", conv.weight.grad)
    h.floats("conv_db", conv.bias.grad)


def case_pool(h):
    torch.manual_seed(SEED + 8)
    B, C, H, W, K, S, P = 2, 2, 5, 6, 3, 2, 1
    x = torch.randn(B, C, H, W)
    x[0, 0, 0:2, 0:2] = 0.75  # a tie inside one window: the first maximum takes the gradient
    x.requires_grad_(True)
    maxpool = torch.nn.MaxPool2d(K, stride=S, padding=P)
    avgpool = torch.nn.AvgPool2d(K, stride=S, padding=P)  # count_include_pad=True
    ymax, yavg = maxpool(x), avgpool(x)
    dy = torch.randn(ymax.shape)
    (dxmax,) = torch.autograd.grad(ymax, x, dy)
    (dxavg,) = torch.autograd.grad(yavg, x, dy)
    h.comment("(i) nn.MaxPool2d(%d, stride=%d, padding=%d) and nn.AvgPool2d with the same\n"
              "arguments (count_include_pad=True) on a (%d,%d,%d,%d) input with a four-way tie of\n"
              "0.75 in sample 0, channel 0, rows/cols 0-1; backward of pool_dy through both."
              % (K, S, P, B, C, H, W))
    for name, v in (("B", B), ("C", C), ("H", H), ("W", W), ("K", K), ("S", S), ("P", P),
                    ("OH", ymax.shape[2]), ("OW", ymax.shape[3])):
        h.define("POOL_" + name, v)
    h.floats("pool_x", x.detach())
    h.floats("pool_dy", dy)
    h.floats("maxpool_y", ymax.detach())
    h.floats("maxpool_dx", dxmax)
    h.floats("avgpool_y", yavg.detach())
    h.floats("avgpool_dx", dxavg)


def bn_steps(h, prefix, bn, xs, dy, ghost=0):
    """Runs train-mode steps of bn on each x of xs (in ghost chunks if ghost > 0) and records
    the last step's y and gradients (of dy) and the running statistics after all steps."""
    for s, x in enumerate(xs):
        x = x.clone().requires_grad_(True)
        bn.zero_grad()
        chunks = x.split(ghost) if ghost > 0 else (x,)
        y = torch.cat([bn(c) for c in chunks])
        if s == len(xs) - 1:
            y.backward(dy)
            h.floats(prefix + "_y", y.detach())
            h.floats(prefix + "_dx", x.grad)
            h.floats(prefix + "_dw", bn.weight.grad)
            h.floats(prefix + "_db", bn.bias.grad)
    h.floats(prefix + "_rmean", bn.running_mean)
    h.floats(prefix + "_rvar", bn.running_var)
    h.define(prefix.upper() + "_NBT", int(bn.num_batches_tracked))


def bn_make(cls, C, momentum):
    bn = cls(C, eps=1e-5, momentum=momentum)
    with torch.no_grad():
        bn.weight.copy_(1.0 + 0.5 * torch.randn(C))
        bn.bias.copy_(0.3 * torch.randn(C))
    return bn


def case_batchnorm(h):
    torch.manual_seed(SEED + 9)
    STEPS = 3
    h.comment("(j) nn.BatchNorm2d / nn.BatchNorm1d (eps=1e-5) in train mode, with non-trivial\n"
              "weight and bias, for %d steps on the inputs <p>_x[s]; channel 1 has mean ~10,\n"
              "channel 2 variance ~1e-4. <p>_y, <p>_dx, <p>_dw, <p>_db: the last step's output and\n"
              "its backward of <p>_dy (grads zeroed before it). <p>_rmean, <p>_rvar, <P>_NBT:\n"
              "the running statistics after all steps (running_var unbiased). Then eval mode:\n"
              "<p>_eval_y etc. for the input <p>_eval_x, using those running statistics.\n"
              "bn2d: BatchNorm2d(3, momentum=0.2) on (6,3,4,5); bn1d: BatchNorm1d(4) on (5,4)."
              % STEPS)
    h.define("BN_STEPS", STEPS)
    for prefix, cls, shape, momentum in (("bn2d", torch.nn.BatchNorm2d, (6, 3, 4, 5), 0.2),
                                         ("bn1d", torch.nn.BatchNorm1d, (5, 4), 0.1)):
        bn = bn_make(cls, shape[1], momentum)
        xs = torch.randn((STEPS,) + shape)
        xs[:, :, 1] = xs[:, :, 1] * 3.0 + 10.0
        xs[:, :, 2] = xs[:, :, 2] * 1e-2
        dy = torch.randn(shape)
        h.floats(prefix + "_w", bn.weight.detach())
        h.floats(prefix + "_b", bn.bias.detach())
        h.floats(prefix + "_x", xs)
        h.floats(prefix + "_dy", dy)
        bn_steps(h, prefix, bn, xs, dy)
        bn.eval()
        bn.zero_grad()
        x = torch.randn(shape).requires_grad_(True)
        y = bn(x)
        y.backward(dy)
        h.floats(prefix + "_eval_x", x.detach())
        h.floats(prefix + "_eval_y", y.detach())
        h.floats(prefix + "_eval_dx", x.grad)
        h.floats(prefix + "_eval_dw", bn.weight.grad)
        h.floats(prefix + "_eval_db", bn.bias.grad)
    h.comment("Ghost batches: BatchNorm2d(2) (momentum 0.1) applied in turn to the chunks of 3,\n"
              "3 and 1 samples of a (7,2,3,3) input (x.split(3)), one step.")
    bn = bn_make(torch.nn.BatchNorm2d, 2, 0.1)
    x = torch.randn(1, 7, 2, 3, 3)
    dy = torch.randn(7, 2, 3, 3)
    h.define("BNG_GHOST", 3)
    h.floats("bng_w", bn.weight.detach())
    h.floats("bng_b", bn.bias.detach())
    h.floats("bng_x", x)
    h.floats("bng_dy", dy)
    bn_steps(h, "bng", bn, x, dy, ghost=3)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output",
                    default=os.path.join(here, "..", "fixtures", "torch_reference.h"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    h = Header()
    h.parts.append("// torch_reference.h: PyTorch reference values for test_core_torch.c.\n"
                   "// GENERATED by tests/torch/gen_fixtures.py (torch %s, seed %d); do not edit.\n"
                   "#pragma once\n#include <stdint.h>\n" % (torch.__version__, SEED))
    for case in (case_linear, case_layernorm, case_gelu, case_xent, case_optim, case_clip,
                 case_schedule, case_conv2d, case_pool, case_batchnorm):
        case(h)
    out = os.path.normpath(args.output)
    with open(out, "w") as f:
        f.write(h.text())
    print("wrote %s" % out, file=sys.stderr)


if __name__ == "__main__":
    main()
