"""Blur filter: variance of the Laplacian on a size-normalised grayscale image,
taken where the image is sharpest.

The image is converted to grayscale and shrunk so its shorter side is at most
`analysis_side` pixels before the Laplacian, so the score does not depend on the
stored resolution (a 4K photo and its 512 px thumbnail score alike). The Laplacian
variance is computed per tile on a 4x4 grid and the score is its 90th percentile:
a product shot on a plain white background is sharp where the product is, and a
global variance would call it blurry; a blurred photo is blurry in every tile.
Low score = few sharp edges anywhere = blurry. See bench/README.md for the figures
behind the default threshold.
"""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import Field

from filters.base import Filter, FilterConfig
from stages.base import Resources
from stages.registry import register_stage

# Measured on scikit-image's photos at analysis side 256: sharp natural photos score
# >= 1800 (moon.png is the lowest; most score 4000-50000); the same photos
# Gaussian-blurred with sigma 2.5 px at the analysis size score <= 230 (<= 480 for
# synthetic line drawings), and clock_motion.png (real motion blur) scores 384.
DEFAULT_BLUR_THRESHOLD = 800.0
GRID = 4
PERCENTILE = 90


def laplacian_variance(image: np.ndarray, analysis_side: int = 256) -> float:
    """90th percentile over a 4x4 grid of the Laplacian's variance per tile."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    h, w = gray.shape[:2]
    scale = analysis_side / min(h, w)
    if scale < 1.0:  # shrink only: upscaling a small image would smooth it and fake blur
        # INTER_AREA averages when shrinking (no aliasing to fake sharpness).
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    lap = cv2.Laplacian(gray, cv2.CV_32F, ksize=3)
    h, w = lap.shape
    tiles = [
        lap[i * h // GRID : (i + 1) * h // GRID, j * w // GRID : (j + 1) * w // GRID].var()
        for i in range(GRID)
        for j in range(GRID)
    ]
    return float(np.percentile(tiles, PERCENTILE))


class BlurFilter(Filter):
    name = "blur"
    score_names = ("laplacian_var",)

    def __init__(self, threshold: float = DEFAULT_BLUR_THRESHOLD, analysis_side: int = 256):
        self.threshold = threshold
        self.analysis_side = analysis_side

    def score(self, images, meta):
        return {"laplacian_var": np.array([laplacian_variance(im, self.analysis_side) for im in images], dtype=np.float64)}

    def keep(self, scores):
        return scores["laplacian_var"] >= self.threshold

    def details(self, scores, keep):
        return ["" if k else f"laplacian_var {v:.0f} < {self.threshold:g}" for k, v in zip(keep, scores["laplacian_var"])]


class BlurConfig(FilterConfig):
    enabled: bool = True
    threshold: float = Field(DEFAULT_BLUR_THRESHOLD, ge=0, description="reject if Laplacian variance is lower")
    analysis_side: int = Field(256, ge=16)


@register_stage("blur", kind="filter", config=BlurConfig, order=20, pool="cpu")
def build_blur_filter(cfg: BlurConfig) -> BlurFilter:
    stage = BlurFilter(cfg.threshold, cfg.analysis_side)
    stage.resources = Resources(pool="cpu", batch_size=256)
    return stage
