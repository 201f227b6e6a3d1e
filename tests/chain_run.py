"""One worker's step chain over a list of samples, as pipeline/worker.py drives it: every
sample through SampleBatcher (filters, the model pool), then the annotators on the kept."""

from __future__ import annotations

from pipeline.batcher import SampleBatcher
from pipeline.step_stats import StepStats


def run_chain(chain, samples: list, stats: StepStats | None = None) -> list:
    batcher = SampleBatcher(chain, stats if stats is not None else StepStats())
    for s in samples:
        batcher.add(s)
    batcher.finish()
    batcher.annotate_kept(samples)
    return samples
