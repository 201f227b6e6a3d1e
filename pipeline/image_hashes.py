"""The two hashes every decoded sample gets in the CPU worker, for the dataset-wide
duplicate pass (pipeline/dedup.py): an exact hash of the decoded, stored pixels and a
64-bit perceptual hash (imagehash's pHash: DCT of a 32x32 grey thumbnail, so resized,
recompressed and colour-shifted copies land within a few bits). Both are hex strings in
the ledger (`pixel_hash`, `phash`)."""

from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image


def pixel_hash(rgb: np.ndarray) -> str:
    """128-bit BLAKE2b of the pixels and their shape: equal exactly when the stored images are."""
    h = hashlib.blake2b(digest_size=16)
    h.update(np.asarray(rgb.shape, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(rgb).tobytes())
    return h.hexdigest()


def perceptual_hash(rgb: np.ndarray) -> str:
    import imagehash

    return str(imagehash.phash(Image.fromarray(rgb)))  # 16 hex digits = 64 bits


def image_hashes(rgb: np.ndarray) -> dict[str, str]:
    return {"pixel_hash": pixel_hash(rgb), "phash": perceptual_hash(rgb)}


def phash_array(hexes) -> np.ndarray:
    """Ledger hex strings -> uint64 (for the index in pipeline/dedup_index.py)."""
    return np.array([int(h, 16) for h in hexes], dtype=np.uint64)
