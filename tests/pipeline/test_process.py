"""The step chain: first rejecting filter wins, score_all scores everything, a
crashing step fails its batch (recorded) instead of the job, pixels are released
once a batch has left for the model pool, annotators see only kept samples."""

from __future__ import annotations

import numpy as np

from annotate.base import Annotator
from filter_dev.hostile import photo
from filters.base import Filter
from filters.blur import BlurFilter
from filters.resolution import ResolutionFilter
from pipeline.batcher import SampleBatcher
from pipeline.decode import prepare_array
from pipeline.sample import Sample
from pipeline.step_chain import StepChain
from pipeline.step_runner import LocalModelPool, ModelStepRunner
from pipeline.step_stats import StepStats
from tests.chain_run import run_chain


class Boom(Filter):
    name = "boom"
    score_names = ("x",)

    def score(self, images, meta):
        raise RuntimeError("model exploded")


class CountingAnnotator(Annotator):
    """Records which samples it saw; says each image's mean brightness."""

    name = "brightness"

    def __init__(self, cfg=None):
        super().__init__(cfg)
        self.seen, self.calls = [], []

    def annotate(self, images, meta):
        self.seen += [m["key"] for m in meta]
        self.calls.append(len(meta))
        return [{"model": "mean", "value": float(im.mean())} for im in images]


def _samples():
    sharp = photo("astronaut.png")
    flat = np.full((300, 300, 3), 128, np.uint8)
    tiny = sharp[:50, :50]
    return [Sample(f"k{i}", i, {"kind": "file"}, image=prepare_array(im, 256, 90)) for i, im in enumerate([sharp, flat, tiny])]


def _run(cpu_filters, model_filters=(), annotators=(), score_all=False, batch_size=64):
    samples = _samples()
    pool = LocalModelPool(ModelStepRunner(list(model_filters), list(annotators))) if (model_filters or annotators) else None
    chain = StepChain(list(cpu_filters), pool, [], [], score_all, batch_size)
    stats = StepStats()
    run_chain(chain, samples, stats)
    return samples, stats, pool


def test_first_rejecting_filter_wins_and_later_filters_skip_it():
    samples, stats, _ = _run([ResolutionFilter.ready(min_side=100), BlurFilter.ready()])
    assert [(s.status, s.reason) for s in samples] == [("kept", ""), ("rejected", "blur"), ("rejected", "resolution")]
    assert "blur_laplacian_var" not in samples[2].scores  # left at the first filter
    assert samples[2].detail == "min_side"
    assert stats.images["resolution"] == 3 and stats.images["blur"] == 2


def test_score_all_scores_every_filter_on_every_sample_across_the_pool():
    blur = BlurFilter.ready()
    blur.pool = "model"  # this instance runs behind the pool (its stats go there)
    samples, _, _ = _run([ResolutionFilter.ready(min_side=100)], [blur], score_all=True)
    assert [s.reason for s in samples] == ["", "blur", "resolution"]
    assert all("blur_laplacian_var" in s.scores and "resolution_min_side" in s.scores for s in samples)


def test_crashing_model_filter_fails_its_batch_only():
    samples, _, _ = _run([ResolutionFilter.ready(min_side=0)], [Boom()], batch_size=2)
    assert {(s.status, s.reason) for s in samples} == {("failed", "filter_error")}
    assert "model exploded" in samples[0].detail and "boom" in samples[0].detail


def test_annotators_see_kept_samples_only_and_pixels_are_released():
    ann = CountingAnnotator()
    samples, _, pool = _run([ResolutionFilter.ready(min_side=100), BlurFilter.ready()], annotators=[ann])
    assert ann.seen == ["k0"]
    assert samples[0].annotations["brightness"]["model"] == "mean"
    assert samples[0].annotations["brightness"]["value"] > 10
    assert all(s.image.rgb is None and s.image.jpg for s in samples)
    assert samples[0].image.width == 256
    assert pool.runner.stats.busy_s["brightness"] > 0 and pool.runner.stats.images["brightness"] == 1


class CountingPool(LocalModelPool):
    """The in-process pool, counting batches handed over but not yet collected."""

    def __init__(self, runner):
        super().__init__(runner)
        self.outstanding = self.most_outstanding = 0

    def submit(self, *args):
        self.outstanding += 1
        self.most_outstanding = max(self.most_outstanding, self.outstanding)
        return super().submit(*args)

    def result(self, handle):
        self.outstanding -= 1
        return super().result(handle)


def test_a_worker_keeps_at_most_a_few_batches_in_the_pool():
    from pipeline.batcher import MAX_BATCHES_IN_POOL

    pool = CountingPool(ModelStepRunner([], [CountingAnnotator()]))
    samples = [Sample(f"k{i}", i, {"kind": "file"}, image=prepare_array(photo("astronaut.png"), 64, 90)) for i in range(10)]
    batcher = SampleBatcher(StepChain([], pool, [], [], False, batch_size=1), StepStats())
    for s in samples:
        batcher.add(s)
    assert pool.most_outstanding == MAX_BATCHES_IN_POOL + 1  # then the worker waits for the oldest
    batcher.finish()
    batcher.annotate_kept(samples)
    assert pool.outstanding == 0 and all(s.status == "kept" and "brightness" in s.annotations for s in samples)


def test_the_pool_splits_a_batch_at_the_step_batch_size():
    ann = CountingAnnotator(CountingAnnotator.Config(batch_size=2))
    pool = LocalModelPool(ModelStepRunner([], [ann]))
    samples = [Sample(f"k{i}", i, {"kind": "file"}, image=prepare_array(photo("astronaut.png"), 64, 90)) for i in range(5)]
    run_chain(StepChain([], pool, [], [], False, batch_size=64), samples)
    assert ann.calls == [2, 2, 1] and ann.seen == [f"k{i}" for i in range(5)]
    assert all(s.status == "kept" and "brightness" in s.annotations for s in samples)


def test_pixels_are_skipped_only_where_a_size_filter_runs_before_any_pixel_filter():
    res, blur = ResolutionFilter.ready(min_side=100), BlurFilter.ready()
    assert StepChain([res, blur], None, [], []).wants_pixels(50, 50) is False
    assert StepChain([res, blur], None, [], []).wants_pixels(150, 150) is True
    assert StepChain([blur, res], None, [], []).wants_pixels(50, 50) is True  # blur would judge it first
    assert StepChain([res, blur], None, [], [], score_all=True).wants_pixels(50, 50) is True  # blur scores it too
