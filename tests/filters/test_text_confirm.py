"""The text filter counts a detected box as text only when PP-OCR rec reads plausible text
in it: real textures the detector boxes are kept, a real page is still rejected with its
words, and recognition runs only where the detected area could reject."""

import numpy as np
import pytest

from filter_dev.photos import TEXT_LIKE_TEXTURES, load_photo, load_texture
from filters.text import TextFilter
from filters.text_recognizer import plausible_text


@pytest.fixture(scope="module")
def text_filter():
    return TextFilter.ready()


@pytest.mark.parametrize("name", list(TEXT_LIKE_TEXTURES))
def test_texture_with_boxes_kept_when_nothing_reads(text_filter, name):
    # Real photo crops (no sand or water photo ships in an installed package here): a flag's
    # stars and leaves make detector boxes over more than 3 % of the image.
    s, outs = text_filter.score_and_outputs([load_texture(name)], [{}])
    out = outs[0]["text"]
    assert s["area_frac"][0] > text_filter.cfg.threshold  # the boxes alone would reject it
    assert out["read"] and not any(ok for _, _, ok in out["read"]), out["read"]
    assert s["confirmed_area"][0] == 0 and out["words"] == ""
    assert text_filter.keep(s)[0]


def test_page_rejected_with_its_words(text_filter):
    s, outs = text_filter.score_and_outputs([load_photo("page", 512)], [{}])
    out = outs[0]["text"]
    assert not text_filter.keep(s)[0] and s["confirmed_area"][0] > 0.15
    assert text_filter.details(s, text_filter.keep(s)) == ["confirmed_area"]
    assert "Region-based segmentation" in out["words"], out["read"]


def test_recognition_only_over_threshold(text_filter):
    read = text_filter.recognizer.read
    calls = []
    text_filter.recognizer.read = lambda im, polys: calls.append(len(polys)) or read(im, polys)
    try:  # bus.jpg: a small shop sign (about 1 % of the image), under the threshold
        s, outs = text_filter.score_and_outputs([load_photo("bus", 512), load_photo("page", 512)], [{}, {}])
    finally:
        del text_filter.recognizer.read
    assert len(calls) == 1 and "read" not in outs[0]["text"]
    assert s["confirmed_area"][0] == s["area_frac"][0] > 0  # unread: the detected area stands


@pytest.mark.parametrize("text, ok", [("OPEN", True), ("B2", True), ("S=", False), ("000", False),
                                      ("￥★★", False), ("l l l", False), ("", False)])
def test_plausible_text(text, ok):
    assert plausible_text(text) is ok


def test_confirm_off_is_the_detector_alone():
    f = TextFilter.ready(confirm=False)
    s = f.score([load_texture("grace_hopper_stars")], [{}])
    assert f.recognizer is None and not f.keep(s)[0]
    np.testing.assert_array_equal(s["confirmed_area"], s["area_frac"])
