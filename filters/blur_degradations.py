"""Synthetic degradations of real photos, for the blur filter's tests and quality bench:
Gaussian defocus, directional motion blur at any angle, and fog (low contrast, in focus).
Sizes are given at the blur filter's 256 px analysis size and scaled to the image."""

from __future__ import annotations

import cv2
import numpy as np


def _scale(im: np.ndarray) -> float:
    return min(im.shape[:2]) / 256


def gauss(im: np.ndarray, sigma_at_256: float) -> np.ndarray:
    return cv2.GaussianBlur(im, (0, 0), sigma_at_256 * _scale(im))


def motion(im: np.ndarray, length_at_256: float, angle: float) -> np.ndarray:
    k = max(3, int(length_at_256 * _scale(im)) | 1)
    kern = np.zeros((k, k), np.float32)
    kern[k // 2, :] = 1.0
    kern = cv2.warpAffine(kern, cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), angle, 1.0), (k, k))
    return cv2.filter2D(im, -1, kern / kern.sum())


def fog(im: np.ndarray, contrast: float = 0.3) -> np.ndarray:
    return np.clip(im.astype(np.float32) * contrast + 255 * (1 - contrast) * 0.8, 0, 255).astype(np.uint8)
