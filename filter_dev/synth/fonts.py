"""Font pools and texts for synthetic marks and signs.

Every choice is split into a "train" pool and a disjoint "heldout" pool, so a model can be
scored on lettering it never saw: fonts are matplotlib's bundled TTFs (DejaVu, STIX,
Computer Modern) split by file; brand names come from different syllable sets, names
and phrases from different lists.
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
from PIL import ImageFont

SPLITS = ("train", "heldout")

FONTS = {
    "train": ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSerif.ttf",
              "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "STIXGeneral.ttf", "STIXGeneralBol.ttf",
              "cmr10.ttf", "cmss10.ttf", "cmb10.ttf", "DejaVuSansMono-Bold.ttf"),
    "heldout": ("DejaVuSans-BoldOblique.ttf", "DejaVuSerif-BoldItalic.ttf", "DejaVuSansMono.ttf",
                "DejaVuSansMono-Oblique.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
                "cmtt10.ttf", "cmti10.ttf"),
}
# Computer Modern TTFs have no usable "©" / "™" glyphs.
_ASCII_ONLY = ("cmr10.ttf", "cmss10.ttf", "cmb10.ttf", "cmtt10.ttf", "cmti10.ttf")

_SYLLABLES = {
    "train": ("pho", "to", "stu", "dio", "lux", "ima", "gen", "pix", "no", "va", "cap", "tu", "ra", "vis",
              "ta", "mo", "ment", "lens", "shot", "foto", "grap", "hy", "ar", "chi", "ve"),
    "heldout": ("zen", "qua", "fly", "kor", "bel", "dri", "ox", "wen", "yam", "sil", "jet", "ur", "pex",
                "glo", "rin", "vo", "sk", "el", "mi", "ko"),
}
_SUFFIX = {
    "train": ("", "", ".com", " images", " photo", " stock", " studio"),
    "heldout": ("", ".net", ".io", " media", " pictures", " creative"),
}
_NAMES = {
    "train": ("Anna Berg", "John Smith", "Maria Lopez", "Tom Baker", "Lena Fischer", "Raj Patel", "Emma Stone",
              "Kenji Sato", "Olga Ivanova", "Paul Martin"),
    "heldout": ("Chloe Dupont", "Ahmed Khan", "Sven Larsson", "Nina Rossi", "Diego Ruiz", "Mei Chen",
                "Ivan Petrov", "Sara Cohen"),
}
_PHRASES = {
    "train": ("SAMPLE", "PREVIEW", "COPYRIGHT", "Photo by {name}", "© {name} {year}", "{brand}",
              "www.{brandw}.com", "{BRAND}", "© {brand}", "stock photo"),
    "heldout": ("PROOF", "DO NOT COPY", "UNLICENSED", "All rights reserved {name}", "{brand}™",
                "{brandw}.net", "draft - {name}", "{BRAND} ©{year}", "licensed image"),
}
# Words of ordinary scene text: shop signs, labels, street names, shirts, packaging.
SCENE_WORDS = ("open", "cafe", "bakery", "hotel", "exit", "stop", "sale", "bar", "pizza", "books", "market",
               "street", "avenue", "parking", "pharmacy", "bank", "taxi", "bus", "museum", "station", "fresh",
               "organic", "coffee", "tea", "wine", "police", "school", "garden", "park", "no entry", "welcome",
               "main st", "24h", "1984", "42", "ltd", "co", "bistro", "salon", "gym", "shop", "store")


def font_dir() -> str:
    import matplotlib

    return os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf")


@lru_cache(maxsize=512)
def font(name: str, size: float) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(os.path.join(font_dir(), name), max(6, int(size)))


def pick_font_name(rng: np.random.Generator, split: str) -> str:
    return FONTS[split][rng.integers(len(FONTS[split]))]


def random_brand(rng: np.random.Generator, split: str) -> str:
    syl = _SYLLABLES[split]
    word = "".join(syl[i] for i in rng.integers(0, len(syl), rng.integers(2, 4)))
    return word.capitalize() + _SUFFIX[split][rng.integers(len(_SUFFIX[split]))]


def random_text(rng: np.random.Generator, split: str, font_name: str = "") -> str:
    """A watermark's text: a brand, a name line, a phrase."""
    brand = random_brand(rng, split)
    text = _PHRASES[split][rng.integers(len(_PHRASES[split]))].format(
        name=_NAMES[split][rng.integers(len(_NAMES[split]))], year=int(rng.integers(1995, 2025)),
        brand=brand, brandw=brand.split(" ")[0].split(".")[0].lower(), BRAND=brand.upper())
    if font_name in _ASCII_ONLY:
        text = text.replace("©", "(c)").replace("™", "")
    return text


def scene_words(rng: np.random.Generator, n: int) -> str:
    return " ".join(SCENE_WORDS[i] for i in rng.integers(0, len(SCENE_WORDS), n))
