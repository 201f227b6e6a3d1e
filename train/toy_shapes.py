"""A captioned toy dataset whose captions can be checked in the images: coloured shapes
at positions ("a red triangle on the left"), and the deterministic checker that reads
colour, shape and position back from an image (a training image or a sample).

3 colours x 2 shapes x 2 positions = 12 prompts: chance of all three right is 1/12.
Squares and triangles, not squares and circles: at 32 px a tiny model's blurry square
and circle overlap in every measure the checker could use (measured: their fill ratios
spanned 0.46-0.90 and 0.36-0.88), while a triangle fills half its box.
Shapes vary in size and place within their half, so a model must follow the words, not
memorise 12 pictures. Used by bench/t2i_learning.py and its short test.

    python train/toy_shapes.py --out build/shapes --per-prompt 40   # PNGs + captions.jsonl
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

COLOURS = {"red": (215, 35, 35), "green": (30, 165, 50), "blue": (35, 70, 215)}
SHAPES = ("square", "triangle")
POSITIONS = ("left", "right")
BACKGROUND = (235, 235, 235)
SIZE = 32
SUPERSAMPLE = 4  # drawn at 4x, then reduced: smooth edges as in a photo


@dataclass(frozen=True)
class Attributes:
    colour: str
    shape: str
    position: str

    @property
    def caption(self) -> str:
        return f"a {self.colour} {self.shape} on the {self.position}"


ALL = [Attributes(c, s, p) for c, s, p in itertools.product(COLOURS, SHAPES, POSITIONS)]


def draw(attrs: Attributes, rng: random.Random, size: int = SIZE) -> Image.Image:
    big = size * SUPERSAMPLE
    im = Image.new("RGB", (big, big), BACKGROUND)
    half = rng.uniform(0.17, 0.23) * big  # half the shape's side: 11-15 px at 32 px
    cx = rng.uniform(0.25, 0.3) * big if attrs.position == "left" else rng.uniform(0.7, 0.75) * big
    cy = rng.uniform(0.35, 0.65) * big
    fill = COLOURS[attrs.colour]
    if attrs.shape == "square":
        ImageDraw.Draw(im).rectangle((cx - half, cy - half, cx + half, cy + half), fill=fill)
    else:  # apex up
        ImageDraw.Draw(im).polygon([(cx, cy - half), (cx + half, cy + half), (cx - half, cy + half)], fill=fill)
    return im.resize((size, size), Image.LANCZOS)


def write_dataset(out: str | Path, per_prompt: int, seed: int = 0) -> list[tuple[Path, str]]:
    """PNG files and their captions (also written as captions.jsonl): [(path, caption)]."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rows = []
    for i, attrs in enumerate(a for a in ALL for _ in range(per_prompt)):
        path = out / f"{i:05d}_{attrs.colour}_{attrs.shape}_{attrs.position}.png"
        draw(attrs, rng).save(path)
        rows.append((path, attrs.caption))
    (out / "captions.jsonl").write_text("".join(json.dumps({"file": p.name, "caption": c}) + "\n" for p, c in rows))
    return rows


def parse_caption(caption: str) -> Attributes:
    words = caption.lower().replace(".", "").split()
    pick = {name: next(w for w in words if w in options)
            for name, options in (("colour", COLOURS), ("shape", SHAPES), ("position", POSITIONS))}
    return Attributes(**pick)


def read_attributes(image: Image.Image | np.ndarray) -> Attributes | None:
    """Colour, shape and position read back from an image; None when no shape stands out.

    Foreground: pixels far from the background grey; the largest connected part of it is
    the shape (specks elsewhere are ignored). Colour: the palette entry nearest the
    shape's mean. Position: its centroid left or right of the middle. Shape: its share of
    its bounding box (a triangle fills 1/2, a square 1; the threshold sits between)."""
    rgb = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.float32)
    h, w = rgb.shape[:2]
    fg = np.linalg.norm(rgb - np.array(BACKGROUND, np.float32), axis=-1) > 80
    if fg.sum() < 0.01 * h * w:
        return None
    parts, n = ndimage.label(fg)
    shape = parts == 1 + int(np.argmax(ndimage.sum(fg, parts, range(1, n + 1))))
    mean = rgb[shape].mean(axis=0)
    colour = min(COLOURS, key=lambda c: float(np.linalg.norm(mean - np.array(COLOURS[c]))))
    ys, xs = np.nonzero(shape)
    position = "left" if xs.mean() < w / 2 else "right"
    fill = shape.sum() / ((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1))
    return Attributes(colour, "square" if fill > 0.75 else "triangle", position)


def score(image, caption: str) -> dict[str, bool]:
    """Which of the caption's attributes the image shows, and whether all do."""
    want, got = parse_caption(caption), read_attributes(image)
    right = {k: got is not None and getattr(got, k) == getattr(want, k) for k in ("colour", "shape", "position")}
    return {**right, "all": all(right.values())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="build/shapes")
    p.add_argument("--per-prompt", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    rows = write_dataset(a.out, a.per_prompt, a.seed)
    print(f"wrote {len(rows)} images and {a.out}/captions.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
