"""Calls one step on a batch so that a bad sample costs only itself, in the CPU workers
and in the model actors alike.

- A `process()` call that raises is retried in halves until the sample that makes it
  raise is alone: only that sample fails (`filter_error` / `annotator_error`, detail
  naming the step and the error); the others get their results.
- Out of memory (`torch.cuda.OutOfMemoryError`, `MemoryError`) is a batch too big, not
  a bad sample: the batch is halved the same way, and the largest part that then ran
  becomes the step's batch size for the rest of this process's life (recorded in the
  step figures, so the manifest says it). A single sample that does not fit fails as
  `too_large`.
- A broken step (its model missing a layer, a wrong device) fails every sample: after
  `max_failed_batches` batches in a row in which it failed every sample, it raises
  `BrokenStepError`, which stops the build (the unit is not written, so `--resume`
  redoes it) instead of bisecting every batch of the build down to single samples.
  The count is kept by a `FailedBatchCount`: this process's own (no Ray), or the
  build's `PoolHealth` actor (pipeline/pool_health.py), so K batches in a row anywhere
  in the pool stop the build, however many actors share the work.
- A sticky CUDA error (an illegal memory access, a device-side assert, a launch
  failure) breaks the process, not the sample: every later CUDA call in it fails. It
  is not bisected here (every half would fail too): `DeviceBrokenError` leaves the
  guard, and the model actor replaces its process (pipeline/model_pool.py).
"""

from __future__ import annotations

import math
import sys
import time
from collections import defaultdict

from pipeline.step_stats import StepStats
from pipeline.verdict import Verdict
from steps.base import Step


class BrokenStepError(RuntimeError):
    """A step failed on every sample of several batches in a row: the build stops."""


class DeviceBrokenError(RuntimeError):
    """A step hit a sticky CUDA error: this process cannot use the device any more."""


# CUDA errors after which the context is unusable (CUDA runtime docs: "the process must be
# terminated and relaunched"); matched on the text, which torch and ONNX Runtime both carry.
STICKY_CUDA_ERRORS = (
    "illegal memory access", "device-side assert", "unspecified launch failure", "cudaErrorLaunchFailure",
    "cudaErrorIllegalAddress", "cudaErrorAssert", "illegal instruction", "misaligned address",
    "invalid program counter", "hardware stack error", "uncorrectable ECC error",
    "the launch timed out and was terminated",
)


def is_sticky_device_error(err: BaseException) -> bool:
    text = str(err)
    return isinstance(err, RuntimeError) and any(s.lower() in text.lower() for s in STICKY_CUDA_ERRORS)


def reraise_if_broken(err: BaseException) -> None:
    """Raise a BrokenStepError that came from another process (Ray wraps it, keeping
    the original as `cause`) as itself: it must stop the build, not fail one batch."""
    if isinstance(err, BrokenStepError):
        raise getattr(err, "cause", None) or err from None


def is_out_of_memory(err: BaseException) -> bool:
    if isinstance(err, MemoryError):
        return True
    torch = sys.modules.get("torch")  # only a step that imported torch can run out of GPU memory
    return torch is not None and isinstance(err, torch.cuda.OutOfMemoryError)


def _release_cuda_cache() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


class FailedBatchCount:
    """Per step, the batches failed whole in a row, in this process."""

    def __init__(self):
        self.in_a_row: dict[str, int] = defaultdict(int)

    def record(self, step: str, failed_whole: bool) -> int:
        self.in_a_row[step] = self.in_a_row[step] + 1 if failed_whole else 0
        return self.in_a_row[step]


class StepGuard:
    def __init__(self, max_failed_batches: int = 3, counter=None):
        self.max_failed_batches = max_failed_batches
        self.counter = counter or FailedBatchCount()  # .record(step, failed_whole) -> batches failed whole in a row
        self.oom_batch_size: dict[str, int] = {}  # step -> batch size that held after running out of memory

    def run(self, step: Step, idx: list[int], images: list, meta: list[dict], verdicts: list[Verdict],
            stats: StepStats, error_reason: str) -> list[dict | None]:
        """The step on the samples at `idx`, at most its batch size per process() call;
        one result per sample, None for a sample that failed (its verdict says why)."""
        results: dict[int, dict | None] = {}
        call = _Call(step, images, meta, verdicts, stats, error_reason)
        pos = 0
        while pos < len(idx):
            size = min(step.batch_size or len(idx), self.oom_batch_size.get(step.name, math.inf))
            chunk = idx[pos:pos + size]
            pos += len(chunk)
            held = call.bisect(chunk, results)
            if call.ran_out_of_memory and held:
                self.oom_batch_size[step.name] = min(held, self.oom_batch_size.get(step.name, held))
                stats.note_oom_batch_size(step.name, self.oom_batch_size[step.name])
            call.ran_out_of_memory = False
            self._count(step, [results[i] for i in chunk], call.last_error)
        return [results[i] for i in idx]

    def _count(self, step: Step, chunk_results: list, last_error: str) -> None:
        in_a_row = self.counter.record(step.name, all(r is None for r in chunk_results))
        if in_a_row >= self.max_failed_batches:
            section = "filters" if step.kind == "filter" else "annotate"
            raise BrokenStepError(
                f"step {step.name!r} failed on every sample of {in_a_row} batches in a row "
                f"(last error: {last_error}); the build stopped: fix the step or disable it "
                f"({section}.{step.name}.enabled: false), then rerun with --resume"
            )


class _Call:
    """One step's process() calls over a batch, split in halves on failure."""

    def __init__(self, step: Step, images, meta, verdicts, stats: StepStats, error_reason: str):
        self.step, self.images, self.meta, self.verdicts = step, images, meta, verdicts
        self.stats, self.error_reason = stats, error_reason
        self.ran_out_of_memory = False
        self.last_error = ""

    def bisect(self, chunk: list[int], results: dict) -> int:
        """Fills `results` for `chunk`; returns the largest part that ran (0: none)."""
        step = self.step
        t0 = time.perf_counter()
        try:
            out = step.process([self.images[i] if step.needs_pixels else None for i in chunk], [self.meta[i] for i in chunk])
        except Exception as err:  # noqa: BLE001 - a step crash fails only the sample that causes it
            if is_sticky_device_error(err):
                raise DeviceBrokenError(f"{step.name}: {type(err).__name__}: {str(err).strip().splitlines()[0]}") from err
            # busy time counts every try; images count each sample once (where it ends)
            self.stats.add(step.name, step.pool, time.perf_counter() - t0, 1 if len(chunk) == 1 else 0)
            oom = is_out_of_memory(err)
            self.ran_out_of_memory |= oom
            self.last_error = f"{type(err).__name__}: {err}"
            if oom:
                _release_cuda_cache()
            if len(chunk) == 1:
                reason = "too_large" if oom else self.error_reason
                self.verdicts[chunk[0]].fail(reason, f"{step.name}: {self.last_error}")
                results[chunk[0]] = None
                return 0
            half = len(chunk) // 2
            return max(self.bisect(chunk[:half], results), self.bisect(chunk[half:], results))
        self.stats.add(step.name, step.pool, time.perf_counter() - t0, len(chunk))
        results.update(zip(chunk, out))
        return len(chunk)
