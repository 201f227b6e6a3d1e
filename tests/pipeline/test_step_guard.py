"""StepGuard, without Ray, through `run_filters` (the code the CPU workers and the model
actors both run): a sample that makes a step raise costs only itself, a batch out of
memory is retried smaller and the size that held is kept, a broken step stops the build."""

from __future__ import annotations

import pytest

import tests.steps_for_tests
from pipeline.step_guard import BrokenStepError, DeviceBrokenError, StepGuard, is_out_of_memory
from pipeline.step_runner import run_filters
from pipeline.step_stats import StepStats
from pipeline.verdict import Status, Verdict
from tests.steps_for_tests import BrokenFilter, ExplodeFilter, OomFilter, StickyCudaFilter

POISON = 640


def _run(step, widths, guard, stats=None):
    verdicts = [Verdict() for _ in widths]
    stats = stats or StepStats()
    run_filters([step], [None] * len(widths), [{"original_width": w} for w in widths], verdicts, False, stats, guard)
    return verdicts, stats


def test_one_poison_sample_in_16_fails_alone():
    widths = [500 + i for i in range(16)]
    widths[9] = POISON
    verdicts, stats = _run(ExplodeFilter.ready(enabled=True, on_original_width=POISON), widths, StepGuard())
    failed = [i for i, v in enumerate(verdicts) if v.status == Status.FAILED]
    assert failed == [9]
    assert verdicts[9].reason == "filter_error"
    assert verdicts[9].detail == f"explode: RuntimeError: exploded on an image {POISON} px wide"
    assert [v.scores["explode_width"] for i, v in enumerate(verdicts) if i != 9] == [w for i, w in enumerate(widths) if i != 9]
    assert stats.images["explode"] == 16  # each sample counted once, however often it was retried


def test_a_step_that_always_raises_stops_after_k_batches():
    guard = StepGuard(max_failed_batches=3)
    step = BrokenFilter.ready(enabled=True)
    for _ in range(2):  # two whole batches fail, sample by sample
        verdicts, _ = _run(step, [500, 501, 502, 503], guard)
        assert {(v.status, v.reason) for v in verdicts} == {(Status.FAILED, "filter_error")}
    with pytest.raises(BrokenStepError) as err:
        _run(step, [500, 501], guard)
    assert str(err.value).startswith("step 'broken' failed on every sample of 3 batches in a row "
                                     "(last error: RuntimeError: the model has no weights)")
    assert "filters.broken.enabled: false" in str(err.value)


def test_a_batch_that_holds_resets_the_count():
    guard = StepGuard(max_failed_batches=2)
    step = ExplodeFilter.ready(enabled=True, on_original_width=POISON)
    for _ in range(3):  # a lone poison sample is a whole batch failed, but good batches come between
        _run(step, [POISON], guard)
        _run(step, [500, 501], guard)
    assert guard.counter.in_a_row["explode"] == 0


def test_out_of_memory_halves_the_batch_and_keeps_the_size_that_held():
    guard = StepGuard()
    step = OomFilter.ready(enabled=True, batch_size=8, max_batch=3, on_original_width=POISON)
    widths = [500 + i for i in range(8)]
    widths[5] = POISON  # does not fit even alone
    verdicts, stats = _run(step, widths, guard)
    failed = [(i, v.reason, v.detail) for i, v in enumerate(verdicts) if v.status == Status.FAILED]
    assert failed == [(5, "too_large", "oom: OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")]
    assert step.batch_sizes == [8, 4, 2, 2, 4, 2, 1, 1, 2]  # 8 and 4 ran out; 2 held; the pair holding the poison split
    assert guard.oom_batch_size == {"oom": 2}
    merged = StepStats()
    merged.merge(stats.to_dict())  # as the figures travel from an actor to the manifest
    assert merged.summary()["oom"]["oom_batch_size"] == 2
    step.batch_sizes.clear()  # the next batch goes in pieces of 2 straight away
    verdicts, _ = _run(step, [500 + i for i in range(7)], guard)
    assert step.batch_sizes == [2, 2, 2, 1] and all(v.status == Status.PENDING for v in verdicts)


def test_memory_errors_count_as_out_of_memory():
    import torch

    assert is_out_of_memory(MemoryError()) and is_out_of_memory(torch.cuda.OutOfMemoryError("x"))
    assert not is_out_of_memory(RuntimeError("x"))


def test_a_sticky_cuda_error_is_not_bisected(monkeypatch):
    """After an illegal memory access every call of the process fails: bisecting would fail
    every sample of this batch and of every later one. It leaves the guard whole instead
    (the model actor then replaces its process: test_model_pool.py)."""
    monkeypatch.setattr(tests.steps_for_tests, "_device_broken", False)
    step = StickyCudaFilter.ready(enabled=True, on_original_width=POISON)
    stats = StepStats()
    with pytest.raises(DeviceBrokenError, match="^sticky_cuda: RuntimeError: CUDA error: an illegal memory access"):
        _run(step, [500, POISON, 502, 503], StepGuard(), stats)
    assert stats.busy_s == {}  # one call, no halves
