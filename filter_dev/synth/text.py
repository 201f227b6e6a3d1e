"""Text drawn into photos, in two kinds the filters must tell apart:

- `add_text_overlay`: prominent rendered text meant to be read (meme captions, a poster
  title, a paragraph, a subtitle line): the text filter's positives;
- `add_scene_text`: ordinary text that is part of the scene (a shop sign, a row of
  stadium ads, a label on a box, lettering painted on a wall), seen in perspective, lit
  and blurred like the scene around it: NOT a watermark. The watermark model trains
  against it as a hard negative. Uses the train fonts only, so held-out fonts stay unseen.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageDraw

from filter_dev.synth.fonts import FONTS, font, pick_font_name, random_brand, scene_words

_OVERLAY_WORDS = ("the", "best", "day", "ever", "when", "you", "realize", "it", "is", "monday", "again", "summer",
                  "sale", "now", "open", "free", "shipping", "on", "all", "orders", "new", "collection", "coffee",
                  "time", "life", "is", "good", "breaking", "news", "weather", "today")


def add_text_overlay(image: np.ndarray, rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """Prominent, opaque rendered text (meme captions, a poster title, a paragraph, a
    subtitle line): the text filter's positives. Unlike watermarks it is meant to be read."""
    H, W = image.shape[:2]
    base = Image.fromarray(image).convert("RGB")
    d = ImageDraw.Draw(base)
    fonts = FONTS["train"] + FONTS["heldout"]
    fname = fonts[rng.integers(len(fonts))]
    kind = kind or ("meme", "poster", "paragraph", "caption")[rng.integers(4)]

    def line(n):
        return " ".join(_OVERLAY_WORDS[i] for i in rng.integers(0, len(_OVERLAY_WORDS), n))

    def fit(text, size, max_w):
        f = font(fname, size)
        while f.getlength(text) > max_w and size > 8:
            size *= 0.9
            f = font(fname, size)
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
        f = font(fname, size)
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


# ---- scene text: watermark hard negatives ----------------------------------------------------

def _random_rgb(rng) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, 3))


def _contrasting(rgb, rng) -> tuple[int, int, int]:
    lum = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    if rng.random() < 0.3:
        c = _random_rgb(rng)
        if abs(0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] - lum) > 90:
            return c
    return (20, 20, 20) if lum > 128 else (245, 245, 240)


def _scene_string(rng) -> str:
    r = rng.random()
    if r < 0.5:
        text = scene_words(rng, int(rng.integers(1, 3)))
    elif r < 0.8:
        text = random_brand(rng, "train")
    else:
        text = f"{scene_words(rng, 1)} {int(rng.integers(1, 999))}"
    return text.upper() if rng.random() < 0.5 else text.title()


def _plate(rng, height: int, lines: int) -> np.ndarray:
    """An RGBA sign: a coloured plate (sometimes with a border) carrying 1-3 text lines.
    (Always on a plate: bare flat lettering in a photo's corner is what a watermark looks
    like, so it cannot be a negative.)"""
    fname = pick_font_name(rng, "train")
    f = font(fname, height)
    texts = [_scene_string(rng) for _ in range(lines)]
    widths = [f.getlength(t) for t in texts]
    pad = int(height * rng.uniform(0.2, 0.7))
    w, h = int(max(widths) + 2 * pad), int(lines * height * 1.25 + 2 * pad * 0.6)
    bg = _random_rgb(rng)
    ink = _contrasting(bg, rng)
    im = Image.new("RGBA", (w, h), (*bg, 255))
    d = ImageDraw.Draw(im)
    if rng.random() < 0.4:
        d.rectangle((0, 0, w - 1, h - 1), outline=(*_contrasting(bg, rng), 255), width=max(1, height // 8))
    for k, (t, tw) in enumerate(zip(texts, widths)):
        d.text(((w - tw) / 2, pad * 0.6 + k * height * 1.25), t, font=f, fill=(*ink, 255))
    return np.asarray(im)


def _warp_into(image: np.ndarray, rgba: np.ndarray, rng, cx: float, cy: float, scale: float) -> np.ndarray:
    """Paste an RGBA piece into `image` centred at (cx, cy) through a random perspective
    (a surface seen at an angle), then give it the scene's light, blur and grain."""
    H, W = image.shape[:2]
    h, w = rgba.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    hw, hh = w * scale / 2, h * scale / 2
    rot = np.deg2rad(rng.uniform(-12, 12))
    R = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]])
    quad = np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]]) @ R.T
    # foreshortening: one side shorter than the other
    k = rng.uniform(0.0, 0.35)
    if rng.random() < 0.5:
        quad[[1, 2], 1] *= 1 - k
    else:
        quad[[0, 3], 1] *= 1 - k
    quad += rng.normal(0, 0.04 * max(hw, hh), quad.shape) + [cx, cy]
    M = cv2.getPerspectiveTransform(src, quad.astype(np.float32))
    warped = cv2.warpPerspective(rgba, M, (W, H), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0, 0)).astype(np.float32)
    alpha = warped[..., 3:] / 255.0
    piece = warped[..., :3]
    # light: the scene's own brightness around the piece, and a gradient across it
    light = rng.uniform(0.55, 1.1) * np.linspace(rng.uniform(0.8, 1.0), rng.uniform(0.8, 1.0), W, dtype=np.float32)[None, :, None]
    piece = piece * light
    if rng.random() < 0.3:  # a painted board takes the surface's texture
        surface = image.astype(np.float32).mean(2, keepdims=True) / 255.0
        piece = piece * (0.6 + 0.6 * surface)
    out = image.astype(np.float32) * (1 - alpha) + piece * alpha
    sigma = rng.uniform(0.0, 1.2)
    if sigma > 0.3:  # defocus of the region the sign sits in
        blurred = cv2.GaussianBlur(out, (0, 0), sigma)
        region = cv2.dilate((alpha[..., 0] > 0).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(np.float32)[..., None]
        out = out * (1 - region) + blurred * region
    out += rng.normal(0, rng.uniform(0, 4), out.shape).astype(np.float32) * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def add_scene_text(image: np.ndarray, rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """`image` with ordinary scene text: a shop sign, a row of ads, a label, a street
    plate (most cover well under 3 % of the image, like signs in real photos)."""
    H, W = image.shape[:2]
    kind = kind or ("sign", "sign", "ads", "labels")[rng.integers(4)]
    out = image
    if kind == "sign":
        piece = _plate(rng, int(rng.integers(18, 48)), int(rng.integers(1, 3)))
        target_w = W * np.exp(rng.uniform(np.log(0.08), np.log(0.4)))
        out = _warp_into(out, piece, rng, rng.uniform(0.15, 0.85) * W, rng.uniform(0.1, 0.9) * H, target_w / piece.shape[1])
    elif kind == "ads":  # a row of boards along a line (stadium, shop fronts)
        y = rng.uniform(0.3, 0.85) * H
        height = int(rng.integers(16, 40))
        x = rng.uniform(-0.1, 0.2) * W
        scale = rng.uniform(0.25, 0.6) * W / 300
        while x < W:
            piece = _plate(rng, height, 1)
            pw = piece.shape[1] * scale
            out = _warp_into(out, piece, rng, x + pw / 2, y + rng.normal(0, 2), scale)
            x += pw * rng.uniform(1.0, 1.3)
    else:  # small labels scattered on objects
        for _ in range(int(rng.integers(1, 4))):
            piece = _plate(rng, int(rng.integers(14, 30)), int(rng.integers(1, 4)))
            target_w = W * rng.uniform(0.05, 0.18)
            out = _warp_into(out, piece, rng, rng.uniform(0.1, 0.9) * W, rng.uniform(0.1, 0.9) * H, target_w / piece.shape[1])
    return out
