"""The held-out labelled photos the filters' quality is measured on: OpenCV's sample
images (`samples/data` of OpenCV 4.6.0, as shipped by Debian's `opencv-doc` package;
OpenCV's licence, the images of mixed origin, e.g. baboon.jpg from the USC-SIPI
database), a source none of the filters was trained or tuned on. Labels were set by
looking at each image. Used by bench/filter_quality.py and bench/blur_quality.py.

    apt-get install opencv-doc      # or: apt-get download opencv-doc && dpkg-deb -x opencv-doc_*.deb DIR
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

OPENCV_DATA = "/usr/share/doc/opencv-doc/examples/data"
# Real sharp photos, clean for blur/text/NSFW (basketball1.png is excluded: it has real
# motion blur on the players). Some carry small real text (SCENE_TEXT); one carries a real
# watermark (REAL_WATERMARK), so the watermark benchmark counts it as a positive.
CLEAN = ("aloeL.jpg", "baboon.jpg", "fruits.jpg", "building.jpg", "squirrel_cls.jpg", "aero1.jpg", "aero3.jpg",
         "apple.jpg", "orange.jpg", "butterfly.jpg", "home.jpg", "chicky_512.png", "rubberwhale1.png",
         "ela_original.jpg", "leuvenA.jpg", "board.jpg", "stuff.jpg", "../hfs/data/000.jpg", "messi5.jpg",
         "box_in_scene.png")
SCENE_TEXT = ("messi5.jpg", "box_in_scene.png", "leuvenA.jpg", "board.jpg")  # small real text in the scene: not text-heavy, not watermarks
REAL_WATERMARK = ("messi5.jpg",)  # a photo agency's white logo + "WEEKmedia" overlaid bottom right
SHALLOW_DOF = ("../hfs/data/000.jpg",)
REAL_BLUR = ("licenseplate_motion.jpg", "text_defocus.jpg")
REAL_TEXT = ("imageTextR.png", "sudoku.png")


def stored(im: np.ndarray, max_side: int = 512) -> np.ndarray:
    """As the pipeline stores it: long side <= 512, JPEG q90, decoded again."""
    h, w = im.shape[:2]
    if max(h, w) > max_side:
        s = max_side / max(h, w)
        im = np.asarray(Image.fromarray(im).resize((round(w * s), round(h * s)), Image.Resampling.LANCZOS))
    buf = io.BytesIO()
    Image.fromarray(im).save(buf, "JPEG", quality=90)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def load(data_dir: str, name: str) -> np.ndarray:
    """One OpenCV sample photo, stored as the pipeline stores it."""
    path = os.path.join(data_dir, name)
    if not os.path.isfile(path):
        raise SystemExit(f"--opencv-data: {path} not found; install Debian's opencv-doc (filter_dev/heldout_photos.py)")
    return stored(np.asarray(Image.open(path).convert("RGB")))
