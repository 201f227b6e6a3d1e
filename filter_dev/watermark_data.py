"""The watermark model's training and evaluation data: pairs of (clean view, the same view
with a synthetic watermark) cut from real photos (filter_dev/photos.py WATERMARK_SPLIT), plus
per-cell labels of where the mark is.

Training views are augmented so a few dozen photos look like many: crops and rescales,
rotations, colour and gamma changes, haze, sprinkled dots, 2x2 collages, synthetic
dead-leaves backgrounds, optionally (PairSpec.coat_fraction) patches of animal-coat
patterns (bold warped stripes, spots: filter_dev/synth/backgrounds.py, a hard negative),
and ORDINARY SCENE TEXT (signs, rows of ads, labels:
filter_dev/synth/text.py) drawn into the view BEFORE the mark, so both images of a pair carry
it and only the overlay differs: the model learns that signs and labels are not marks.
Evaluation views stay plain photos.

Every sample i is drawn from numpy's default_rng([seed, split, style, i]), so the data do
not depend on worker scheduling.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from filter_dev.photos import load_photo
from filter_dev.synth.backgrounds import add_coat_patch, dead_leaves
from filter_dev.synth.text import add_scene_text
from filter_dev.synth.watermarks import add_watermark

DEAD_LEAVES_FRACTION = 0.2  # training views that are synthetic dead-leaves images
SCENE_TEXT_FRACTION = 0.35  # training pairs whose view carries scene text (a hard negative)
_SPLIT_ID = {"train": 0, "heldout": 1}


@dataclass(frozen=True)
class PairSpec:
    seed: int
    photos: tuple[str, ...]  # photo names (filter_dev/photos.py) to cut views from
    photo_split: str  # "train": augmented views; "heldout": plain views
    style_split: str  # the watermark style pool
    size: int  # model input side
    stride: int  # model cell size
    miss_layouts: bool = False  # training marks also from MISS_LAYOUTS (filter_dev/synth/watermarks.py)
    coat_fraction: float = 0.0  # training views given an animal-coat patch (0: no rng drawn, the data as before)


def random_view(photo: np.ndarray, rng: np.random.Generator, long_side=(320, 640), augment: bool = False) -> np.ndarray:
    """A random crop/rescale/flip of `photo`, long side in `long_side` px (the pipeline
    stores images at max side ~512). `augment` adds what multiplies a few photos into
    many different-looking ones: deeper zoom, rotations, colour/gamma changes, greyscale."""
    H, W = photo.shape[:2]
    area = rng.uniform(0.08 if augment else 0.25, 1.0) * H * W
    aspect = np.exp(rng.uniform(np.log(0.6), np.log(1.67)))
    w = int(min(W, round(np.sqrt(area * aspect))))
    h = int(min(H, round(np.sqrt(area / aspect))))
    y0, x0 = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
    view = photo[y0:y0 + h, x0:x0 + w]
    L = rng.uniform(*long_side)
    s = L / max(h, w)
    view = cv2.resize(view, (max(16, round(w * s)), max(16, round(h * s))), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    if rng.random() < 0.5:
        view = view[:, ::-1]
    if not augment:
        return np.ascontiguousarray(view)
    if rng.random() < 0.3:
        view = np.rot90(view, int(rng.integers(1, 4)))
    if rng.random() < 0.2:
        hh, ww = view.shape[:2]
        m = cv2.getRotationMatrix2D((ww / 2, hh / 2), float(rng.uniform(-20, 20)), 1.25)
        view = cv2.warpAffine(np.ascontiguousarray(view), m, (ww, hh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    v = view.astype(np.float32)
    if rng.random() < 0.3:
        v = v[:, :, rng.permutation(3)]
    gray = v.mean(2, keepdims=True)
    v = gray + (v - gray) * (0.0 if rng.random() < 0.15 else rng.uniform(0.5, 1.5))
    v = (v - v.mean()) * rng.uniform(0.7, 1.3) + v.mean() + rng.uniform(-30, 30)
    v = 255.0 * (np.clip(v, 0, 255) / 255.0) ** rng.uniform(0.7, 1.4)
    return np.ascontiguousarray(np.clip(v, 0, 255).astype(np.uint8))


def haze(view: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Haze, fog or glare: blend towards a light colour, uniformly or along a gradient.
    A translucent veil without a shape is not a watermark."""
    h, w = view.shape[:2]
    c = np.array([rng.uniform(170, 255)] * 3, np.float32) + rng.uniform(-15, 15, 3).astype(np.float32)
    a = rng.uniform(0.1, 0.5)
    if rng.random() < 0.5:
        ramp = np.linspace(0, 1, h if rng.random() < 0.7 else w, dtype=np.float32) ** rng.uniform(0.5, 2)
        ramp = ramp[::-1] if rng.random() < 0.5 else ramp
        alpha = (ramp[:, None] if len(ramp) == h else ramp[None, :]) * a
    else:
        alpha = np.full((1, 1), a, np.float32)
    out = view.astype(np.float32) * (1 - alpha[..., None]) + c * alpha[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def sprinkle(view: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scatter small dots and blobs (boats on a lake, birds, stars, dust): small repeated
    marks that are not lettering."""
    out = view.copy()
    h, w = out.shape[:2]
    for _ in range(int(rng.integers(10, 120))):
        c = tuple(int(v) for v in (rng.integers(0, 256, 3) if rng.random() < 0.3 else [int(rng.integers(0, 256))] * 3))
        center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(1, 5)), int(rng.integers(1, 4)))
        cv2.ellipse(out, center, axes, float(rng.uniform(0, 180)), 0, 360, c, -1, lineType=cv2.LINE_AA)
    return out


def mosaic(views: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """A 2x2 collage of views (split point random), at the first view's size."""
    H, W = views[0].shape[:2]
    cy, cx = int(H * rng.uniform(0.3, 0.7)), int(W * rng.uniform(0.3, 0.7))
    out = np.empty_like(views[0])
    for v, (ys, xs) in zip(views, [(slice(0, cy), slice(0, cx)), (slice(0, cy), slice(cx, W)),
                                   (slice(cy, H), slice(0, cx)), (slice(cy, H), slice(cx, W))]):
        hh, ww = ys.stop - ys.start, xs.stop - xs.start
        out[ys, xs] = cv2.resize(v, (ww, hh), interpolation=cv2.INTER_AREA)
    return out


def jpeg(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.25:
        return image
    ok, buf = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 96))])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]


def cell_labels(clean: np.ndarray, marked: np.ndarray, size: int, stride: int, min_diff: float = 12.0) -> np.ndarray:
    """Which (stride x stride) cells of the size x size input the mark visibly changed:
    the per-pixel colour change (max over channels), squashed to the input size, max-pooled
    per cell, > min_diff grey levels."""
    diff = np.abs(marked.astype(np.int16) - clean.astype(np.int16)).max(2).astype(np.float32)
    diff = cv2.resize(diff, (size, size), interpolation=cv2.INTER_AREA)
    n = size // stride
    return (diff[:n * stride, :n * stride].reshape(n, stride, n, stride).max((1, 3)) > min_diff).astype(np.uint8)


def _training_view(spec: PairSpec, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < DEAD_LEAVES_FRACTION:
        L = rng.uniform(320, 640)
        a = np.exp(rng.uniform(np.log(0.6), np.log(1.67)))
        return dead_leaves(rng, int(L / max(1, a)) if a > 1 else int(L), int(L) if a > 1 else int(L * a))
    view = random_view(load_photo(spec.photos[rng.integers(len(spec.photos))]), rng, augment=True)
    if rng.random() < 0.3:
        view = haze(view, rng)
    if rng.random() < 0.15:
        view = sprinkle(view, rng)
    if rng.random() < 0.15:
        others = [random_view(load_photo(spec.photos[rng.integers(len(spec.photos))]), rng, augment=True) for _ in range(3)]
        view = mosaic([view] + others, rng)
    if spec.coat_fraction and rng.random() < spec.coat_fraction:
        view = add_coat_patch(view, rng)
    if rng.random() < SCENE_TEXT_FRACTION:
        view = add_scene_text(view, rng)
    return view


def make_pair(job: tuple[PairSpec, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clean, watermarked) at size x size plus the mark's cell labels, for sample i."""
    spec, i = job
    rng = np.random.default_rng([spec.seed, _SPLIT_ID[spec.photo_split], _SPLIT_ID[spec.style_split], i])
    augment = spec.photo_split == "train"
    if augment:
        view = _training_view(spec, rng)
    else:
        view = random_view(load_photo(spec.photos[rng.integers(len(spec.photos))]), rng)
    marked = add_watermark(view, rng, spec.style_split, miss_layouts=spec.miss_layouts and spec.style_split == "train")
    if augment and rng.random() < 0.25:  # rotate the marked pair too: vertical marks
        k = 1 if rng.random() < 0.5 else 3
        view, marked = np.ascontiguousarray(np.rot90(view, k)), np.ascontiguousarray(np.rot90(marked, k))
    cells = cell_labels(view, marked, spec.size, spec.stride)
    clean_in, marked_in = (cv2.resize(jpeg(im, rng), (spec.size, spec.size), interpolation=cv2.INTER_AREA) for im in (view, marked))
    return clean_in, marked_in, cells


def make_set(spec: PairSpec, n_pairs: int, workers: int):
    """uint8 images (2n, size, size, 3), labels (2n,): clean 0, watermarked 1, interleaved,
    and cell labels (2n, size/stride, size/stride) (all 0 for clean images)."""
    jobs = [(spec, i) for i in range(n_pairs)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            pairs = list(pool.map(make_pair, jobs, chunksize=16))
    else:
        pairs = [make_pair(j) for j in jobs]
    x = np.stack([im for p in pairs for im in p[:2]])
    y = np.tile(np.array([0, 1], dtype=np.float32), n_pairs)
    cells = np.stack([c for p in pairs for c in (np.zeros_like(p[2]), p[2])])
    return x, y, cells
