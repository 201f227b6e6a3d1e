"""The reference for reduced JPEG decoding (tests/pipeline/test_reduced_decode.py,
bench/decode_scaling.py): real photos re-encoded at the sizes web photos come in, and the
full decode + INTER_AREA resize the pipeline did before it decoded big JPEGs reduced."""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from filter_dev.photos import load_rgb
from pipeline.decode import resize_max_side

# scikit-image's colour and grey photos with detail at every scale
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg", "coins.png",
          "camera.png", "hubble_deep_field.jpg")


def big_jpeg(path, long_side: int, quality: int = 92) -> bytes:
    """A real photo re-encoded as a JPEG with `long_side` px on its longer side."""
    rgb = load_rgb(path)
    h, w = rgb.shape[:2]
    s = long_side / max(h, w)
    big = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_CUBIC)
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def full_decode(data: bytes, max_side: int) -> np.ndarray:
    """The whole image decoded, then INTER_AREA to the stored size (RGB)."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return resize_max_side(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), max_side)
