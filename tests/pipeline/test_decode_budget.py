"""Decoding under a budget (issue 27): EXIF orientation applied before anything sees the
pixels, scan floods refused from the header, and memory per decode bounded by the
header's size at a few bytes a pixel, never the float32 copies of a full-size image."""

from __future__ import annotations

import io
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image, ImageOps

from filter_dev import hostile
from pipeline.decode import DecodeError, prepare_image

# peak memory of one decode per header pixel, in bytes (measured 8.5 for a 16 MP 16-bit RGBA
# PNG, 0.2 for a 99 MP GIF canvas; before: 42 and 6.7); README: "Memory per decode"
BOUND = {"deep_rgba_png": (4000, 10.0), "canvas_gif": (9950, 1.0)}

# In a fresh process: its peak resident size (VmHWM; ru_maxrss would carry the parent's
# peak across exec) above the resident size just before the decode.
_PEAK = """
import sys, psutil
from pipeline.decode import prepare_image
from filter_dev import hostile
hwm = lambda: int(next(ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")).split()[1]) * 1024
data = getattr(hostile, sys.argv[1])(int(sys.argv[2]))
before = psutil.Process().memory_info().rss
prepare_image(data, 512, 90, 10**8)
print(hwm() - before)
"""


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pil(orientation):
    blocks = np.kron(hostile.photo("coffee.png")[:8, :12], np.ones((5, 5, 1), np.uint8))  # 40x60, not square
    im = Image.fromarray(blocks)
    exif = im.getexif()
    exif[0x0112] = orientation
    data = hostile.encode(im, "PNG", exif=exif.tobytes())
    upright = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    stored = prepare_image(data, 1000, 95, 10**8)
    assert np.array_equal(stored.rgb, upright)
    assert (stored.original_height, stored.original_width) == upright.shape[:2]  # the ledger's sizes: as displayed


def test_a_scan_flood_is_refused_from_its_header():
    data = hostile.scan_flood_jpeg(Image.fromarray(hostile.photo("coffee.png")), 300)
    t0 = time.perf_counter()
    with pytest.raises(DecodeError) as err:
        prepare_image(data, 256, 90, 10**8)
    assert err.value.reason == "too_complex" and time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize("maker", sorted(BOUND))
def test_peak_memory_per_header_pixel(maker):
    side, bound = BOUND[maker]
    out = subprocess.run([sys.executable, "-c", _PEAK, maker, str(side)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    per_pixel = int(out.stdout.split()[-1]) / side**2
    print(f"{maker}: {per_pixel:.2f} bytes per pixel")
    assert per_pixel < bound
