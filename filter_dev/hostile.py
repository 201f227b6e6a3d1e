"""Real photos and hostile inputs for a loopback HTTP server (see conftest.py)."""

from __future__ import annotations

import gzip
import io
import socket
import struct
import time
import zlib

import numpy as np
from PIL import Image

from filter_dev.hostile_servers import body
from filter_dev.photos import load_rgb, skimage_photos

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


def deep_rgba_png(side: int) -> bytes:
    """A valid side x side 16-bit RGBA PNG of one grey (99 MP in 788 KB at side 9950)."""
    row = b"\x00" + b"\x80\x00" * 4 * side
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 16, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def canvas_gif(side: int) -> bytes:
    """A 35-byte GIF declaring a side x side canvas, holding one 1x1 frame."""
    head = b"GIF89a" + struct.pack("<HHBBB", side, side, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    return head + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00\x3b"


def scan_flood_jpeg(img: Image.Image, scans: int) -> bytes:
    """A valid progressive JPEG whose last scan is repeated until it has `scans` scans:
    each scan re-walks the whole image (issue 27: a 1 MB one took 63 s to decode)."""
    data = encode(img, "JPEG", quality=90, progressive=True)
    last = data.rindex(b"\xff\xda")
    n = data.count(b"\xff\xda")
    return data[:-2] + data[last:-2] * max(0, scans - n) + b"\xff\xd9"


def ztxt_png(rgb: np.ndarray, inflated: int = 4 << 20) -> bytes:
    """A real PNG with a zTXt chunk inflating to `inflated` bytes (PIL refuses > 1 MB)."""
    png = encode(Image.fromarray(rgb), "PNG")
    chunk = _png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b" " * inflated, 9))
    return png[:33] + chunk + png[33:]  # after the signature and IHDR


def psd(rgb: np.ndarray) -> bytes:
    """A minimal uncompressed 8-bit RGB Photoshop file (merged image only)."""
    h, w, _ = rgb.shape
    head = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, h, w, 8, 3) + struct.pack(">III", 0, 0, 0)
    return head + struct.pack(">H", 0) + np.ascontiguousarray(rgb.transpose(2, 0, 1)).tobytes()


def rotated_jpeg(rgb: np.ndarray, orientation: int = 6) -> bytes:
    """A photo stored turned (as a phone writes it) with the EXIF tag that turns it back."""
    turned = {6: np.rot90(rgb, 1), 8: np.rot90(rgb, -1), 3: np.rot90(rgb, 2)}[orientation]
    im = Image.fromarray(np.ascontiguousarray(turned))
    exif = im.getexif()
    exif[0x0112] = orientation
    return encode(im, "JPEG", quality=90, exif=exif.tobytes())


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
        "scan-flood.jpg": ("image/jpeg", scan_flood_jpeg(coffee.resize((200, 133)), 600)),
        "ztxt.png": ("image/png", ztxt_png(photo("coffee.png"))),
        "photo.psd": ("image/vnd.adobe.photoshop", psd(photo("chelsea.png"))),
        "rotated.jpg": ("image/jpeg", rotated_jpeg(photo("rocket.jpg"))),
        "gzipped.jpg": ("image/jpeg", gzip.compress(real_jpg)),
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
