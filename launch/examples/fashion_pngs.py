#!/usr/bin/env python3
"""fashion_pngs.py: a folder of real images to try `regdist data images` on, made from
Fashion-MNIST: DIR/<class name>/<index>.png, ImageFolder layout, mixed the way real
collections are. A third of the images are 16-bit grayscale (the 8-bit value x 257, as an
X-ray scanner's range would be), a third are twice the size (56x56, each pixel repeated),
the rest 8-bit 28x28. Written with the standard library's zlib: no imaging library needed.

    python3 launch/examples/fashion_pngs.py data/fashion-mnist.h5 DIR [--per-class N] [--split train]
"""
import argparse
import os
import struct
import sys
import zlib

import h5py
import numpy as np


def png_bytes(img, bit_depth):
    """A grayscale PNG of img (H, W), uint8 or uint16 per bit_depth."""
    h, w = img.shape
    raw = img.astype(">u2" if bit_depth == 16 else "u1").tobytes()
    row = w * (2 if bit_depth == 16 else 1)
    rows = b"".join(b"\x00" + raw[i * row:(i + 1) * row] for i in range(h))  # filter 0 per row

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, 0, 0, 0, 0)  # colour type 0: gray
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows, 6)) \
        + chunk(b"IEND", b"")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="a regdist dataset file (regdist data fashion-mnist makes one)")
    ap.add_argument("out", help="the folder to create")
    ap.add_argument("--per-class", type=int, default=300, help="images per class (default 300)")
    ap.add_argument("--split", default="train", help="split to take images from (default train)")
    a = ap.parse_args()
    with h5py.File(a.data, "r") as f:
        names = [n.decode() if isinstance(n, bytes) else str(n)
                 for n in f.attrs.get("classes", f.attrs.get("class_names", []))]
        x = f[a.split]["x"]
        y = f[a.split]["y"][:]
        if not names:
            names = [f"class{k}" for k in range(int(f.attrs["num_classes"]))]
        taken = {k: 0 for k in range(len(names))}
        for i in range(len(y)):
            k = int(y[i])
            if taken[k] >= a.per_class:
                if all(v >= a.per_class for v in taken.values()):
                    break
                continue
            img = np.asarray(x[i]).reshape(x.shape[-2], x.shape[-1])
            kind = taken[k] % 3
            if kind == 1:
                data = png_bytes(img.astype(np.uint16) * 257, 16)
            elif kind == 2:
                data = png_bytes(np.repeat(np.repeat(img, 2, axis=0), 2, axis=1), 8)
            else:
                data = png_bytes(img, 8)
            folder = os.path.join(a.out, names[k].replace("/", "-"))
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, f"{i:05d}.png"), "wb") as out:
                out.write(data)
            taken[k] += 1
    print(f"wrote {sum(taken.values())} PNGs in {len(names)} class folders under {a.out} "
          "(8-bit 28x28, 16-bit 28x28 and 8-bit 56x56, a third each)")


if __name__ == "__main__":
    sys.exit(main())
