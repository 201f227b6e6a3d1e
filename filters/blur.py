"""Blur filter: has the image kept its fine detail in EVERY direction, where it is sharpest?

Method (`directional_sharpness`, constants below). The image is converted to grayscale and
shrunk (never enlarged) to a long side of `analysis_side` = 512 px, the size the pipeline
stores, so a blur is judged at the size a user sees. On 64 px tiles, the derivative energy
along each of 16 directions, E(theta) = mean((d/dx cos theta + d/dy sin theta)^2), comes from
the tile's structure tensor, once on the image smoothed by 1 px (E1: pixel noise, JPEG
blocking and a mild 1-3 px softness do not count as detail) and once smoothed by 2 px (E2).
A sharp tile loses much of E1 to the extra blur; a tile already blurred along theta loses
little. Textured tiles (not flat: below 0.1 grey level^2 per pixel or 5 % of the busiest
tile) are ranked by that loss over all directions, and the sharpest half is kept: a photo
with a shallow depth of field is judged on its subject, not its background. Over those
tiles, R(theta) = 1 - sum E2(theta) / sum E1(theta). The score is
    min R - 2 (p60 R - min R), clipped to 0..1:
low when every direction lost its detail (defocus) and when some directions lost much more
than the typical one (a motion blur at ANY angle removes detail along its direction only;
edges across the motion survive, which kept the Laplacian variance high). The reference is
the 60th percentile over directions, not the maximum, so one very sharp direction (a long
straight edge) does not count as a dip elsewhere. Being ratios of the image's own energies,
the score ignores contrast: a sharp foggy, dusk or snow scene scores like the clear one.

Reject when the score < `threshold` (default 0.26, midway between the blurred and the kept
images of the tuning set). Tuned ONLY on the bundled photos (filter_dev/photos.py); measured by
`python bench/blur_quality.py` on them and on 20 held-out OpenCV photos (bench/README.md),
every image stored as the pipeline does (512 px, JPEG q90). Held-out: AUC 0.997, no clean
photo rejected (lowest 0.33), fog/dusk/snow copies all kept (>= 0.33); Gaussian blur
(sigma ~5 px at 512) <= 0.22; motion blur 9 px at 512 <= 0.18 at a random angle, rejected at
235 of 240 photo x angle pairs; a real shallow-depth-of-field photo (hfs 000.jpg) 0.46.

Known failures:
- a motion blur along the direction in which the scene has little fine detail: the
  notebook's elastic band in ela_original.jpg (75-135 deg, up to 0.42), brick.png along its
  diagonals (0.30-0.36), retina.jpg at 30 deg (0.28);
- an intrinsically soft image is rejected even when it is "in focus": cell.png (a
  microscope image, 0.16); a flat graphic or a bokeh-only photo likewise;
- a synthetic shallow depth of field whose sharp centre is itself smooth (apple.jpg's skin,
  stuff.jpg, ela_original.jpg: 4 of 20 held-out photos, 0.14-0.26); a subject sharp on less
  than about a tenth of the frame;
- a camera that resolves much less in one direction (webcam, interlaced video) sits close to
  the threshold (stuff.jpg at 0.6x vertical resolution: 0.25);
- noise or JPEG blocking added AFTER a blur (a dark, noisy, shaken photo) adds detail the 1 px
  pre-smoothing only partly removes (not measured).

`laplacian_var` (p90 over the tiles of the Laplacian's variance, the earliest score) is
still recorded for comparison; it does not decide.
"""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import Field

from filters.base import Filter, FilterConfig
from steps.registry import register_step

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
    e1 = _directional_energy(cv2.GaussianBlur(gray, (0, 0), PRE_SIGMA))
    e2 = _directional_energy(cv2.GaussianBlur(gray, (0, 0), PROBE_SIGMA))
    mean1 = e1.mean(1)
    textured = np.flatnonzero((e1.min(1) >= ENERGY_FLOOR) & (mean1 >= RELATIVE_FLOOR * mean1.max()))
    if textured.size == 0:
        return np.zeros(N_DIRECTIONS)
    tile_sharpness = 1.0 - e2[textured].mean(1) / mean1[textured]
    k = min(textured.size, max(3, int(np.ceil(TOP_FRACTION * textured.size))))
    sharpest = textured[np.argsort(-tile_sharpness, kind="stable")[:k]]
    return 1.0 - e2[sharpest].sum(0) / e1[sharpest].sum(0)


def directional_sharpness(image: np.ndarray, analysis_side: int = DEFAULT_ANALYSIS_SIDE) -> float:
    """min R - 2 (p60 R - min R), clipped to 0..1: low when every direction lost its detail
    (defocus) or when some directions lost much more than the others (motion)."""
    r = direction_profile(image, analysis_side)
    dip = np.percentile(r, TYPICAL_PERCENTILE) - r.min()
    return float(np.clip(r.min() - ANISOTROPY_WEIGHT * dip, 0.0, 1.0))


class BlurConfig(FilterConfig):
    enabled: bool = True
    threshold: float = Field(DEFAULT_BLUR_THRESHOLD, ge=0, le=1, description="reject if the directional sharpness (0..1) is lower")
    analysis_side: int = Field(DEFAULT_ANALYSIS_SIDE, ge=16, description="images are shrunk (never enlarged) to this long side before scoring")


@register_step("blur", order=20, pool="cpu")
class BlurFilter(Filter):
    Config = BlurConfig
    score_names = ("sharpness", "laplacian_var")
    threshold_fields = {"sharpness": "threshold"}

    def score(self, images, meta):
        side = self.cfg.analysis_side
        return {
            "sharpness": np.array([directional_sharpness(im, side) for im in images], dtype=np.float64),
            "laplacian_var": np.array([laplacian_variance(im, side) for im in images], dtype=np.float64),
        }

    def keep(self, scores):
        return scores["sharpness"] >= self.cfg.threshold

    def details(self, scores, keep):
        return ["" if k else f"sharpness {v:.2f} < {self.cfg.threshold:g}" for k, v in zip(keep, scores["sharpness"])]
