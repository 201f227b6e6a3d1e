"""What an image's header says, read before any pixel is decoded: its displayed size
(EXIF orientation applied: a phone photo stored sideways with Orientation=6 is
portrait), its format, and whether decoding it is affordable.

Refused from the header alone (so they cost a few KB, not the decode):
- `too_large`: more than `images.max_image_pixels` pixels;
- `too_complex`: a progressive JPEG with more than MAX_JPEG_SCANS scans. Each scan
  re-walks the whole image: a 1 MB file repeating its last scan ~27 000 times takes a
  minute to decode, an 8 MB one most of an hour. Real progressive JPEGs have ~10 scans;
  browsers and libjpeg-turbo (`-maxscans`) cap them the same way.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

from PIL import Image

# We enforce our own pixel limit before decoding; PIL's warning/error would pre-empt it.
Image.MAX_IMAGE_PIXELS = None

MAX_JPEG_SCANS = 256
_SOS = b"\xff\xda"  # JPEG start-of-scan; entropy-coded data stuffs every 0xFF with 0x00, so this is always a marker


class DecodeError(Exception):
    """An image that cannot be stored. `reason` is a short category for the ledger."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass(frozen=True)
class Header:
    width: int  # as displayed (after the EXIF orientation)
    height: int
    orientation: int  # EXIF Orientation, 1..8 (1: as stored)
    format: str  # PIL's name: JPEG, PNG, GIF, ...
    mode: str = ""  # PIL's pixel mode: RGB, RGBA, P, I;16, ...


def _describe_non_image(data: bytes) -> str:
    if not data:
        return "empty response body"
    head = data[:64].lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body")):
        return "body is HTML/XML, not an image"
    if data[:2] == b"\x1f\x8b":
        return "body is gzip-compressed (a server sent it Content-Encoding: gzip or as a .gz file), not an image"
    return f"unrecognised image format (first bytes {data[:8]!r})"


def _orientation(im: Image.Image) -> int:
    try:
        value = int(im.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block does not cost the image
        return 1
    return value if 1 <= value <= 8 else 1


def _png_ihdr(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's first chunk, for the PNGs PIL refuses to open."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR" or len(data) < 24:
        return None
    return struct.unpack(">II", data[16:24])


def read_header(data: bytes, max_pixels: int) -> Header:
    """The header of `data`; DecodeError for non-images, bombs and scan floods."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            (w, h), fmt, mode, orientation = im.size, im.format or "", im.mode, _orientation(im)
    # Any failure is this input's: besides PIL's own errors, ultralytics (imported in a
    # process running the detector) patches Image.open to retry unknown files with a HEIF
    # plugin, and raises ModuleNotFoundError when that plugin is not installed.
    except Exception as err:  # noqa: BLE001
        if not _png_ihdr(data):
            raise DecodeError("decode_error", f"{_describe_non_image(data)} ({err.__class__.__name__})") from None
        (w, h), fmt, mode, orientation = _png_ihdr(data), "PNG", "", 1  # PIL refuses a zTXt/iCCP chunk inflating past 1 MB
    if w <= 0 or h <= 0:
        raise DecodeError("decode_error", f"header declares an empty image ({w}x{h})")
    if w * h > max_pixels:
        raise DecodeError(
            "too_large",
            f"{w}x{h} = {w * h / 1e6:.1f} MP exceeds images.max_image_pixels = {max_pixels / 1e6:.1f} MP "
            "(not decoded; raise the limit to accept it)",
        )
    if fmt == "JPEG" and (scans := data.count(_SOS)) > MAX_JPEG_SCANS:
        raise DecodeError("too_complex", f"JPEG with {scans} scans (at most {MAX_JPEG_SCANS} are decoded; "
                                         "a normal progressive JPEG has about 10)")
    if orientation >= 5:  # 5..8 turn the image a quarter
        w, h = h, w
    return Header(w, h, orientation, fmt, mode)
