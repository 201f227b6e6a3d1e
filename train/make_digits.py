"""Write scikit-learn's bundled handwritten digits (1797 real 8x8 scans, 10 classes) as a
small ImageNet-layout dataset for the tiny stage 1: OUT/{train,val}/<class>/*.png,
upscaled to `size` px. Offline; used by workflows/train_tiny.yaml and the tests.

    python train/make_digits.py [--out build/digits] [--size 32] [--val-fraction 0.2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def write_digits(out: str | Path, size: int = 32, val_fraction: float = 0.2, limit: int | None = None) -> Path:
    from sklearn.datasets import load_digits

    digits = load_digits()
    out = Path(out)
    n = len(digits.images) if limit is None else min(limit, len(digits.images))
    n_val = int(n * val_fraction)
    for i in range(n):
        split = "val" if i >= n - n_val else "train"
        folder = out / split / f"digit_{digits.target[i]}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (digits.images[i] * (255 / 16)).astype(np.uint8)  # 0..16 grey levels
        Image.fromarray(pixels).convert("RGB").resize((size, size), Image.BILINEAR).save(folder / f"{i:05d}.png")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="build/digits")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--val-fraction", type=float, default=0.2)
    a = p.parse_args(argv)
    out = write_digits(a.out, a.size, a.val_fraction)
    print(f"wrote {out}/train and {out}/val (ImageNet folder layout)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
