"""The filter chain: first rejecting filter wins, score_all scores everything, a
crashing filter fails its batch (recorded) instead of the job, pixels are released."""

from __future__ import annotations

import numpy as np

from filters.base import Filter
from filters.blur import BlurFilter
from filters.resolution import ResolutionFilter
from pipeline.decode import prepare_array
from pipeline.process import StreamingFilter, apply_filters
from pipeline.sample import Sample
from tests.pipeline.hostile import photo


class Boom(Filter):
    name = "boom"
    score_names = ("x",)

    def score(self, images, meta):
        raise RuntimeError("model exploded")


def _samples():
    sharp = photo("astronaut.png")
    flat = np.full((300, 300, 3), 128, np.uint8)
    tiny = sharp[:50, :50]
    return [Sample(f"k{i}", i, {"kind": "file"}, image=prepare_array(im, 256, 90)) for i, im in enumerate([sharp, flat, tiny])]


def test_first_rejecting_filter_wins_and_later_filters_skip_it():
    samples = _samples()
    apply_filters(samples, [ResolutionFilter(min_side=100), BlurFilter()])
    assert [(s.status, s.reason) for s in samples] == [("kept", ""), ("rejected", "blur"), ("rejected", "resolution")]
    assert "blur_laplacian_var" not in samples[2].scores  # left at the first filter
    assert samples[2].detail == "min_side"


def test_score_all_scores_every_filter_on_every_sample():
    samples = _samples()
    apply_filters(samples, [ResolutionFilter(min_side=100), BlurFilter()], score_all=True)
    assert [s.reason for s in samples] == ["", "blur", "resolution"]
    assert all("blur_laplacian_var" in s.scores and "resolution_min_side" in s.scores for s in samples)


def test_crashing_filter_fails_its_batch_and_releases_pixels():
    samples = _samples()
    stream = StreamingFilter([ResolutionFilter(min_side=0), Boom()], score_all=False)
    for s in samples:
        stream.add(s)
    stream.flush()
    assert {(s.status, s.reason) for s in samples} == {("failed", "filter_error")}
    assert "model exploded" in samples[0].detail


def test_streaming_filter_releases_pixels_keeps_jpeg():
    samples = _samples()
    stream = StreamingFilter([BlurFilter()], score_all=False)
    for s in samples:
        stream.add(s)
    stream.flush()
    assert all(s.image.rgb is None and s.image.jpg for s in samples)
    assert samples[0].image.width == 256
