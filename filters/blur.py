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

DEFAULT_BLUR_THRESHOLD = 0.26
DEFAULT_ANALYSIS_SIDE = 512  # long side; the size the pipeline stores
TILE = 64  # px at the analysis size
N_DIRECTIONS = 16
PRE_SIGMA = 1.0  # px: pixel-level noise, JPEG blocking and a mild 1-3 px softness do not count as detail
PROBE_SIGMA = 2.0  # px: the detail whose loss is measured lies between PRE_SIGMA and PROBE_SIGMA
TOP_FRACTION = 0.5  # share of the textured tiles, the sharpest, that the score looks at
ANISOTROPY_WEIGHT = 2.0
TYPICAL_PERCENTILE = 60  # of R over directions: the level a dip is measured from (a few very sharp
# directions, e.g. one long straight edge, do not raise it)
ENERGY_FLOOR = 0.1  # grey level^2 per pixel: below it a tile is flat, not sharp
RELATIVE_FLOOR = 0.05  # ... or below this fraction of the image's busiest tile (noise on a flat wall)
_THETA = np.linspace(0, np.pi, N_DIRECTIONS, endpoint=False)
_C2, _S2, _CS = np.cos(_THETA) ** 2, np.sin(_THETA) ** 2, 2 * np.cos(_THETA) * np.sin(_THETA)


def _analysis_gray(image: np.ndarray, analysis_side: int) -> np.ndarray:
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    h, w = gray.shape[:2]
    scale = analysis_side / max(h, w)
    if scale < 1.0:  # shrink only: upscaling a small image would smooth it and fake blur
        # INTER_AREA averages when shrinking (no aliasing to fake sharpness).
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return gray.astype(np.float32)


def _tile_means(a: np.ndarray) -> np.ndarray:
    """Mean of `a` over each TILE x TILE tile (the ragged border is dropped), flattened."""
    h, w = a.shape
    nh, nw = max(1, h // TILE), max(1, w // TILE)
    th, tw = h // nh, w // nw
    return a[: nh * th, : nw * tw].reshape(nh, th, nw, tw).mean((1, 3)).ravel()


def _directional_energy(gray: np.ndarray) -> np.ndarray:
    """(tiles, directions): mean squared derivative along each direction, from the structure tensor."""
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3) / 8
    xx, yy, xy = (_tile_means(a)[:, None] for a in (gx * gx, gy * gy, gx * gy))
    return xx * _C2 + yy * _S2 + xy * _CS


def laplacian_variance(image: np.ndarray, analysis_side: int = DEFAULT_ANALYSIS_SIDE) -> float:
    """90th percentile over TILE x TILE tiles of the Laplacian's variance (the old score, recorded only)."""
    lap = cv2.Laplacian(_analysis_gray(image, analysis_side), cv2.CV_32F, ksize=3)
    var = _tile_means(lap * lap) - _tile_means(lap) ** 2
    return float(np.percentile(var, 90))


def direction_profile(image: np.ndarray, analysis_side: int = DEFAULT_ANALYSIS_SIDE) -> np.ndarray:
    """R(theta) for 16 directions: share of the derivative energy along theta (between the
    PRE_SIGMA and PROBE_SIGMA scales) lost to the probe blur, summed over the sharpest tiles."""
    gray = _analysis_gray(image, analysis_side)
    e0 = _directional_energy(cv2.GaussianBlur(gray, (0, 0), PRE_SIGMA))
    e1 = _directional_energy(cv2.GaussianBlur(gray, (0, 0), PROBE_SIGMA))
    mean0 = e0.mean(1)
    textured = np.flatnonzero((e0.min(1) >= ENERGY_FLOOR) & (mean0 >= RELATIVE_FLOOR * mean0.max()))
    if textured.size == 0:
        return np.zeros(N_DIRECTIONS)
    tile_sharpness = 1.0 - e1[textured].mean(1) / mean0[textured]
    k = min(textured.size, max(3, int(np.ceil(TOP_FRACTION * textured.size))))
    sharpest = textured[np.argsort(-tile_sharpness, kind="stable")[:k]]
    return 1.0 - e1[sharpest].sum(0) / e0[sharpest].sum(0)


def directional_sharpness(image: np.ndarray, analysis_side: int = DEFAULT_ANALYSIS_SIDE) -> float:
    """min R - 2 (p60 R - min R), clipped to 0..1: low when every direction lost its detail
    (defocus) or when some directions lost much more than the others (motion)."""
    r = direction_profile(image, analysis_side)
    dip = np.percentile(r, TYPICAL_PERCENTILE) - r.min()
    return float(np.clip(r.min() - ANISOTROPY_WEIGHT * dip, 0.0, 1.0))


class BlurFilter(Filter):
    name = "blur"
    score_names = ("sharpness", "laplacian_var")

    def __init__(self, threshold: float = DEFAULT_BLUR_THRESHOLD, analysis_side: int = DEFAULT_ANALYSIS_SIDE):
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
    analysis_side: int = Field(DEFAULT_ANALYSIS_SIDE, ge=16, description="images are shrunk (never enlarged) to this long side before scoring")


@register_stage("blur", kind="filter", config=BlurConfig, order=20, pool="cpu")
def build_blur_filter(cfg: BlurConfig) -> BlurFilter:
    stage = BlurFilter(cfg.threshold, cfg.analysis_side)
    stage.resources = Resources(pool="cpu", batch_size=256)
    return stage
