#!/usr/bin/python3
"""gen_augment_fixtures.py: torchvision/torch reference values for tests/test_core_augment.c.

Exact cases (regdist must match them bit for bit):
  - RandomCrop(size, padding=p, padding_mode) for every offset (dy, dx) in [0, 2p]^2, as
    torchvision computes it: F.pad(img, p, mode) then F.crop(dy, dx, H, W), for padding_mode
    'constant' (regdist "zero") and 'reflect';
  - F.hflip and F.vflip.
Distribution cases (regdist's draws come from Philox, torch's from its own generator, so they
are compared by two-sample Kolmogorov-Smirnov tests in C):
  - RandomErasing(p=1, scale, ratio, value=0) on an H x W image of ones: the erased box's
    height and width (read back from the zeros), NO_BOX counted when no box fitted;
  - torch.distributions.Beta(a, a) samples of mixup's lambda for a = 0.2 and 1.0;
  - timm's cutmix lambda after box correction (timm's rand_bbox and cutmix_bbox_and_lam,
    re-stated here because timm is not installed: same numpy calls) for a = 1.0.

Usage (Debian's python3 has torch and torchvision):
    /usr/bin/python3 tests/torch/gen_augment_fixtures.py [-o tests/fixtures/augment_reference.h]
"""
import argparse
import os

import numpy as np
import torch
import torchvision
import torchvision.transforms as T
import torchvision.transforms.functional as F

SEED = 20240613
N_DIST = 2000  # samples per distribution case


def c_float(v):
    s = "%.9g" % v
    if not any(ch in s for ch in ".en"):
        s += ".0"
    return s + "f"


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

    def ints(self, name, vals):
        vals = [int(v) for v in vals]
        body = ",\n    ".join(
            ", ".join(str(v) for v in vals[i:i + 16]) for i in range(0, len(vals), 16))
        self.parts.append("static const int32_t %s[%d] = {\n    %s};\n" % (name, len(vals), body))

    def text(self):
        return "".join(self.parts)


def case_crop_flip(h):
    torch.manual_seed(SEED + 1)
    C, H, W, P = 2, 5, 6, 3
    img = torch.randn(C, H, W)
    h.comment("RandomCrop((%d, %d), padding=%d, padding_mode) for every offset, row-major over\n"
              "(dy, dx) in [0, 2p]^2: crop_<mode>[(dy*(2p+1)+dx)*C*H*W ...]. Then F.hflip and\n"
              "F.vflip of the image." % (H, W, P))
    h.define("AUGREF_C", C)
    h.define("AUGREF_H", H)
    h.define("AUGREF_W", W)
    h.define("AUGREF_P", P)
    h.floats("augref_img", img)
    for mode, name in (("constant", "zero"), ("reflect", "reflect")):
        padded = F.pad(img, [P, P, P, P], padding_mode=mode)
        outs = []
        for dy in range(2 * P + 1):
            for dx in range(2 * P + 1):
                outs.append(F.crop(padded, dy, dx, H, W))
        # the transform itself draws (dy, dx) and must agree with pad-then-crop
        torch.manual_seed(SEED + 2)
        t = T.RandomCrop((H, W), padding=P, padding_mode=mode)
        y = t(img)
        assert any(torch.equal(y, o) for o in outs)
        h.floats("augref_crop_" + name, torch.stack(outs))
    h.floats("augref_hflip", F.hflip(img))
    h.floats("augref_vflip", F.vflip(img))


def case_erase(h):
    erase_boxes(h, "", (0.02, 0.33), (0.3, 3.3), SEED + 3)
    # tall boxes only: h = sqrt(area * ratio) in torchvision, so a swapped h and w shows
    erase_boxes(h, "_tall", (0.05, 0.2), (1.5, 3.0), SEED + 6)


def erase_boxes(h, suffix, scale, ratio, seed):
    torch.manual_seed(seed)
    H, W = 24, 32
    er = T.RandomErasing(p=1.0, scale=scale, ratio=ratio, value=0)
    hs, ws = [], []
    for _ in range(N_DIST):
        y = er(torch.ones(1, H, W))
        z = (y[0] == 0)
        rows = z.any(dim=1).nonzero()
        cols = z.any(dim=0).nonzero()
        if len(rows) == 0:
            hs.append(0)
            ws.append(0)
            continue
        hs.append(int(rows.max() - rows.min() + 1))
        ws.append(int(cols.max() - cols.min() + 1))
    h.comment("RandomErasing(p=1, scale=%r, ratio=%r, value=0) on a 1x%dx%d\n"
              "image of ones, %d times: the erased box's height and width (0, 0 when no box\n"
              "fitted in 10 attempts)." % (scale, ratio, H, W, N_DIST))
    if not suffix:
        h.define("AUGREF_ERASE_H", H)
        h.define("AUGREF_ERASE_W", W)
        h.define("AUGREF_N", N_DIST)
    h.ints("augref_erase%s_h" % suffix, hs)
    h.ints("augref_erase%s_w" % suffix, ws)


def rand_bbox(img_shape, lam):
    # timm.data.mixup.rand_bbox with margin 0
    ratio = np.sqrt(1 - lam)
    img_h, img_w = img_shape[-2:]
    cut_h, cut_w = int(img_h * ratio), int(img_w * ratio)
    cy = np.random.randint(0, img_h)
    cx = np.random.randint(0, img_w)
    yl = np.clip(cy - cut_h // 2, 0, img_h)
    yh = np.clip(cy + cut_h // 2, 0, img_h)
    xl = np.clip(cx - cut_w // 2, 0, img_w)
    xh = np.clip(cx + cut_w // 2, 0, img_w)
    return yl, yh, xl, xh


def case_mix(h):
    torch.manual_seed(SEED + 4)
    h.comment("mixup lambda ~ torch.distributions.Beta(a, a), %d samples each." % N_DIST)
    for a, name in ((0.2, "02"), (1.0, "10")):
        lam = torch.distributions.Beta(torch.tensor(a), torch.tensor(a)).sample((N_DIST,))
        h.floats("augref_beta_" + name, lam)
    np.random.seed(SEED + 5)
    H, W, a = 24, 32, 1.0
    lams = []
    for _ in range(N_DIST):
        lam = float(np.random.beta(a, a))
        yl, yh, xl, xh = rand_bbox((1, H, W), lam)
        lams.append(1.0 - (yh - yl) * (xh - xl) / float(H * W))
    h.comment("timm cutmix (alpha %g, image %dx%d): lambda corrected to the box's area." % (a, H, W))
    h.floats("augref_cutmix_10", lams)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output",
                    default=os.path.join(here, "..", "fixtures", "augment_reference.h"))
    args = ap.parse_args()
    h = Header()
    h.parts.append("// augment_reference.h: torchvision/torch reference values for "
                   "test_core_augment.c.\n"
                   "// GENERATED by tests/torch/gen_augment_fixtures.py (torch %s, torchvision %s,\n"
                   "// seed %d); do not edit.\n#pragma once\n#include <stdint.h>\n"
                   % (torch.__version__, torchvision.__version__, SEED))
    case_crop_flip(h)
    case_erase(h)
    case_mix(h)
    with open(args.output, "w") as f:
        f.write(h.text())


if __name__ == "__main__":
    main()
