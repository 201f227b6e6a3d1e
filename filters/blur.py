"""Blur filter: does the image keep its finest detail in EVERY direction, somewhere?

Method (`directional_sharpness`). The image is converted to grayscale and shrunk so its
shorter side is at most `analysis_side` (256) pixels, so the score does not depend on the
stored resolution. On a 4x4 grid of tiles, the directional gradient energy
E(theta) = mean((d/dx cos theta + d/dy sin theta)^2) is taken from the tile's structure
tensor, for 16 directions, on the image (E0) and on the image blurred by a 1 px Gaussian
(E1). Blurring a sharp tile removes most of its gradient energy; blurring an already
blurred tile changes little. The tile's sharpness is min over directions of
1 - E1/E0: a motion blur at ANY angle removes the fine detail along its direction, so
that direction's ratio is low even though edges across the motion survive (which kept the
Laplacian variance high). The image's score is the 90th percentile over tiles: a
shallow-depth-of-field photo is sharp where its subject is; a blurred photo is blurred in
every tile. Being a ratio of the image's own energies, the score ignores contrast: a sharp
foggy, dusk or snow scene scores like the clear one. Tiles with almost no gradient energy
(E0 < 0.1 grey level^2 per pixel, or < 5 % of the busiest tile's: flat sky, a blank wall
whose only "detail" is sensor or JPEG noise) score 0.

Reject when the score < `threshold` (default 0.35). Measured on the bundled photos at
512 px (bench/README.md): sharp 0.40-0.77; the same in fog (contrast x0.3) >= 0.44; with a
synthetic shallow depth of field >= 0.21 (cell.png, whose sharpest tiles are soft; the
others >= 0.4); Gaussian-blurred (sigma 2.5 px at 256) <= 0.21; motion-blurred 9 px at 256
(18 px at 512), any angle, 0.18-0.39; clock_motion.png 0.11.

Known failures: a short motion blur (4.5 px at 256, i.e. 9 px at 512) scores 0.27-0.51
and is kept on about half the photos (it is mild at that size); motion blur over a fine
isotropic texture (grass in camera.png, rocket.jpg's scaffolding) keeps detail across the
motion and can score just above the threshold; an image sharp only in a small region
(< 1/16 of the frame) can be rejected; heavy JPEG blocking adds fine detail to a blurred
image; an intentionally soft image (bokeh-only, a flat graphic) is rejected.

`laplacian_var` (p90 over the grid of the Laplacian variance, the previous score) is still
recorded for comparison; it does not decide.
"""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import Field

from filters.base import Filter, FilterConfig
from stages.base import Resources
from stages.registry import register_stage

DEFAULT_BLUR_THRESHOLD = 0.35
GRID = 4
PERCENTILE = 90
N_DIRECTIONS = 16
PROBE_SIGMA = 1.0  # px at the analysis size
ENERGY_FLOOR = 0.1  # grey level^2 per pixel: below it a tile is flat, not sharp
RELATIVE_FLOOR = 0.05  # ... or below this fraction of the image's busiest tile (noise on a flat wall)
_THETA = np.linspace(0, np.pi, N_DIRECTIONS, endpoint=False)
_C2, _S2, _CS = np.cos(_THETA) ** 2, np.sin(_THETA) ** 2, 2 * np.cos(_THETA) * np.sin(_THETA)


def _analysis_gray(image: np.ndarray, analysis_side: int) -> np.ndarray:
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    h, w = gray.shape[:2]
    scale = analysis_side / min(h, w)
    if scale < 1.0:  # shrink only: upscaling a small image would smooth it and fake blur
        # INTER_AREA averages when shrinking (no aliasing to fake sharpness).
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return gray.astype(np.float32)


def _tiles(h: int, w: int):
    return [(slice(i * h // GRID, (i + 1) * h // GRID), slice(j * w // GRID, (j + 1) * w // GRID))
            for i in range(GRID) for j in range(GRID)]


def laplacian_variance(image: np.ndarray, analysis_side: int = 256) -> float:
    """90th percentile over a 4x4 grid of the Laplacian's variance per tile."""
    lap = cv2.Laplacian(_analysis_gray(image, analysis_side), cv2.CV_32F, ksize=3)
    return float(np.percentile([lap[t].var() for t in _tiles(*lap.shape)], PERCENTILE))


def _directional_energy(gray: np.ndarray, tiles) -> np.ndarray:
    """(tiles, directions) mean squared directional derivative, from the structure tensor."""
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3) / 8
    xx, yy, xy = gx * gx, gy * gy, gx * gy
    t = np.array([[xx[s].mean(), yy[s].mean(), xy[s].mean()] for s in tiles])
    return t[:, :1] * _C2 + t[:, 1:2] * _S2 + t[:, 2:] * _CS


def directional_sharpness(image: np.ndarray, analysis_side: int = 256) -> float:
    """p90 over tiles of min over directions of 1 - E(blurred)/E(image); 0..1."""
    gray = _analysis_gray(image, analysis_side)
    tiles = _tiles(*gray.shape)
    e0 = _directional_energy(gray, tiles)
    e1 = _directional_energy(cv2.GaussianBlur(gray, (0, 0), PROBE_SIGMA), tiles)
    flat = (e0.min(1) < ENERGY_FLOOR) | (e0.mean(1) < RELATIVE_FLOOR * e0.mean(1).max())
    per_tile = np.where(flat, 0.0, (1.0 - e1 / np.maximum(e0, 1e-12)).min(1))
    return float(np.percentile(per_tile, PERCENTILE))


class BlurFilter(Filter):
    name = "blur"
    score_names = ("sharpness", "laplacian_var")

    def __init__(self, threshold: float = DEFAULT_BLUR_THRESHOLD, analysis_side: int = 256):
        self.threshold = threshold
        self.analysis_side = analysis_side

    def score(self, images, meta):
        return {
            "sharpness": np.array([directional_sharpness(im, self.analysis_side) for im in images], dtype=np.float64),
            "laplacian_var": np.array([laplacian_variance(im, self.analysis_side) for im in images], dtype=np.float64),
        }

    def keep(self, scores):
        return scores["sharpness"] >= self.threshold

    def details(self, scores, keep):
        return ["" if k else f"sharpness {v:.2f} < {self.threshold:g}" for k, v in zip(keep, scores["sharpness"])]


class BlurConfig(FilterConfig):
    enabled: bool = True
    threshold: float = Field(DEFAULT_BLUR_THRESHOLD, ge=0, le=1, description="reject if the directional sharpness (0..1) is lower")
    analysis_side: int = Field(256, ge=16)


@register_stage("blur", kind="filter", config=BlurConfig, order=20, pool="cpu")
def build_blur_filter(cfg: BlurConfig) -> BlurFilter:
    stage = BlurFilter(cfg.threshold, cfg.analysis_side)
    stage.resources = Resources(pool="cpu", batch_size=256)
    return stage
