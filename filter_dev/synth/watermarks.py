"""Render realistic visible watermarks onto photos (the watermark model's positives).

Styles come in a "train" pool and a disjoint "heldout" pool (fonts and texts:
filter_dev/synth/fonts.py; layouts below): train = centred text, tiled text, corner
copyright line, corner logo, bottom banner; heldout = stock-photo lattice (diagonal lines
+ repeated brand), outlined text with a ring logo, vertical edge text, scattered small
marks, embossed text. MISS_LAYOUTS, opt-in (`add_watermark(..., miss_layouts=True)`,
training split only): the held-out benches' commonest misses redrawn in training fonts and
texts (one faint word across the image, faint tiles, a tiny corner credit); the outline
and emboss looks (no flat fill) stay held-out only.

`add_watermark(image, rng, split)` returns a watermarked copy (RGB uint8). Every layout
returns the mark as a list of `Layer`s (an alpha mask, a colour, an opacity) painted in
order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from filter_dev.synth.fonts import SPLITS, font, pick_font_name, random_brand, random_text


@dataclass
class Layer:
    mask: Image.Image  # "L" alpha, image size
    color: tuple[int, int, int]
    opacity: float


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


def text_mask(text: str, face, stroke: int = 0, outline_only: bool = False) -> Image.Image:
    """An 'L' alpha mask of the text, tightly cropped."""
    x0, t, r, b = face.getbbox(text, stroke_width=stroke)
    pad = 2 + stroke
    im = Image.new("L", (r - x0 + 2 * pad, b - t + 2 * pad), 0)
    d = ImageDraw.Draw(im)
    if outline_only:
        d.text((pad - x0, pad - t), text, font=face, fill=0, stroke_width=max(1, stroke), stroke_fill=255)
        inner = Image.new("L", im.size, 0)
        ImageDraw.Draw(inner).text((pad - x0, pad - t), text, font=face, fill=255)
        im = Image.fromarray(np.clip(np.asarray(im, np.int16) - np.asarray(inner, np.int16), 0, 255).astype(np.uint8))
    else:
        d.text((pad - x0, pad - t), text, font=face, fill=255, stroke_width=stroke, stroke_fill=255)
    return im


def paste_max(mask: Image.Image, piece: Image.Image, cx: float, cy: float) -> None:
    """Paste `piece` (L) centred at (cx, cy) into `mask` (L), taking the max."""
    x0, y0 = int(round(cx - piece.width / 2)), int(round(cy - piece.height / 2))
    region = (x0, y0, x0 + piece.width, y0 + piece.height)
    cur = mask.crop(region)
    mask.paste(Image.fromarray(np.maximum(np.asarray(cur), np.asarray(piece))), region[:2])


def composite(base: Image.Image, mask: Image.Image, color, opacity: float) -> Image.Image:
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


def _text_piece(rng, split, size, **kw) -> Image.Image:
    """A mask of one random watermark text in a random font of the split."""
    name = pick_font_name(rng, split)
    return text_mask(random_text(rng, split, name), font(name, size), **kw)


def _blank(W, H) -> Image.Image:
    return Image.new("L", (W, H), 0)


# ---- layouts: each returns the mark's layers over an image of size (W, H) -------------

def _center(rng, split, W, H):
    piece = _text_piece(rng, split, min(W, H) * rng.uniform(0.07, 0.2)).rotate(_angle(rng), expand=True, resample=Image.BICUBIC)
    mask = _blank(W, H)
    paste_max(mask, piece, W * rng.uniform(0.35, 0.65), H * rng.uniform(0.35, 0.65))
    return [Layer(mask, _color(rng), rng.uniform(0.2, 0.7))]


def _tiled(rng, split, W, H):
    piece = _text_piece(rng, split, min(W, H) * rng.uniform(0.035, 0.08)).rotate(_angle(rng), expand=True, resample=Image.BICUBIC)
    mask = _blank(W, H)
    sx, sy = piece.width * rng.uniform(1.1, 2.0), piece.height * rng.uniform(1.3, 3.0)
    ox, oy = rng.uniform(0, sx), rng.uniform(0, sy)
    shift = rng.uniform(0, 0.5) * sx
    for j, y in enumerate(np.arange(-oy, H + sy, sy)):
        for x in np.arange(-ox + (j % 2) * shift, W + sx, sx):
            paste_max(mask, piece, x, y)
    return [Layer(mask, _color(rng), rng.uniform(0.15, 0.5))]


def _corner_line(rng, split, W, H):
    piece = _text_piece(rng, split, min(W, H) * rng.uniform(0.03, 0.06), stroke=int(rng.integers(0, 2)))
    mask = _blank(W, H)
    m = min(W, H) * rng.uniform(0.02, 0.06)
    cx = m + piece.width / 2 if rng.random() < 0.5 else W - m - piece.width / 2
    cy = m + piece.height / 2 if rng.random() < 0.3 else H - m - piece.height / 2
    paste_max(mask, piece, cx, cy)
    return [Layer(mask, _color(rng), rng.uniform(0.45, 0.95))]


def _corner_logo(rng, split, W, H):
    name = pick_font_name(rng, split)
    s = int(min(W, H) * rng.uniform(0.08, 0.16))
    logo = _logo_shape(rng, s)
    brand = random_brand(rng, split)
    paste_max(logo, text_mask(brand[:1].upper(), font(name, s * 0.55)), s / 2, s / 2)
    label = text_mask(brand, font(name, s * rng.uniform(0.3, 0.5)))
    piece = Image.new("L", (s + label.width + s // 6, max(s, label.height)), 0)
    paste_max(piece, logo, s / 2, piece.height / 2)
    paste_max(piece, label, s + s // 6 + label.width / 2, piece.height / 2)
    mask = _blank(W, H)
    m = min(W, H) * 0.04
    cx = m + piece.width / 2 if rng.random() < 0.5 else W - m - piece.width / 2
    cy = m + piece.height / 2 if rng.random() < 0.4 else H - m - piece.height / 2
    paste_max(mask, piece, cx, cy)
    return [Layer(mask, _color(rng), rng.uniform(0.35, 0.85))]


def _banner(rng, split, W, H):
    """A translucent dark strip along the bottom with a brand line."""
    h = int(H * rng.uniform(0.06, 0.12))
    text = _blank(W, H)
    paste_max(text, _text_piece(rng, split, h * 0.6), W * rng.uniform(0.3, 0.7), H - h / 2)
    strip = _blank(W, H)
    ImageDraw.Draw(strip).rectangle((0, H - h, W, H), fill=255)
    opacity = rng.uniform(0.5, 0.9)
    return [Layer(strip, (0, 0, 0), opacity * 0.6), Layer(text, (255, 255, 255), min(1.0, opacity + 0.1))]


def _lattice(rng, split, W, H):
    """Stock-photo style: thin diagonal lines crossing the image plus repeated brand names."""
    name = pick_font_name(rng, split)
    mask = _blank(W, H)
    d = ImageDraw.Draw(mask)
    step = min(W, H) * rng.uniform(0.25, 0.45)
    lw = max(1, int(min(W, H) / 256))
    for k in np.arange(-max(W, H), 2 * max(W, H), step):
        d.line([(k, 0), (k + H, H)], fill=200, width=lw)
        d.line([(k, H), (k + H, 0)], fill=200, width=lw)
    piece = text_mask(random_brand(rng, split), font(name, min(W, H) * rng.uniform(0.04, 0.07)))
    for y in np.arange(step / 2, H, step):
        for x in np.arange(step / 2, W, step):
            paste_max(mask, piece, x, y)
    return [Layer(mask, _color(rng), rng.uniform(0.25, 0.6))]


def _outline(rng, split, W, H):
    """Big outlined (stroke-only) text under a ring logo, centred."""
    name = pick_font_name(rng, split)
    size = min(W, H) * rng.uniform(0.1, 0.2)
    piece = text_mask(random_brand(rng, split), font(name, size), stroke=max(1, int(size / 25)), outline_only=True)
    mask = _blank(W, H)
    paste_max(mask, _logo_shape(rng, int(size * 1.6), ring=True), W / 2, H / 2 - size)
    paste_max(mask, piece.rotate(rng.uniform(-20, 20), expand=True, resample=Image.BICUBIC), W / 2, H / 2 + size * 0.4)
    return [Layer(mask, _color(rng), rng.uniform(0.35, 0.8))]


def _vertical_edge(rng, split, W, H):
    piece = _text_piece(rng, split, min(W, H) * rng.uniform(0.03, 0.06)).rotate(90 if rng.random() < 0.5 else -90, expand=True)
    mask = _blank(W, H)
    m = min(W, H) * 0.03
    cx = m + piece.width / 2 if rng.random() < 0.5 else W - m - piece.width / 2
    paste_max(mask, piece, cx, H * rng.uniform(0.3, 0.7))
    return [Layer(mask, _color(rng), rng.uniform(0.45, 0.9))]


def _scattered(rng, split, W, H):
    name = pick_font_name(rng, split)
    brand = random_brand(rng, split)
    mask = _blank(W, H)
    for _ in range(int(rng.integers(3, 7))):
        piece = text_mask(brand, font(name, min(W, H) * rng.uniform(0.035, 0.07))).rotate(rng.uniform(-60, 60), expand=True, resample=Image.BICUBIC)
        paste_max(mask, piece, rng.uniform(0.1, 0.9) * W, rng.uniform(0.1, 0.9) * H)
    return [Layer(mask, _color(rng), rng.uniform(0.3, 0.7))]


def _emboss(rng, split, W, H):
    """Embossed text: a light and a dark copy offset by a pixel or two (no flat fill)."""
    piece = _text_piece(rng, split, min(W, H) * rng.uniform(0.08, 0.18)).rotate(rng.uniform(-30, 30), expand=True, resample=Image.BICUBIC)
    cx, cy = W * rng.uniform(0.35, 0.65), H * rng.uniform(0.35, 0.65)
    o = max(1, int(min(W, H) / 200))
    hi, lo = _blank(W, H), _blank(W, H)
    paste_max(hi, piece, cx - o, cy - o)
    paste_max(lo, piece, cx + o, cy + o)
    opacity = rng.uniform(0.35, 0.7)
    return [Layer(hi, (255, 255, 255), opacity), Layer(lo, (0, 0, 0), opacity)]


def _big_center(rng, split, W, H):
    """One word across most of the image ("PREVIEW"), faint: the held-out benches' commonest miss."""
    name = pick_font_name(rng, split)
    text = max(random_text(rng, split, name).split(), key=len).upper() if rng.random() < 0.6 else random_brand(rng, split)
    face = font(name, min(W, H) * 0.2)
    piece = text_mask(text, face)
    s = W * rng.uniform(0.5, 0.95) / piece.width  # the word spans half to nearly all the width
    piece = text_mask(text, font(name, max(8.0, min(W, H) * 0.2 * s)), stroke=int(rng.integers(0, 3)))
    piece = piece.rotate(rng.uniform(-40, 40) if rng.random() < 0.6 else 0.0, expand=True, resample=Image.BICUBIC)
    mask = _blank(W, H)
    paste_max(mask, piece, W * rng.uniform(0.4, 0.6), H * rng.uniform(0.4, 0.6))
    return [Layer(mask, _color(rng), rng.uniform(0.12, 0.45))]


def _faint_tiled(rng, split, W, H):
    """Tiled marks barely above the photo: the tiled layout at about half its opacity."""
    layer = _tiled(rng, split, W, H)[0]
    layer.opacity = rng.uniform(0.12, 0.25)
    return [layer]


def _small_corner(rng, split, W, H):
    """A short credit a few pixels high near a corner or an edge."""
    piece = _text_piece(rng, split, min(W, H) * rng.uniform(0.022, 0.035))
    if rng.random() < 0.3:
        piece = piece.rotate(90 if rng.random() < 0.5 else -90, expand=True)
    mask = _blank(W, H)
    m = min(W, H) * rng.uniform(0.01, 0.04)
    cx = m + piece.width / 2 if rng.random() < 0.5 else W - m - piece.width / 2
    cy = m + piece.height / 2 if rng.random() < 0.3 else H - m - piece.height / 2
    paste_max(mask, piece, cx, cy)
    return [Layer(mask, _color(rng), rng.uniform(0.5, 0.95))]


LAYOUTS = {
    "train": {"center": _center, "tiled": _tiled, "corner_line": _corner_line, "corner_logo": _corner_logo, "banner": _banner},
    "heldout": {"lattice": _lattice, "outline": _outline, "vertical_edge": _vertical_edge, "scattered": _scattered, "emboss": _emboss},
}
# Opt-in extra training layouts (training fonts and texts), kept out of LAYOUTS["train"] so
# the default data, and so the shipped weights' recipe, stay as they were.
MISS_LAYOUTS = {"big_center": _big_center, "faint_tiled": _faint_tiled, "small_corner": _small_corner}


def add_watermark(image: np.ndarray, rng: np.random.Generator, split: str = "train", layout: str | None = None,
                  miss_layouts: bool = False) -> np.ndarray:
    """A watermarked copy of `image` (RGB uint8 HxWx3), style drawn from the `split` pools
    (with `miss_layouts`, the training pool plus MISS_LAYOUTS)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if miss_layouts and split != "train":
        raise ValueError("miss_layouts: training split only (held-out styles stay unseen in training)")
    layouts = {**LAYOUTS[split], **MISS_LAYOUTS} if miss_layouts else LAYOUTS[split]
    name = layout or list(layouts)[rng.integers(len(layouts))]
    draw = layouts.get(name) or (MISS_LAYOUTS.get(name) if split == "train" else None)
    if draw is None:
        raise ValueError(f"layout {name!r} is not in the {split!r} pool")
    H, W = image.shape[:2]
    layers = draw(rng, split, W, H)
    base = Image.fromarray(image)
    if len(layers) == 1:  # one-colour marks: made visible, sometimes with a soft drop shadow
        mark = layers[0]
        if rng.random() < 0.7:
            mark.color = _visible_color(image, mark.mask, mark.color)
        if rng.random() < 0.25:
            shadow = mark.mask.filter(ImageFilter.GaussianBlur(max(1, min(W, H) / 300)))
            shadow = Image.fromarray(np.roll(np.asarray(shadow), (1, 1), axis=(0, 1)))
            base = composite(base, shadow, (0, 0, 0), mark.opacity * 0.5)
    for layer in layers:
        base = composite(base, layer.mask, layer.color, layer.opacity)
    return np.asarray(base)
