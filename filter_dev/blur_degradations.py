"""Synthetic degradations of real photos, for the blur filter's tests and quality benches:
Gaussian defocus, directional motion blur at any angle, a synthetic shallow depth of
field, low-contrast scenes (fog, dusk, snow) and mild softness that should still pass.
`gauss` and `motion` take sizes at 256 px and scale them to the image's short side;
`motion_px` takes the length in pixels of the image as given (9 px on a 512 px stored image)."""

from __future__ import annotations

import cv2
import numpy as np


def _scale(im: np.ndarray) -> float:
    return min(im.shape[:2]) / 256


def gauss(im: np.ndarray, sigma_at_256: float) -> np.ndarray:
    return cv2.GaussianBlur(im, (0, 0), sigma_at_256 * _scale(im))


def motion_px(im: np.ndarray, length_px: float, angle: float) -> np.ndarray:
    """Linear motion blur `length_px` long (rounded to an odd size >= 3) at `angle` degrees."""
    k = max(3, int(length_px) | 1)
    kern = np.zeros((k, k), np.float32)
    kern[k // 2, :] = 1.0
    kern = cv2.warpAffine(kern, cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), angle, 1.0), (k, k))
    return cv2.filter2D(im, -1, kern / kern.sum())


def motion(im: np.ndarray, length_at_256: float, angle: float) -> np.ndarray:
    return motion_px(im, length_at_256 * _scale(im), angle)


def shallow_dof(im: np.ndarray) -> np.ndarray:
    """Sharp centre (the subject, ~16 % of the frame), background Gaussian-blurred, soft transition."""
    h, w = im.shape[:2]
    m = np.zeros((h, w), np.float32)
    cv2.ellipse(m, (w // 2, h // 2), (w // 5, h // 4), 0, 0, 360, 1, -1)
    m = cv2.GaussianBlur(m, (0, 0), 8)[..., None]
    return (im * m + gauss(im, 4) * (1 - m)).astype(np.uint8)


def _contrast(im: np.ndarray, contrast: float, offset: float) -> np.ndarray:
    return np.clip(im.astype(np.float32) * contrast + offset, 0, 255).astype(np.uint8)


def fog(im: np.ndarray, contrast: float = 0.3) -> np.ndarray:
    return _contrast(im, contrast, 255 * (1 - contrast) * 0.8)


def dusk(im: np.ndarray) -> np.ndarray:
    """Dark and flat: a quarter of the contrast, near black."""
    return _contrast(im, 0.25, 8)


def snow(im: np.ndarray) -> np.ndarray:
    """Bright and flat: 30 % of the contrast, near white."""
    return _contrast(im, 0.3, 170)


def low_vertical_resolution(im: np.ndarray, factor: float = 0.6) -> np.ndarray:
    """A camera that resolves less vertically (webcam, interlaced video): mild, anisotropic."""
    h, w = im.shape[:2]
    small = cv2.resize(im, (w, max(1, int(h * factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
