"""Real photos and hostile inputs for a loopback HTTP server (see conftest.py)."""

from __future__ import annotations

import io
import socket
import struct
import time
import zlib

import numpy as np
from PIL import Image

from filter_dev.photos import load_rgb, skimage_photos
from tests.pipeline.hostile_servers import body

PHOTO_NAMES = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "hubble_deep_field.jpg"]


def photo(name: str) -> np.ndarray:
    (path,) = [p for p in skimage_photos() if p.name == name]
    return load_rgb(path)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(side: int = 20000) -> bytes:
    """A valid side x side 1-bit PNG (~50 KB) that would decode to side*side*3 bytes."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row * 500) for _ in range(side // 500)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def hostile_payloads() -> dict[str, tuple[str, bytes]]:
    """name -> (content type, body) for the odd-but-valid and the broken images."""
    astro = Image.fromarray(photo("astronaut.png"))
    coffee = Image.fromarray(photo("coffee.png"))
    real_jpg = encode(astro, "JPEG", quality=90)
    real_png = encode(coffee, "PNG")
    rgba = np.dstack([photo("chelsea.png"), np.full(photo("chelsea.png").shape[:2], 255, np.uint8)])
    rgba[:, : rgba.shape[1] // 2, 3] = 0  # left half fully transparent
    gray16 = (np.asarray(astro.convert("L"), dtype=np.uint16) * 257)
    frames = [astro.resize((320, 320)), coffee.resize((320, 320))]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return {
        "corrupt.jpg": ("image/jpeg", real_jpg[:20] + bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8))),
        "truncated.png": ("image/png", real_png[: len(real_png) * 2 // 5]),
        "page.jpg": ("image/jpeg", b"<!DOCTYPE html><html><body><h1>Not an image</h1></body></html>"),
        "empty.jpg": ("image/jpeg", b""),
        "bomb.png": ("image/png", bomb_png()),
        "cmyk.jpg": ("image/jpeg", encode(astro.convert("CMYK"), "JPEG", quality=92)),
        "gray16.png": ("image/png", encode(Image.fromarray(gray16), "PNG")),
        "animated.gif": ("image/gif", gif.getvalue()),
        "rgba.png": ("image/png", encode(Image.fromarray(rgba, "RGBA"), "PNG")),
    }


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def routes(payloads: dict[str, tuple[str, bytes]], slow_seconds: float, photo_dir) -> dict:
    def slow(req):
        time.sleep(slow_seconds)
        body(payloads["cmyk.jpg"][1], "image/jpeg")(req)

    def redirect(target):
        def handler(req):
            req.send_response(302)
            req.send_header("Location", target)
            req.send_header("Content-Length", "0")
            req.end_headers()

        return handler

    def delayed(req):  # /delay/NAME: a real photo after a short pause (keeps a run busy)
        time.sleep(0.4)
        name = req.path.rsplit("/", 1)[-1]
        body((photo_dir / name).read_bytes(), "image/png")(req)

    table = {f"/{name}": body(data, ct) for name, (ct, data) in payloads.items()}
    table.update({f"/delay/{p.name}": delayed for p in photo_dir.iterdir()})
    table.update({"/slow.jpg": slow, "/loop-a": redirect("/loop-b"), "/loop-b": redirect("/loop-a")})
    return table
