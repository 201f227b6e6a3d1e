"""Decode any image once, safely, into an RGB array plus the stored JPEG.

`ImageDecoder` is the one way every loader gets its images: through img2dataset's
resizer for downloads (pipeline/img2dataset_glue.py), and directly for local files,
shards and video frames.

Header first (PIL reads only the header): an image declaring more than
`max_image_pixels` fails as too_large without being decoded, so a 20000x20000 PNG costs
a few KB of memory, not 1.2 GB; and an image whose size the first filters reject
(`wants_pixels`, from the step chain: the resolution filter's own keep rule) is not
decoded at all: it becomes a header-only StoredImage (sizes, no pixels, no JPEG) that the
chain then rejects (pipeline/image_header.py: sizes as displayed, too_large, too_complex).

Memory and time per decode: a JPEG is decoded already reduced (libjpeg's 1/2, 1/4, 1/8
scaling, leaving at least twice the stored side);
other formats are decoded at their own depth (at most 8 bytes a pixel: 16-bit RGBA) and
resized first; 16-bit -> 8-bit, alpha composited on white, grayscale -> RGB and the EXIF
orientation happen at the stored size. GIFs (and what OpenCV lacks: PSD, ...) go through
PIL, a palette image reduced before it is converted.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image

from pipeline import decode_deadline
from pipeline.image_header import DecodeError, Header, read_header

__all__ = ["DecodeError", "ImageDecoder", "StoredImage", "prepare_image", "prepare_array"]

_JPEG_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
# EXIF orientation -> the array operation that shows the image upright (PIL's exif_transpose)
_ORIENT = {
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).transpose(1, 0, 2), 8: lambda a: np.rot90(a, 1),
}


def _to_rgb8(img: np.ndarray, bgr: bool) -> np.ndarray:
    """8-bit RGB from what a decoder gave (run on the resized array: 16-bit and alpha
    cost their float copies at the stored size, not at the original)."""
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


def _jpeg_reduction(header: Header, max_side: int) -> int:
    """1, 2, 4 or 8: libjpeg's DCT scaling, so a big JPEG is never decoded at full size.
    The largest that leaves at least twice the stored side, then INTER_AREA as for a full
    decode. Down to exactly the stored side (or 1.5x), DCT scaling differs from area
    averaging by up to 2.5 grey levels on detailed photos and drops up to 18 % of the
    Laplacian energy (softer stored images); with the 2x margin: 0.23 grey levels mean,
    1.2 worst, at most 8 % (tests/pipeline/test_reduced_decode.py, bench/decode_scaling.py)."""
    r = 1
    while r < 8 and max(header.width, header.height) // (2 * r) >= 2 * max_side:
        r *= 2
    return r


def _pil_pixels(data: bytes, max_side: int) -> np.ndarray:
    """RGBA from PIL, reduced (to under 4x the stored side) before it is converted: a
    35-byte GIF may declare a 99 MP canvas, a 788 KB PNG 99 MP of 16-bit RGBA (PIL holds
    it at 8 bits, 4 bytes a pixel; OpenCV's decode peaks at 16)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(io.BytesIO(data)) as im:  # opened at frame 0: the first frame, PSD's merged image
            factor = max(im.size) // (2 * max_side)
            if factor >= 2 and im.mode in ("P", "1"):  # palette: nearest (what PIL does for these modes)
                w, h = im.size
                im = im.resize((max(1, w // factor), max(1, h // factor)), Image.NEAREST)
            elif factor >= 2:
                im = im.reduce(factor)  # box filter, integer factor
            return np.asarray(im.convert("RGBA"))


_PIL_REDUCES = ("P", "1", "L", "LA", "PA", "RGB", "RGBA")  # modes PIL reduces (not its 16/32-bit gray ones)


def _big(header: Header, max_side: int) -> bool:
    """Worth PIL's reduce-before-convert: more than 16x the stored area, in a mode it reduces."""
    return header.mode in _PIL_REDUCES and header.width * header.height > 16 * max_side * max_side


def _decode_pixels(data: bytes, header: Header, max_side: int) -> np.ndarray:
    """Upright 8-bit RGB at the stored size, of an image whose header read_header passed."""
    img, bgr = None, True
    if header.format == "JPEG" or (header.format != "GIF" and not _big(header, max_side)):
        r = _jpeg_reduction(header, max_side) if header.format == "JPEG" else 1
        flags = cv2.IMREAD_UNCHANGED if r == 1 else _JPEG_REDUCED[r] | cv2.IMREAD_IGNORE_ORIENTATION
        img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if img is None:
        try:  # PIL raises on truncated data
            img, bgr = _pil_pixels(data, max_side), False
        except Exception as err:  # noqa: BLE001
            raise DecodeError("decode_error", f"corrupt or truncated image data ({err})") from None
    # as stored (before the EXIF turn): the size a full decode would be resized from, so a
    # reduced decode ends at the same stored size (ceil vs round of the scaled sides)
    stored_wh = (header.height, header.width) if header.orientation >= 5 else (header.width, header.height)
    rgb = _to_rgb8(resize_max_side(img, max_side, stored_wh), bgr)
    turn = _ORIENT.get(header.orientation)
    return np.ascontiguousarray(turn(rgb)) if turn else rgb


def resize_max_side(rgb: np.ndarray, max_side: int, original: tuple[int, int] | None = None) -> np.ndarray:
    """Shrink so the longer side is at most max_side (aspect kept); never upscale.
    `original`: (width, height) of the full image when `rgb` was decoded already reduced:
    the target size is computed from it, as a full decode's would be."""
    h, w = rgb.shape[:2]
    ow, oh = original or (w, h)
    if max(oh, ow) <= max_side:
        return rgb
    s = max_side / max(oh, ow)
    tw, th = max(1, round(ow * s)), max(1, round(oh * s))
    if 0 <= w - tw <= 1 and 0 <= h - th <= 1:
        # libjpeg's reduced decode rounds its sides up: drop that partial last row or column
        # (a resample by 1 px shifts the whole image by up to half a pixel)
        return rgb[:th, :tw]
    return cv2.resize(rgb, (tw, th), interpolation=cv2.INTER_AREA)


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


def _stored(rgb: np.ndarray, max_side: int, quality: int, original: tuple[int, int] | None = None) -> StoredImage:
    """`original`: (width, height) as displayed, when `rgb` was decoded already reduced."""
    ow, oh = original or rgb.shape[1::-1]
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
        """An encoded image (any format); DecodeError for non-images, bombs, corrupt data
        and, in a worker, an image that overran the decode deadline before."""
        with decode_deadline.watched(data):
            header = read_header(data, self.max_pixels)
            w, h = header.width, header.height
            if self._skips(w, h):
                return StoredImage.header_only(w, h)
            return _stored(_decode_pixels(data, header, self.max_side), self.max_side, self.quality, (w, h))

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
