"""The held-out labelled photos the filters' quality is measured on: two sources none of
the filters was trained or tuned on. Labels were set by looking at each image. Used by
bench/filter_quality.py and bench/blur_quality.py (`--source`); benches only, no test
reads them, so CI does not install them.

- "opencv": OpenCV's sample images (`samples/data` of OpenCV 4.6.0, as shipped by
  Debian's `opencv-doc` package; OpenCV's licence, the images of mixed origin, e.g.
  baboon.jpg from the USC-SIPI database): objects, aerial views, a street, a webcam.
- "gcompris": the 33 wildlife photos of GCompris's "erase" activity (Debian's
  `gcompris-qt-data`, inside the Qt resource file rcc/erase.rcc; Wikimedia Commons
  photos, CC-BY-SA/CC-BY/CC0, authors in the activity's resource/README): animals, fur,
  feathers, water, sand and rock, most in front of a smooth out-of-focus background, 1920
  x 1080 WebP (cropped and sharpened by GCompris). No text, no watermark.

    make heldout-photos        # apt-get install opencv-doc gcompris-qt-data
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

from filter_dev.qt_resources import read_qt_resources

OPENCV_DATA = "/usr/share/doc/opencv-doc/examples/data"
GCOMPRIS_DATA = "/usr/share/gcompris-qt/rcc"
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

GCOMPRIS_RCC = "erase.rcc"
GCOMPRIS_PREFIX = "gcompris/src/activities/erase/resource/"
GCOMPRIS_CLEAN = tuple(f"{n}.webp" for n in (
    "alpaca", "bee", "butterfly", "calf", "camels", "caterpillar", "chamaeleon", "cheetah", "crab", "dolphin",
    "flying_fox", "gibbon", "giraffe", "goat", "gorilla", "gosling", "heron", "horse", "kingfisher", "kitten",
    "long_nosed_monkey", "macaque", "meerkats", "northern_harrier", "nubian_ibex", "penguin", "pika", "red_panda",
    "rhinoceros", "spoonbills", "squirrel", "swans", "toucan"))


@dataclass(frozen=True)
class HeldoutSource:
    name: str  # the benches' --source value
    title: str  # how the tables name it
    default_dir: str
    package: str  # the Debian package that installs it
    clean: tuple[str, ...]
    real_watermark: tuple[str, ...] = ()  # among `clean`: carries a real watermark
    real_blur: tuple[str, ...] = ()
    real_text: tuple[str, ...] = ()

    def load(self, data_dir: str, name: str) -> np.ndarray:
        """One photo of this source, stored as the pipeline stores it."""
        return stored(np.asarray(Image.open(io.BytesIO(self._read(data_dir, name))).convert("RGB")))

    def _read(self, data_dir: str, name: str) -> bytes:
        hint = f"install Debian's {self.package} (make heldout-photos) or pass --{self.name}-data DIR"
        if self.name == "gcompris":
            path = os.path.join(data_dir, GCOMPRIS_RCC)
            if not os.path.isfile(path):
                raise SystemExit(f"--gcompris-data: {path} not found; {hint}")
            files = _qt_resources(path)
            if GCOMPRIS_PREFIX + name not in files:
                raise SystemExit(f"--gcompris-data: {path} has no {GCOMPRIS_PREFIX + name} (another GCompris version?)")
            return files[GCOMPRIS_PREFIX + name]
        path = os.path.join(data_dir, name)
        if not os.path.isfile(path):
            raise SystemExit(f"--{self.name}-data: {path} not found; {hint}")
        with open(path, "rb") as f:
            return f.read()


SOURCES = {
    "opencv": HeldoutSource("opencv", "OpenCV sample photos", OPENCV_DATA, "opencv-doc", CLEAN,
                            REAL_WATERMARK, REAL_BLUR, REAL_TEXT),
    "gcompris": HeldoutSource("gcompris", "GCompris wildlife photos", GCOMPRIS_DATA, "gcompris-qt-data", GCOMPRIS_CLEAN),
}


@cache
def _qt_resources(path: str) -> dict[str, bytes]:
    return read_qt_resources(path)


def add_source_options(ap) -> None:
    """--source and one --NAME-data per source, for the quality benches."""
    ap.add_argument("--source", nargs="+", choices=list(SOURCES), default=list(SOURCES),
                    help="held-out photo sources to measure on (filter_dev/heldout_photos.py)")
    for s in SOURCES.values():
        ap.add_argument(f"--{s.name}-data", default=s.default_dir, help=f"where Debian's {s.package} puts them")


def stored(im: np.ndarray, max_side: int = 512) -> np.ndarray:
    """As the pipeline stores it: long side <= 512, JPEG q90, decoded again."""
    h, w = im.shape[:2]
    if max(h, w) > max_side:
        s = max_side / max(h, w)
        im = np.asarray(Image.fromarray(im).resize((round(w * s), round(h * s)), Image.Resampling.LANCZOS))
    buf = io.BytesIO()
    Image.fromarray(im).save(buf, "JPEG", quality=90)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


