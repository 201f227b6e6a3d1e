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


def _smooth_field(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    """Low-frequency noise in about [-1, 1]: random values on a coarse grid, cubic-resized."""
    gh, gw = max(2, int(h / scale)), max(2, int(w / scale))
    f = cv2.resize(rng.normal(0, 1, (gh, gw)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    return f / max(1e-6, float(np.abs(f).max()))


def coat_pattern(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """An animal-coat-like pattern (h x w RGB): bold, regular, high-contrast stripes that
    bend (a zebra, a caterpillar, a tiger), or spots and rosettes (a leopard, a ladybird),
    in two or three colours. Fine, regular, high-contrast texture is what this model
    mistakes for a mark most (bench/README.md): a hard negative."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = rng.uniform(6, 28)  # px at the view's size: a few to a few dozen stripes across
    if rng.random() < 0.6:  # warped stripes
        a = rng.uniform(0, np.pi)
        warp = _smooth_field(rng, h, w, rng.uniform(40, 160)) * period * rng.uniform(0.5, 3)
        phase = (xx * np.cos(a) + yy * np.sin(a) + warp) * (2 * np.pi / period)
        v = np.sin(phase)
        mask = v > rng.uniform(-0.5, 0.5)
    else:  # spots: thresholded band-passed noise
        f = _smooth_field(rng, h, w, period / 2) - _smooth_field(rng, h, w, period * 2) * 0.5
        mask = f > rng.uniform(0.1, 0.4)
        if rng.random() < 0.5:  # rosettes: a dark ring around each spot
            ring = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=int(rng.integers(1, 3))) > 0
            mask = np.where(ring & ~mask, 2, mask.astype(np.int8))
    dark = rng.uniform(0, 60, 3)
    light = rng.uniform(120, 255, 3) if rng.random() < 0.7 else np.full(3, rng.uniform(180, 255))
    mid = (dark + light) / 2 + rng.uniform(-40, 40, 3)
    colors = np.stack([light, dark, mid] if rng.random() < 0.5 else [dark, light, mid]).astype(np.float32)
    img = colors[np.asarray(mask, np.int64)]
    img *= 1 + 0.3 * _smooth_field(rng, h, w, rng.uniform(30, 120))[..., None]  # shading
    if rng.random() < 0.5:
        img += rng.normal(0, rng.uniform(2, 10), img.shape).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.2))
    return np.clip(img, 0, 255).astype(np.uint8)


def add_coat_patch(view: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`view` with a coat pattern (coat_pattern) filling a soft-edged blob (an animal's
    body or a patch of it), 5-50 % of the view: part of the scene, not a mark."""
    h, w = view.shape[:2]
    pat = coat_pattern(rng, h, w)
    blob = np.zeros((h, w), np.float32)
    frac = rng.uniform(0.05, 0.5)
    ax = np.sqrt(frac * h * w / np.pi) * np.exp(rng.uniform(-0.6, 0.6) * np.array([1, -1]))
    center = (int(rng.uniform(0.2, 0.8) * w), int(rng.uniform(0.2, 0.8) * h))
    cv2.ellipse(blob, center, (max(2, int(ax[0])), max(2, int(ax[1]))), float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    blob *= _smooth_field(rng, h, w, max(8, min(h, w) / 6)) * 0.5 + 1 > 0.8  # ragged edge
    blob = cv2.GaussianBlur(blob, (0, 0), rng.uniform(1, 4))[..., None]
    return np.clip(view.astype(np.float32) * (1 - blob) + pat.astype(np.float32) * blob + 0.5, 0, 255).astype(np.uint8)
