"""BlurFilter on real photos: sharp photos kept, the same photos blurred rejected, real
motion blur (clock_motion.png) rejected."""

import cv2
import numpy as np
import pytest

from filters.blur import BlurFilter
from filters.photos import load_photo

SHARP = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "camera", "china", "grace_hopper")


@pytest.fixture(scope="module")
def sharp():
    return [load_photo(n, 512) for n in SHARP]


def _blur(im, sigma_at_256):
    # sigma given at the filter's 256 px analysis size, scaled to the stored size
    sigma = sigma_at_256 * min(im.shape[:2]) / 256
    return cv2.GaussianBlur(im, (0, 0), sigma)


def test_sharp_kept_blurred_rejected(sharp):
    f = BlurFilter()
    s = f.score(sharp, [{} for _ in sharp])
    assert f.keep(s).all(), dict(zip(SHARP, s["laplacian_var"]))
    blurred = [_blur(im, 2.5) for im in sharp]
    sb = f.score(blurred, [{} for _ in blurred])
    assert not f.keep(sb).any(), dict(zip(SHARP, sb["laplacian_var"]))
    assert (sb["laplacian_var"] < s["laplacian_var"] / 4).all()
    d = f.details(sb, f.keep(sb))
    assert all(x.startswith("laplacian_var") for x in d)


def test_motion_blur_rejected():
    f = BlurFilter()
    s = f.score([load_photo("clock_motion")], [{}])
    assert not f.keep(s)[0], s


def test_batch_equals_one_by_one(sharp):
    f = BlurFilter()
    ims = sharp[:3] + [_blur(sharp[0], 3.0)]
    batch = f.score(ims, [{} for _ in ims])["laplacian_var"]
    single = np.array([f.score([im], [{}])["laplacian_var"][0] for im in ims])
    np.testing.assert_array_equal(batch, single)
