"""Decode any image once, safely, into an RGB array plus the stored JPEG.

`ImageDecoder` is the one way every loader gets its images: through img2dataset's
resizer for downloads (pipeline/img2dataset_glue.py), and directly for local files,
shards and video frames.

Header first (PIL reads only the header): an image declaring more than
`max_image_pixels` fails as too_large without being decoded, so a 20000x20000 PNG costs
a few KB of memory, not 1.2 GB; and an image whose size the first filters reject
(`wants_pixels`, from the step chain: the resolution filter's own keep rule) is not
decoded at all: it becomes a header-only StoredImage (sizes, no pixels, no JPEG) that the
chain then rejects. Odd formats are normalised: 16-bit -> 8-bit, grayscale -> RGB, alpha
composited on white, CMYK and animated GIFs (first frame) through OpenCV or, failing that, PIL.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image

# We enforce our own pixel limit before decoding; PIL's warning/error would pre-empt it.
Image.MAX_IMAGE_PIXELS = None


class DecodeError(Exception):
    """An image that cannot be stored. `reason` is a short category for the ledger."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def _describe_non_image(data: bytes) -> str:
    if not data:
        return "empty response body"
    head = data[:64].lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body")):
        return "body is HTML/XML, not an image"
    return f"unrecognised image format (first bytes {data[:8]!r})"


def check_header(data: bytes, max_pixels: int) -> tuple[int, int]:
    """(width, height) from the header alone; raises DecodeError for non-images and bombs."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
    # Any failure is this input's: besides PIL's own errors, ultralytics (imported in a
    # process running the detector) patches Image.open to retry unknown files with a HEIF
    # plugin, and raises ModuleNotFoundError when that plugin is not installed.
    except Exception as err:  # noqa: BLE001
        raise DecodeError("decode_error", f"{_describe_non_image(data)} ({err.__class__.__name__})") from None
    if w <= 0 or h <= 0:
        raise DecodeError("decode_error", f"header declares an empty image ({w}x{h})")
    if w * h > max_pixels:
        raise DecodeError(
            "too_large",
            f"{w}x{h} = {w * h / 1e6:.1f} MP exceeds images.max_image_pixels = {max_pixels / 1e6:.1f} MP "
            "(not decoded; raise the limit to accept it)",
        )
    return w, h


def _to_rgb8(img: np.ndarray, bgr: bool) -> np.ndarray:
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
    if img.shape[2] == 4:  # composite on white, as img2dataset does
        alpha = img[:, :, 3:4].astype(np.float32) / 255.0
        img = np.rint(img[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    elif img.shape[2] == 2:  # gray + alpha
        alpha = img[:, :, 1:2].astype(np.float32) / 255.0
        g = np.rint(img[:, :, :1] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
        return np.repeat(g, 3, axis=2)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if bgr else np.ascontiguousarray(img)


def _decode_pixels(data: bytes) -> np.ndarray:
    """The pixels of an image whose header check_header has passed."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is not None:
        return _to_rgb8(img, bgr=True)
    try:  # formats or variants OpenCV lacks; PIL raises on truncated data
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                im.seek(0)
                return _to_rgb8(np.asarray(im.convert("RGBA")), bgr=False)
    except Exception as err:  # noqa: BLE001
        raise DecodeError("decode_error", f"corrupt or truncated image data ({err})") from None


def resize_max_side(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink so the longer side is at most max_side (aspect kept); never upscale."""
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb
    s = max_side / max(h, w)
    return cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise DecodeError("encode_error", "OpenCV could not encode the image as JPEG")
    return buf.tobytes()


class StoredImage:
    """One image: the stored RGB array (until released), its JPEG and both sizes; or,
    header-only (`decoded` False), just the original size of an image not worth decoding."""

    __slots__ = ("rgb", "jpg", "width", "height", "original_width", "original_height")

    def __init__(self, rgb, jpg, original_width, original_height):
        self.rgb, self.jpg = rgb, jpg
        self.height, self.width = rgb.shape[:2] if rgb is not None else (None, None)
        self.original_width, self.original_height = original_width, original_height

    @classmethod
    def header_only(cls, width: int, height: int) -> StoredImage:
        return cls(None, None, width, height)

    @property
    def decoded(self) -> bool:
        return self.jpg is not None

    def release_pixels(self) -> None:
        """Drop the array once filters have run: only the JPEG is written."""
        self.rgb = None


def _stored(rgb: np.ndarray, max_side: int, quality: int) -> StoredImage:
    oh, ow = rgb.shape[:2]
    small = resize_max_side(rgb, max_side)
    return StoredImage(small, encode_jpeg(small, quality), ow, oh)


class ImageDecoder:
    """Turns a loader's bytes or video frame into a StoredImage, deciding from the size
    first. `wants_pixels(width, height)` is False when the sample will be rejected
    whatever its pixels (pipeline/step_chain.py: StepChain.wants_pixels); None decodes all."""

    def __init__(self, max_side: int, quality: int, max_pixels: int,
                 wants_pixels: Callable[[int, int], bool] | None = None):
        self.max_side, self.quality, self.max_pixels = max_side, quality, max_pixels
        self.wants_pixels = wants_pixels

    @classmethod
    def for_images(cls, images, wants_pixels: Callable[[int, int], bool] | None = None) -> ImageDecoder:
        """From the workflow's `images:` section (pipeline/config.py: ImagesConfig)."""
        return cls(images.image_size, images.encode_quality, images.max_image_pixels, wants_pixels)

    def _skips(self, width: int, height: int) -> bool:
        return self.wants_pixels is not None and not self.wants_pixels(width, height)

    def from_bytes(self, data: bytes) -> StoredImage:
        """An encoded image (any format); DecodeError for non-images, bombs and corrupt data."""
        w, h = check_header(data, self.max_pixels)
        if self._skips(w, h):
            return StoredImage.header_only(w, h)
        return _stored(_decode_pixels(data), self.max_side, self.quality)

    def from_frame(self, width: int, height: int, to_rgb: Callable[[], np.ndarray]) -> StoredImage:
        """A decoded video frame; `to_rgb` (the colour conversion) runs only when wanted."""
        if self._skips(width, height):
            return StoredImage.header_only(width, height)
        return _stored(to_rgb(), self.max_side, self.quality)


def prepare_image(data: bytes, max_side: int, quality: int, max_pixels: int) -> StoredImage:
    """Decode and store, whatever the size (no filter asked)."""
    return ImageDecoder(max_side, quality, max_pixels).from_bytes(data)


def prepare_array(rgb: np.ndarray, max_side: int, quality: int) -> StoredImage:
    return _stored(rgb, max_side, quality)
