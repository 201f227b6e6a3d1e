"""Run the filter chain over samples as they arrive, in batches: cheapest filter
first, a sample leaves at the first filter that rejects it (unless score_all), every
score is recorded. Pixels are released after their batch, so a worker holds at most
one batch of decoded images, whatever the shard size."""

from __future__ import annotations

import time
from collections import Counter

from filters.base import Filter
from pipeline.sample import Sample

BATCH_SIZE = 64  # samples per filter call; model filters batch on their device


def score_columns(filters: list[Filter]) -> list[str]:
    return [f"{f.name}_{n}" for f in filters for n in f.score_names]


def apply_filters(samples: list[Sample], filters: list[Filter], score_all: bool = False) -> dict[str, float]:
    """Set status/reason/scores on every pending sample; returns seconds per filter."""
    timings = {}
    live = [s for s in samples if s.status == "pending"]
    decoded = list(live)  # samples with pixels (pending or, later, rejected)
    for f in filters:
        targets = decoded if score_all else live
        t0 = time.perf_counter()
        for start in range(0, len(targets), BATCH_SIZE):
            batch = targets[start : start + BATCH_SIZE]
            images = [s.rgb for s in batch] if f.needs_pixels else [None] * len(batch)
            scores = f.score(images, [s.filter_meta() for s in batch])
            keep = f.keep(scores)
            details = f.details(scores, keep)
            for j, s in enumerate(batch):
                for name in f.score_names:
                    s.scores[f"{f.name}_{name}"] = float(scores[name][j])
                if not keep[j] and s.status == "pending":
                    s.status, s.reason, s.detail = "rejected", f.name, details[j]
        timings[f.name] = time.perf_counter() - t0
        live = [s for s in live if s.status == "pending"]
    for s in live:
        s.status = "kept"
    return timings


class StreamingFilter:
    """Collects decoded samples from a loader and filters them a batch at a time."""

    def __init__(self, filters: list[Filter], score_all: bool):
        self.filters, self.score_all = filters, score_all
        self.pending: list[Sample] = []
        self.timings: Counter = Counter()

    def add(self, sample: Sample) -> None:
        if sample.status != "pending":
            return
        self.pending.append(sample)
        if len(self.pending) >= BATCH_SIZE:
            self.flush()

    def flush(self) -> None:
        batch, self.pending = self.pending, []
        if not batch:
            return
        try:
            self.timings.update(apply_filters(batch, self.filters, self.score_all))
        except Exception as err:  # noqa: BLE001 - a filter crash fails its batch, recorded, not the job
            for s in batch:
                if s.status in ("pending", "kept", "rejected"):
                    s.fail(f"filter_error: {type(err).__name__}: {err}")
        for s in batch:
            if s.image is not None:
                s.image.release_pixels()
