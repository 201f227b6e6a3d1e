"""Blur filter: variance of the Laplacian on a size-normalised grayscale image.

The image is converted to grayscale and resized so its shorter side is
`analysis_side` pixels before the Laplacian, so the score does not depend on the
stored resolution (a 4K photo and its 512 px thumbnail score alike). Low variance =
few sharp edges = blurry. See bench/README.md for how the default threshold separates
sharp photos from the same photos blurred.
"""

from __future__ import annotations

import cv2
import numpy as np

from filters.base import Filter

# Laplacian variance of grayscale 0..255 at short side 256. Measured on scikit-image's
# photos: sharp natural photos score >= 1000; the same photos Gaussian-blurred with
# sigma >= 2.5 px (at the 256 px analysis size) score <= 420 (bench/README.md).
DEFAULT_BLUR_THRESHOLD = 500.0


def laplacian_variance(image: np.ndarray, analysis_side: int = 256) -> float:
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    h, w = gray.shape[:2]
    scale = analysis_side / min(h, w)
    if scale != 1.0:
        # INTER_AREA averages when shrinking (no aliasing to fake sharpness).
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=interp)
    return float(cv2.Laplacian(gray, cv2.CV_32F, ksize=3).var())


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
