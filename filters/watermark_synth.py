"""Render realistic visible watermarks onto photos (training and evaluation data).

Every style choice is split into a "train" pool and a disjoint "heldout" pool, so the
watermark model can be scored on watermarks it never saw:

- fonts: matplotlib's bundled TTFs (DejaVu, STIX, Computer Modern), split by file;
- texts: brand names from different syllable sets, different name lists and phrases;
- layouts: train = centred text, tiled text, corner copyright line, corner logo, bottom
  banner; heldout = stock-photo lattice (diagonal lines + repeated brand), outlined text
  with a ring logo, vertical edge text, scattered small marks, embossed text.

`add_watermark(image, rng, split)` returns a watermarked copy (RGB uint8).
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

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


def font_dir() -> str:
    import matplotlib

    return os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf")


@lru_cache(maxsize=512)
def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(os.path.join(font_dir(), name), max(6, int(size)))


def random_brand(rng: np.random.Generator, split: str) -> str:
    syl = _SYLLABLES[split]
    word = "".join(syl[i] for i in rng.integers(0, len(syl), rng.integers(2, 4)))
    return word.capitalize() + _SUFFIX[split][rng.integers(len(_SUFFIX[split]))]


def random_text(rng: np.random.Generator, split: str, font: str = "") -> str:
    brand = random_brand(rng, split)
    text = _PHRASES[split][rng.integers(len(_PHRASES[split]))].format(
        name=_NAMES[split][rng.integers(len(_NAMES[split]))], year=int(rng.integers(1995, 2025)),
        brand=brand, brandw=brand.split(" ")[0].split(".")[0].lower(), BRAND=brand.upper())
    if font in _ASCII_ONLY:
        text = text.replace("©", "(c)").replace("™", "")
    return text


def _color(rng: np.random.Generator) -> tuple[int, int, int]:
    r = rng.random()
    if r < 0.45:
        return (255, 255, 255)
    if r < 0.75:
        v = int(rng.integers(0, 80))
        return (v, v, v)
    if r < 0.85:
        v = int(rng.integers(120, 220))
        return (v, v, v)
    return tuple(int(c) for c in rng.integers(0, 256, 3))


def _visible_color(image: np.ndarray, mask: Image.Image, color):
    """Marks are made to be seen: if `color` is close to the luminance of the photo under
    the mark, use white or black, whichever contrasts more."""
    m = np.asarray(mask, np.float32)
    if m.sum() == 0:
        return color
    lum = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    bg = float((lum * m).sum() / m.sum())
    if abs(float(np.dot(color, (0.299, 0.587, 0.114))) - bg) >= 70:
        return color
    return (255, 255, 255) if bg < 128 else (0, 0, 0)


def _text_layer(text: str, font: ImageFont.FreeTypeFont, stroke: int = 0, outline_only: bool = False) -> Image.Image:
    """An 'L' alpha mask of the text, tightly cropped."""
    x0, t, r, b = font.getbbox(text, stroke_width=stroke)
    pad = 2 + stroke
    im = Image.new("L", (r - x0 + 2 * pad, b - t + 2 * pad), 0)
    d = ImageDraw.Draw(im)
    if outline_only:
        d.text((pad - x0, pad - t), text, font=font, fill=0, stroke_width=max(1, stroke), stroke_fill=255)
        inner = Image.new("L", im.size, 0)
        ImageDraw.Draw(inner).text((pad - x0, pad - t), text, font=font, fill=255)
        im = Image.fromarray(np.clip(np.asarray(im, np.int16) - np.asarray(inner, np.int16), 0, 255).astype(np.uint8))
    else:
        d.text((pad - x0, pad - t), text, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
    return im


def _paste(mask: Image.Image, piece: Image.Image, cx: float, cy: float) -> None:
    """Paste `piece` (L) centred at (cx, cy) into `mask` (L), taking the max."""
    x0, y0 = int(round(cx - piece.width / 2)), int(round(cy - piece.height / 2))
    region = (x0, y0, x0 + piece.width, y0 + piece.height)
    cur = mask.crop(region)
    mask.paste(Image.fromarray(np.maximum(np.asarray(cur), np.asarray(piece))), region[:2])


def _composite(base: Image.Image, mask: Image.Image, color, opacity: float) -> Image.Image:
    a = (np.asarray(mask, np.float32) / 255.0 * opacity)[..., None]
    out = np.asarray(base, np.float32) * (1 - a) + np.asarray(color, np.float32) * a
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))


def _logo_shape(rng: np.random.Generator, size: int, ring: bool = False) -> Image.Image:
    im = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(im)
    w = max(2, size // 10)
    kind = "ring" if ring else ("circle", "square", "triangle", "diamond")[rng.integers(4)]
    m = w
    if kind in ("circle", "ring"):
        d.ellipse((m, m, size - m, size - m), outline=255, width=w)
        if kind == "ring":
            d.ellipse((3 * m, 3 * m, size - 3 * m, size - 3 * m), outline=255, width=max(1, w // 2))
    elif kind == "square":
        d.rectangle((m, m, size - m, size - m), outline=255, width=w)
    elif kind == "triangle":
        d.polygon([(size / 2, m), (size - m, size - m), (m, size - m)], outline=255, width=w)
    else:
        d.polygon([(size / 2, m), (size - m, size / 2), (size / 2, size - m), (m, size / 2)], outline=255, width=w)
    return im


def _angle(rng: np.random.Generator) -> float:
    """Mostly gentle diagonals, sometimes steep or vertical."""
    r = rng.random()
    if r < 0.6:
        return rng.uniform(-45, 45)
    if r < 0.8:
        return (90 if rng.random() < 0.5 else -90) + rng.uniform(-10, 10)
    return rng.uniform(-90, 90)


# ---- layouts: each returns (mask, color, opacity) drawn over an image of size (W, H) -------------

def _center(rng, split, W, H):
    fname = FONTS[split][rng.integers(len(FONTS[split]))]
    font = _font(fname, min(W, H) * rng.uniform(0.07, 0.2))
    piece = _text_layer(random_text(rng, split, fname), font).rotate(_angle(rng), expand=True, resample=Image.BICUBIC)
    mask = Image.new("L", (W, H), 0)
    _paste(mask, piece, W * rng.uniform(0.35, 0.65), H * rng.uniform(0.35, 0.65))
    return mask, _color(rng), rng.uniform(0.2, 0.7)


def _tiled(rng, split, W, H):
    fname = FONTS[split][rng.integers(len(FONTS[split]))]
    font = _font(fname, min(W, H) * rng.uniform(0.035, 0.08))
    piece = _text_layer(random_text(rng, split, fname), font).rotate(_angle(rng), expand=True, resample=Image.BICUBIC)
    mask = Image.new("L", (W, H), 0)
    sx, sy = piece.width * rng.uniform(1.1, 2.0), piece.height * rng.uniform(1.3, 3.0)
    ox, oy = rng.uniform(0, sx), rng.uniform(0, sy)
    shift = rng.uniform(0, 0.5) * sx
    for j, y in enumerate(np.arange(-oy, H + sy, sy)):
        for x in np.arange(-ox + (j % 2) * shift, W + sx, sx):
            _paste(mask, piece, x, y)
    return mask, _color(rng), rng.uniform(0.15, 0.5)


def _corner_line(rng, split, W, H):
    fname = FONTS[split][rng.integers(len(FONTS[split]))]
    font = _font(fname, min(W, H) * rng.uniform(0.03, 0.06))
    piece = _text_layer(random_text(rng, split, fname), font, stroke=int(rng.integers(0, 2)))
    mask = Image.new("L", (W, H), 0)
    m = min(W, H) * rng.uniform(0.02, 0.06)
    cx = m + piece.width / 2 if rng.random() < 0.5 else W - m - piece.width / 2
    cy = m + piece.height / 2 if rng.random() < 0.3 else H - m - piece.height / 2
    _paste(mask, piece, cx, cy)
    return mask, _color(rng), rng.uniform(0.45, 0.95)


def _corner_logo(rng, split, W, H):
    fname = FONTS[split][rng.integers(len(FONTS[split]))]
    s = int(min(W, H) * rng.uniform(0.08, 0.16))
    logo = _logo_shape(rng, s)
    brand = random_brand(rng, split)
    initials = _text_layer(brand[:1].upper(), _font(fname, s * 0.55))
    _paste(logo, initials, s / 2, s / 2)
    label = _text_layer(brand, _font(fname, s * rng.uniform(0.3, 0.5)))
    piece = Image.new("L", (s + label.width + s // 6, max(s, label.height)), 0)
    _paste(piece, logo, s / 2, piece.height / 2)
    _paste(piece, label, s + s // 6 + label.width / 2, piece.height / 2)
    mask = Image.new("L", (W, H), 0)
    m = min(W, H) * 0.04
    cx = m + piece.width / 2 if rng.random() < 0.5 else W - m - piece.width / 2
    cy = m + piece.height / 2 if rng.random() < 0.4 else H - m - piece.height / 2
    _paste(mask, piece, cx, cy)
    return mask, _color(rng), rng.uniform(0.35, 0.85)


def _banner(rng, split, W, H):
    """A translucent dark strip along the bottom with a brand line (needs two colours)."""
    fname = FONTS[split][rng.integers(len(FONTS[split]))]
    h = int(H * rng.uniform(0.06, 0.12))
    text = _text_layer(random_text(rng, split, fname), _font(fname, h * 0.6))
    mask = Image.new("L", (W, H), 0)
    _paste(mask, text, W * rng.uniform(0.3, 0.7), H - h / 2)
    strip = Image.new("L", (W, H), 0)
    ImageDraw.Draw(strip).rectangle((0, H - h, W, H), fill=255)
    return ("banner", strip, mask), (255, 255, 255), rng.uniform(0.5, 0.9)


def _lattice(rng, split, W, H):
    """Stock-photo style: thin diagonal lines crossing the image plus repeated brand names."""
    fname = FONTS[split][rng.integers(len(FONTS[split]))]
    mask = Image.new("L", (W, H), 0)
    d = ImageDraw.Draw(mask)
    step = min(W, H) * rng.uniform(0.25, 0.45)
    lw = max(1, int(min(W, H) / 256))
    for k in np.arange(-max(W, H), 2 * max(W, H), step):
        d.line([(k, 0), (k + H, H)], fill=200, width=lw)
        d.line([(k, H), (k + H, 0)], fill=200, width=lw)
    brand = random_brand(rng, split)
    piece = _text_layer(brand, _font(fname, min(W, H) * rng.uniform(0.04, 0.07)))
    for y in np.arange(step / 2, H, step):
        for x in np.arange(step / 2, W, step):
            _paste(mask, piece, x, y)
    return mask, _color(rng), rng.uniform(0.25, 0.6)


def _outline(rng, split, W, H):
    """Big outlined (stroke-only) text under a ring logo, centred."""
    fname = FONTS[split][rng.integers(len(FONTS[split]))]
    size = min(W, H) * rng.uniform(0.1, 0.2)
    piece = _text_layer(random_brand(rng, split), _font(fname, size), stroke=max(1, int(size / 25)), outline_only=True)
    ring = _logo_shape(rng, int(size * 1.6), ring=True)
    mask = Image.new("L", (W, H), 0)
    _paste(mask, ring, W / 2, H / 2 - size)
    _paste(mask, piece.rotate(rng.uniform(-20, 20), expand=True, resample=Image.BICUBIC), W / 2, H / 2 + size * 0.4)
    return mask, _color(rng), rng.uniform(0.35, 0.8)


def _vertical_edge(rng, split, W, H):
    fname = FONTS[split][rng.integers(len(FONTS[split]))]
    piece = _text_layer(random_text(rng, split, fname), _font(fname, min(W, H) * rng.uniform(0.03, 0.06)))
    piece = piece.rotate(90 if rng.random() < 0.5 else -90, expand=True)
    mask = Image.new("L", (W, H), 0)
    m = min(W, H) * 0.03
    cx = m + piece.width / 2 if rng.random() < 0.5 else W - m - piece.width / 2
    _paste(mask, piece, cx, H * rng.uniform(0.3, 0.7))
    return mask, _color(rng), rng.uniform(0.45, 0.9)


def _scattered(rng, split, W, H):
    fname = FONTS[split][rng.integers(len(FONTS[split]))]
    brand = random_brand(rng, split)
    mask = Image.new("L", (W, H), 0)
    for _ in range(int(rng.integers(3, 7))):
        p = _text_layer(brand, _font(fname, min(W, H) * rng.uniform(0.035, 0.07)))
        piece = p.rotate(rng.uniform(-60, 60), expand=True, resample=Image.BICUBIC)
        _paste(mask, piece, rng.uniform(0.1, 0.9) * W, rng.uniform(0.1, 0.9) * H)
    return mask, _color(rng), rng.uniform(0.3, 0.7)


def _emboss(rng, split, W, H):
    """Embossed text: a light and a dark copy offset by a pixel or two (no flat fill)."""
    fname = FONTS[split][rng.integers(len(FONTS[split]))]
    piece = _text_layer(random_text(rng, split, fname), _font(fname, min(W, H) * rng.uniform(0.08, 0.18)))
    piece = piece.rotate(rng.uniform(-30, 30), expand=True, resample=Image.BICUBIC)
    mask = Image.new("L", (W, H), 0)
    cx, cy = W * rng.uniform(0.35, 0.65), H * rng.uniform(0.35, 0.65)
    _paste(mask, piece, cx, cy)
    o = max(1, int(min(W, H) / 200))
    hi = Image.new("L", (W, H), 0)
    _paste(hi, piece, cx - o, cy - o)
    lo = Image.new("L", (W, H), 0)
    _paste(lo, piece, cx + o, cy + o)
    return ("emboss", hi, lo), (255, 255, 255), rng.uniform(0.35, 0.7)


LAYOUTS = {
    "train": {"center": _center, "tiled": _tiled, "corner_line": _corner_line, "corner_logo": _corner_logo, "banner": _banner},
    "heldout": {"lattice": _lattice, "outline": _outline, "vertical_edge": _vertical_edge, "scattered": _scattered, "emboss": _emboss},
}


def add_watermark(image: np.ndarray, rng: np.random.Generator, split: str = "train", layout: str | None = None) -> np.ndarray:
    """A watermarked copy of `image` (RGB uint8 HxWx3), style drawn from the `split` pools."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    layouts = LAYOUTS[split]
    name = layout or list(layouts)[rng.integers(len(layouts))]
    H, W = image.shape[:2]
    base = Image.fromarray(image)
    mask, color, opacity = layouts[name](rng, split, W, H)
    if not isinstance(mask, tuple) and rng.random() < 0.7:
        color = _visible_color(image, mask, color)
    if isinstance(mask, tuple) and mask[0] == "banner":
        _, strip, text = mask
        out = _composite(base, strip, (0, 0, 0), opacity * 0.6)
        return np.asarray(_composite(out, text, color, min(1.0, opacity + 0.1)))
    if isinstance(mask, tuple) and mask[0] == "emboss":
        _, hi, lo = mask
        out = _composite(base, hi, (255, 255, 255), opacity)
        return np.asarray(_composite(out, lo, (0, 0, 0), opacity))
    if rng.random() < 0.25:  # soft drop shadow under the mark
        shadow = mask.filter(ImageFilter.GaussianBlur(max(1, min(W, H) / 300)))
        shadow = Image.fromarray(np.roll(np.asarray(shadow), (1, 1), axis=(0, 1)))
        base = _composite(base, shadow, (0, 0, 0), opacity * 0.5)
    return np.asarray(_composite(base, mask, color, opacity))


def add_text_overlay(image: np.ndarray, rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """Prominent, opaque rendered text (meme captions, a poster title, a paragraph, a
    subtitle line): the text filter's positives. Unlike watermarks it is meant to be read."""
    H, W = image.shape[:2]
    base = Image.fromarray(image).convert("RGB")
    d = ImageDraw.Draw(base)
    fonts = FONTS["train"] + FONTS["heldout"]
    fname = fonts[rng.integers(len(fonts))]
    words = ("the", "best", "day", "ever", "when", "you", "realize", "it", "is", "monday", "again", "summer",
             "sale", "now", "open", "free", "shipping", "on", "all", "orders", "new", "collection", "coffee",
             "time", "life", "is", "good", "breaking", "news", "weather", "today")
    kind = kind or ("meme", "poster", "paragraph", "caption")[rng.integers(4)]

    def line(n):
        return " ".join(words[i] for i in rng.integers(0, len(words), n))

    def fit(text, size, max_w):
        f = _font(fname, size)
        while f.getlength(text) > max_w and size > 8:
            size *= 0.9
            f = _font(fname, size)
        return f

    if rng.random() < 0.3:  # (the order of the rng calls is part of the data: keep it)
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
    else:
        fill = (255, 255, 255) if rng.random() < 0.6 else (0, 0, 0)
    stroke_fill = (0, 0, 0) if sum(fill) > 380 else (255, 255, 255)
    if kind == "meme":
        for y_frac in (0.04, 0.84):
            t = line(int(rng.integers(3, 6))).upper()
            f = fit(t, H * 0.11, W * 0.94)
            d.text((W / 2, H * y_frac), t, font=f, fill=fill, anchor="mt", stroke_width=max(1, int(f.size / 12)), stroke_fill=stroke_fill)
    elif kind == "poster":
        n = int(rng.integers(2, 4))
        y = H * rng.uniform(0.1, 0.3)
        for _ in range(n):
            t = line(int(rng.integers(2, 4))).title()
            f = fit(t, H * rng.uniform(0.08, 0.14), W * 0.9)
            d.text((W / 2, y), t, font=f, fill=fill, anchor="mt", stroke_width=1, stroke_fill=stroke_fill)
            y += f.size * 1.3
    elif kind == "caption":  # one subtitle-like line near the bottom
        t = line(int(rng.integers(4, 8))).capitalize()
        f = fit(t, H * rng.uniform(0.06, 0.09), W * 0.9)
        d.text((W / 2, H * 0.95), t, font=f, fill=fill, anchor="mb", stroke_width=max(1, int(f.size / 15)), stroke_fill=stroke_fill)
    else:
        x0, y0 = W * rng.uniform(0.04, 0.2), H * rng.uniform(0.05, 0.3)
        size = H * rng.uniform(0.045, 0.07)
        f = _font(fname, size)
        box = (x0 - 6, y0 - 6, W - x0 * 0.5 + 6, min(H - 4, y0 + size * 1.4 * 6 + 6))
        if rng.random() < 0.7:
            d.rectangle(box, fill=stroke_fill)
        y = y0
        while y + size < box[3] - 4:
            t = line(12)
            while f.getlength(t) > box[2] - x0 - 6 and " " in t:
                t = t.rsplit(" ", 1)[0]
            d.text((x0, y), t, font=f, fill=fill)
            y += size * 1.4
    return np.asarray(base)


def dead_leaves(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A 'dead leaves' image: overlapping random disks, boxes and polygons (log-uniform
    sizes), some textured, lightly blurred. Natural-image-like edge statistics from
    no photo at all: extra clean backgrounds so the watermark model learns the shape of
    marks rather than the look of a dozen photos."""
    import cv2

    img = np.empty((h, w, 3), np.float32)
    img[:] = rng.uniform(0, 255, 3)
    rmin, rmax = 2.0, max(h, w) / 2
    n = int(rng.integers(300, 700))
    sat = rng.uniform(0.15, 0.7)
    # log-uniform sizes, largest first, so small shapes end on top and the canvas is covered
    for r in np.sort(rmin * (rmax / rmin) ** rng.random(n))[::-1]:
        rgb = rng.uniform(0, 255, 3)
        c = tuple(float(v) for v in rgb.mean() + (rgb - rgb.mean()) * sat)  # muted, photo-like colours
        cx, cy = rng.uniform(-r, w + r), rng.uniform(-r, h + r)
        kind = rng.integers(3)
        if kind == 0:
            cv2.circle(img, (int(cx), int(cy)), int(r), c, -1, lineType=cv2.LINE_AA)
        elif kind == 1:
            box = ((cx, cy), (2 * r * rng.uniform(0.3, 1), 2 * r * rng.uniform(0.3, 1)), rng.uniform(0, 180))
            cv2.fillPoly(img, [cv2.boxPoints(box).astype(np.int32)], c, lineType=cv2.LINE_AA)
        else:
            n = int(rng.integers(3, 7))
            ang = np.sort(rng.uniform(0, 2 * np.pi, n))
            pts = np.stack([cx + r * np.cos(ang), cy + r * np.sin(ang)], 1).astype(np.int32)
            cv2.fillPoly(img, [pts], c, lineType=cv2.LINE_AA)
    if rng.random() < 0.5:  # grain / texture
        img += rng.normal(0, rng.uniform(2, 12), img.shape).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.5))
    return np.clip(img, 0, 255).astype(np.uint8)
