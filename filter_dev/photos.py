"""Real photos shipped inside installed packages (offline test, training and bench data).

scikit-image, scikit-learn, matplotlib and ultralytics each ship a few real images: the
tests and benches draw from those (`PHOTOS`). The watermark trainer also uses real photos
and textures from Debian's desktop-background packages (`DEBIAN_PHOTOS`, installed by
`make watermark-photos`; licences in /usr/share/doc/PACKAGE/copyright: CC-BY-SA-3.0,
CC-BY-4.0, CC-BY-SA-4.0, CC0 and GPL-2+ per file). `WATERMARK_SPLIT` splits the photos
BY PHOTO (never by crop) into the watermark model's training photos and held-out photos.
"""

from __future__ import annotations

import importlib.util
import os
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image


def _pkg_dir(pkg: str) -> str:
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(pkg)
    return list(spec.submodule_search_locations)[0]


# name -> (package, path inside the package). Grayscale images are returned as RGB.
PHOTOS = {
    "astronaut": ("skimage", "data/astronaut.png"),
    "chelsea": ("skimage", "data/chelsea.png"),
    "coffee": ("skimage", "data/coffee.png"),
    "rocket": ("skimage", "data/rocket.jpg"),
    "motorcycle_left": ("skimage", "data/motorcycle_left.png"),
    "motorcycle_right": ("skimage", "data/motorcycle_right.png"),
    "hubble_deep_field": ("skimage", "data/hubble_deep_field.jpg"),
    "retina": ("skimage", "data/retina.jpg"),
    "ihc": ("skimage", "data/ihc.png"),
    "camera": ("skimage", "data/camera.png"),
    "brick": ("skimage", "data/brick.png"),
    "grass": ("skimage", "data/grass.png"),
    "gravel": ("skimage", "data/gravel.png"),
    "moon": ("skimage", "data/moon.png"),
    "coins": ("skimage", "data/coins.png"),
    "cell": ("skimage", "data/cell.png"),
    "color": ("skimage", "data/color.png"),
    "horse": ("skimage", "data/horse.png"),
    "logo": ("skimage", "data/logo.png"),
    "clock_motion": ("skimage", "data/clock_motion.png"),
    "page": ("skimage", "data/page.png"),
    "text": ("skimage", "data/text.png"),
    "china": ("sklearn", "datasets/images/china.jpg"),
    "flower": ("sklearn", "datasets/images/flower.jpg"),
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    "bus": ("ultralytics", "assets/bus.jpg"),
    "zidane": ("ultralytics", "assets/zidane.jpg"),
}

# Debian packages of desktop backgrounds: real photos (landscapes, plants, animals, still
# lifes) and photographic textures (wood, tiles). Only for training the watermark model.
_BG = "/usr/share/backgrounds"
DEBIAN_PHOTOS = {
    **{f"lomiri_{n}": ("lomiri-wallpapers-16.04", f"{_BG}/{n}_by_{who}.jpg") for n, who in (
        ("Bridge", "Sander_Klootwijk"), ("Dragonfly", "Bolly"), ("Picture_0B", "freespace"), ("Picture_1A", "freespace"),
        ("Wine", "Jakkub_Mede"), ("aitzgorri", "Aitzol_Berasategi"), ("analogpattern", "Peter_Nerlich"),
        ("free", "Peter_Nerlich"), ("friends", "Aitzol_Berasategi"), ("greentock", "Peter_Nerlich"),
        ("life", "Aitzol_Berasategi"), ("picosdeeuropa", "Aitzol_Berasategi"), ("seeding", "Clements_Engelhardt"),
        ("sunset", "Aitzol_Berasategi"))},
    "lomiri_Infinite-Sea": ("lomiri-wallpapers-20.04", f"{_BG}/Infinite-Sea_by_Aury88.jpg"),
    "lomiri_Kleiber": ("lomiri-wallpapers-20.04", f"{_BG}/Kleiber_by_Lukas_Baubkus.jpg"),
    **{f"mate_{n}": ("mate-backgrounds", f"{_BG}/mate/nature/{n}.jpg") for n in (
        "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops", "Storm",
        "TwoWings", "Wood", "YellowFlower")},
    **{f"gnome_{n}": ("gnome-backgrounds", f"{_BG}/gnome/{n}.webp") for n in (
        "licorice-d", "licorice-l", "grid-d", "grid-l", "truchet-d", "truchet-l", "wood-d", "wood-l")},
}
DEBIAN_PACKAGES = tuple(sorted({pkg for pkg, _ in DEBIAN_PHOTOS.values()}))

# Natural photos without visible text or watermarks (bus has signage; page/text are
# documents; clock_motion is motion-blurred; horse/logo/color are graphics).
CLEAN_PHOTOS = (
    "astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "hubble_deep_field", "retina",
    "ihc", "camera", "brick", "grass", "gravel", "moon", "coins", "cell", "china", "flower",
    "grace_hopper", "zidane",
)

# The watermark model trains on `train` only; the bench and tests evaluate on `heldout`.
# motorcycle_right is the same scene as motorcycle_left, so both sit on the train side.
BUNDLED_TRAIN_PHOTOS = ("astronaut", "rocket", "motorcycle_left", "motorcycle_right", "hubble_deep_field", "ihc",
                        "camera", "brick", "grass", "coins", "flower", "zidane")
WATERMARK_SPLIT = {
    "train": BUNDLED_TRAIN_PHOTOS + tuple(DEBIAN_PHOTOS),
    "heldout": ("chelsea", "coffee", "china", "grace_hopper", "retina", "moon", "gravel", "cell"),
}


MAX_LOADED_SIDE = 2048  # wallpapers are up to 5640 px; views never need more than this


# Real photos cut to a texture whose detector boxes cover more than the text filter's 3 %
# though nothing is written there (the detected area on the crop at 512 px in brackets):
# name -> (photo, (top, bottom, left, right) as fractions of the photo).
TEXT_LIKE_TEXTURES = {
    "grace_hopper_stars": ("grace_hopper", (0.0, 0.25, 0.0, 0.25)),  # the flag's white stars (0.46)
    "china_foliage": ("china", (0.75, 1.0, 0.75, 1.0)),  # leaves in shade (0.04)
}


def load_texture(name: str, max_side: int = 512) -> np.ndarray:
    """A TEXT_LIKE_TEXTURES crop, long side scaled to max_side."""
    photo, (t, b, left, r) = TEXT_LIKE_TEXTURES[name]
    im = _load(photo)
    h, w = im.shape[:2]
    crop = Image.fromarray(im[round(t * h):round(b * h), round(left * w):round(r * w)])
    s = max_side / max(crop.size)
    return np.asarray(crop.resize((round(crop.width * s), round(crop.height * s)), Image.Resampling.LANCZOS))


def photo_path(name: str) -> str:
    if name in DEBIAN_PHOTOS:
        return DEBIAN_PHOTOS[name][1]
    pkg, rel = PHOTOS[name]
    return os.path.join(_pkg_dir(pkg), rel)


def missing_debian_photos(names) -> list[str]:
    """The Debian packages whose photos among `names` are not installed."""
    return sorted({DEBIAN_PHOTOS[n][0] for n in names if n in DEBIAN_PHOTOS and not os.path.exists(DEBIAN_PHOTOS[n][1])})


def large_debian_jpegs(min_side: int = 1500, max_side: int = 4000) -> list[Path]:
    """The DEBIAN_PHOTOS that are JPEG photos with a long side in [min_side, max_side]:
    the sizes a T2I dataset is built from (the throughput benches' `--photos large`).
    Reading only the header; raises naming the packages to install when some are missing."""
    missing = missing_debian_photos(DEBIAN_PHOTOS)
    if missing:
        raise FileNotFoundError(f"Debian packages {', '.join(missing)} are not installed: run `make watermark-photos`")
    out = []
    for _, path in sorted(DEBIAN_PHOTOS.values(), key=lambda v: v[1]):
        with Image.open(path) as im:
            if im.format == "JPEG" and min_side <= max(im.size) <= max_side:
                out.append(Path(path))
    return out


def skimage_photos() -> list[Path]:
    """Every PNG/JPEG file in scikit-image's data folder (about 30): the demo's, the
    pipeline tests' and the benches' input files."""
    root = Path(_pkg_dir("skimage")) / "data"
    return sorted(p for p in root.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))


def load_rgb(path, max_side: int | None = None) -> np.ndarray:
    """Any image file as RGB uint8 HxWx3 (transparency composited on white, grey as RGB),
    optionally downscaled so max(H, W) <= max_side."""
    im = Image.open(path)
    if max_side:
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    if im.mode in ("RGBA", "LA", "P"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    return np.asarray(im.convert("RGB"))


@cache
def _load(name: str) -> np.ndarray:
    arr = load_rgb(photo_path(name), MAX_LOADED_SIDE)
    arr.setflags(write=False)
    return arr


def load_photo(name: str, max_side: int | None = None) -> np.ndarray:
    """RGB uint8 HxWx3 copy of a bundled photo, optionally downscaled so max(H, W) <= max_side."""
    arr = _load(name)
    if max_side and max(arr.shape[:2]) > max_side:
        h, w = arr.shape[:2]
        s = max_side / max(h, w)
        arr = np.asarray(Image.fromarray(arr).resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS))
    return np.array(arr)
