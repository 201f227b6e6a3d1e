"""BlurFilter on real photos: sharp photos kept (also in fog and with a shallow depth of
field), the same photos Gaussian- or motion-blurred at any angle rejected, real motion blur
(clock_motion.png) rejected, flat images rejected."""

import cv2
import numpy as np
import pytest

from filters.blur import BlurFilter
from filters.blur_degradations import fog as _fog
from filters.blur_degradations import gauss as _gauss
from filters.blur_degradations import motion as _motion
from filters.photos import load_photo

SHARP = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "camera", "china", "grace_hopper")


@pytest.fixture(scope="module")
def sharp():
    return [load_photo(n, 512) for n in SHARP]


def _shallow_dof(im):
    """Sharp centre (the subject), background Gaussian-blurred, soft transition."""
    h, w = im.shape[:2]
    m = np.zeros((h, w), np.float32)
    cv2.ellipse(m, (w // 2, h // 2), (w // 5, h // 4), 0, 0, 360, 1, -1)
    m = cv2.GaussianBlur(m, (0, 0), 8)[..., None]
    return (im * m + _gauss(im, 4) * (1 - m)).astype(np.uint8)


def test_sharp_kept_blurred_rejected(sharp):
    f = BlurFilter()
    s = f.score(sharp, [{} for _ in sharp])
    assert f.keep(s).all(), dict(zip(SHARP, s["sharpness"].round(3)))
    blurred = [_gauss(im, 2.5) for im in sharp]
    sb = f.score(blurred, [{} for _ in blurred])
    assert not f.keep(sb).any(), dict(zip(SHARP, sb["sharpness"].round(3)))
    assert all(x.startswith("sharpness") for x in f.details(sb, f.keep(sb)))


@pytest.mark.parametrize("angle", [0, 30, 60, 90, 135])
def test_motion_blur_rejected_at_any_angle(sharp, angle):
    # a 9 px motion blur at 256 px (~18 px at 512), the case the Laplacian variance missed
    f = BlurFilter()
    ims = [_motion(im, 9, angle) for im in sharp]
    s = f.score(ims, [{} for _ in ims])
    s0 = f.score(sharp, [{} for _ in sharp])
    # Known misses (filters/blur.py): camera.png and rocket.jpg keep fine texture across
    # the motion and can score just above the threshold at some angles.
    assert (~f.keep(s)).sum() >= 6, dict(zip(SHARP, s["sharpness"].round(3)))
    assert (s["sharpness"] < 0.75 * s0["sharpness"]).all(), (s["sharpness"].round(3), s0["sharpness"].round(3))


def test_real_motion_blur_rejected():
    f = BlurFilter()
    s = f.score([load_photo("clock_motion")], [{}])
    assert not f.keep(s)[0], s


def test_low_contrast_and_shallow_depth_of_field_kept(sharp):
    f = BlurFilter()
    ims = [_fog(im) for im in sharp] + [_shallow_dof(im) for im in sharp]
    s = f.score(ims, [{} for _ in ims])
    assert f.keep(s).all(), s["sharpness"].round(3)


def test_textures_and_flat_images():
    f = BlurFilter()
    ims = [load_photo("gravel", 512), load_photo("grass", 512), np.full((300, 300, 3), 128, np.uint8)]
    assert f.keep(f.score(ims, [{}, {}, {}])).tolist() == [True, True, False]


def test_batch_equals_one_by_one(sharp):
    f = BlurFilter()
    ims = sharp[:3] + [_gauss(sharp[0], 3.0)]
    batch = f.score(ims, [{} for _ in ims])
    for name in f.score_names:
        single = np.array([f.score([im], [{}])[name][0] for im in ims])
        np.testing.assert_array_equal(batch[name], single)
