"""Clean backgrounds made from no photo at all: extra negatives for the watermark model,
so it learns the shape of marks rather than the look of a few dozen photos."""

from __future__ import annotations

import cv2
import numpy as np


def dead_leaves(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A 'dead leaves' image: overlapping random disks, boxes and polygons (log-uniform
    sizes), some textured, lightly blurred. Natural-image-like edge statistics from
    no photo at all: extra clean backgrounds so the watermark model learns the shape of
    marks rather than the look of a dozen photos."""
    img = np.empty((h, w, 3), np.float32)
    img[:] = rng.uniform(0, 255, 3)
    rmin, rmax = 2.0, max(h, w) / 2
    n = int(rng.integers(300, 700))
    sat = rng.uniform(0.15, 0.7)
    # log-uniform sizes, largest first, so small shapes end on top and the canvas is covered
    for r in np.sort(rmin * (rmax / rmin) ** rng.random(n))[::-1]:
        rgb = rng.uniform(0, 255, 3)
        c = tuple(float(v) for v in rgb.mean() + (rgb - rgb.mean()) * sat)  # muted, photo-like colours
        cx, cy = rng.uniform(-r, w + r), rng.uniform(-r, h + r)
        kind = rng.integers(3)
        if kind == 0:
            cv2.circle(img, (int(cx), int(cy)), int(r), c, -1, lineType=cv2.LINE_AA)
        elif kind == 1:
            box = ((cx, cy), (2 * r * rng.uniform(0.3, 1), 2 * r * rng.uniform(0.3, 1)), rng.uniform(0, 180))
            cv2.fillPoly(img, [cv2.boxPoints(box).astype(np.int32)], c, lineType=cv2.LINE_AA)
        else:
            n = int(rng.integers(3, 7))
            ang = np.sort(rng.uniform(0, 2 * np.pi, n))
            pts = np.stack([cx + r * np.cos(ang), cy + r * np.sin(ang)], 1).astype(np.int32)
            cv2.fillPoly(img, [pts], c, lineType=cv2.LINE_AA)
    if rng.random() < 0.5:  # grain / texture
        img += rng.normal(0, rng.uniform(2, 12), img.shape).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.5))
    return np.clip(img, 0, 255).astype(np.uint8)
