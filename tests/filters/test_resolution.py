"""ResolutionFilter: decided from the original size in the metadata, no pixels (asked
before decoding: tests/pipeline/test_decode.py)."""

import numpy as np

from filters.resolution import ResolutionFilter


def _meta(sizes):
    return [{"original_width": w, "original_height": h} for w, h in sizes]


def test_decisions_and_details():
    f = ResolutionFilter.ready(min_side=256, min_pixels=100_000, max_aspect_ratio=3.0)
    assert f.needs_pixels is False
    sizes = [(512, 512), (200, 800), (1000, 300), (300, 300), (2000, 500), (0, 100)]
    s = f.score([None] * len(sizes), _meta(sizes))
    keep = f.keep(s)
    assert keep.tolist() == [True, False, False, False, False, False]
    d = f.details(s, keep)
    assert d[0] == ""
    assert d[1] == "min_side,max_aspect_ratio"  # 200 short side, 4:1
    assert d[2] == "max_aspect_ratio"  # 3.33:1, 300 px short side is fine
    assert d[3] == "min_pixels"  # 90k pixels
    assert d[4] == "max_aspect_ratio"
    assert "min_side" in d[5] and "max_aspect_ratio" in d[5]  # degenerate size: inf aspect
    np.testing.assert_allclose(s["aspect_ratio"][:3], [1.0, 4.0, 1000 / 300])


def test_batch_equals_one_by_one():
    f = ResolutionFilter.ready()
    sizes = [(640, 480), (100, 900), (256, 256), (1024, 255)]
    batch = f.score([None] * 4, _meta(sizes))
    for i, size in enumerate(sizes):
        one = f.score([None], _meta([size]))
        for k in f.score_names:
            assert one[k][0] == batch[k][i]
    assert f.keep(batch).tolist() == [True, False, True, False]


def test_keeps_size_is_keep_on_one_size():
    """What the loaders ask before decoding (filters/base.py: decides_from_size)."""
    f = ResolutionFilter.ready(min_side=256, min_pixels=100_000, max_aspect_ratio=3.0)
    sizes = [(512, 512), (200, 800), (1000, 300), (300, 300), (0, 100)]
    assert f.decides_from_size
    assert [f.keeps_size(w, h) for w, h in sizes] == f.keep(f.score([None] * 5, _meta(sizes))).tolist()
