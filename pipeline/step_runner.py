"""Run steps over a batch of samples, without Ray: the same code runs in the CPU
workers (cheap filters, caption fusion) and in the model actors (model filters,
annotators).

Work crosses process boundaries as one `Verdict` per sample (pipeline/verdict.py: its
status, reason, detail, scores, filter outputs and annotations). Filters run in step
order; a sample leaves at the first filter that rejects it (unless score_all); then
annotators describe the samples still kept. Each step is called through a `StepGuard`
(pipeline/step_guard.py): a step that raises fails only the sample that makes it raise
(reason `filter_error` / `annotator_error`), never the job; a batch out of memory is
retried smaller; a step that fails on everything stops the build.
"""

from __future__ import annotations

import time

import numpy as np

from pipeline.embeddings import collect as collect_embeddings
from pipeline.step_guard import StepGuard
from pipeline.step_stats import StepStats
from pipeline.verdict import Status, Verdict
from steps.base import Step


def run_filters(filters, images: list, meta: list[dict], verdicts: list[Verdict], score_all: bool, stats: StepStats,
                guard: StepGuard) -> None:
    for f in filters:
        idx = [i for i, v in enumerate(verdicts)
               if v.status == Status.PENDING or (score_all and v.status == Status.REJECTED)]
        for i, r in zip(idx, guard.run(f, idx, images, meta, verdicts, stats, "filter_error")):
            if r is None:
                continue
            v = verdicts[i]
            v.scores.update({f"{f.name}_{n}": s for n, s in r["scores"].items()})
            for name, out in (r["outputs"] or {}).items():  # the one place outputs reach later steps
                v.filter_outputs[name] = out
                meta[i].setdefault("filter_outputs", {})[name] = out
            if not r["keep"]:
                v.reject(f.name, r["detail"])


def run_annotators(annotators, images: list, meta: list[dict], verdicts: list[Verdict], stats: StepStats,
                   guard: StepGuard) -> None:
    """Annotate the samples still pending (they pass every filter)."""
    for a in annotators:
        idx = [i for i, v in enumerate(verdicts) if v.status == Status.PENDING]
        if not idx:
            return
        for i, r in zip(idx, guard.run(a, idx, images, meta, verdicts, stats, "annotator_error")):
            if r is None:
                continue
            verdicts[i].annotations[a.name] = r
            meta[i].setdefault("annotations", {})[a.name] = r


class FinalCaptionScores(Step):
    """A filter's `late_scores` (filters/base.py) as a step that run_filters runs after
    caption fusion: no pixels; meta holds the final caption, the sample's scores so far and
    its stored image embeddings; keep() decides on all of the filter's scores."""

    kind = "filter"
    needs_pixels = False

    def __init__(self, f):
        self.filter, self.name, self.pool = f, f.name, f.pool

    @property
    def batch_size(self) -> int | None:
        return self.filter.batch_size

    def process(self, images, meta) -> list[dict]:
        f = self.filter
        late = f.score_final_captions([m["final_caption"] for m in meta], meta)
        scores = {n: np.array([m["scores"].get(f"{f.name}_{n}", np.nan) for m in meta], dtype=float) for n in f.score_names}
        scores.update(late)
        keep = f.keep(scores)
        details = f.details(scores, keep)
        return [{"scores": {n: float(late[n][i]) for n in late}, "keep": bool(keep[i]), "detail": details[i], "outputs": None}
                for i in range(len(meta))]


class ModelStepRunner:
    """The model steps (filters, then annotators) of one model actor, on one batch."""

    def __init__(self, filters: list, annotators: list, guard: StepGuard | None = None):
        self.filters, self.annotators, self.guard = filters, annotators, guard or StepGuard()
        self.stats = StepStats()
        self.started = time.perf_counter()

    @property
    def steps(self) -> list[Step]:
        return [*self.filters, *self.annotators]

    def run(self, images: list[np.ndarray], meta: list[dict], verdicts: list[Verdict], score_all: bool) -> list[Verdict]:
        run_filters(self.filters, images, meta, verdicts, score_all, self.stats, self.guard)
        run_annotators(self.annotators, images, meta, verdicts, self.stats, self.guard)
        collect_embeddings(self.steps, images, verdicts)  # computed once by the CLIP steps, stored beside the shard
        return verdicts

    def score_final_captions(self, captions: list[str], verdicts: list[Verdict]) -> list[Verdict]:
        """The second trip, after caption fusion: the model filters' late scores of the samples still pending."""
        steps = [FinalCaptionScores(f) for f in self.filters if f.late_scores]
        meta = [{"final_caption": c, "scores": v.scores, "embeddings": v.embeddings} for c, v in zip(captions, verdicts)]
        run_filters(steps, [None] * len(verdicts), meta, verdicts, False, self.stats, self.guard)
        return verdicts

    def stats_dict(self) -> dict:
        """Busy time per step, and this runner's lifetime as the model pool's wall time."""
        s = StepStats()
        s.merge(self.stats.to_dict())
        s.add_wall("model", time.perf_counter() - self.started)
        return s.to_dict()


class LocalModelPool:
    """The model steps in this process, run synchronously (no Ray): tests, and the
    same interface as the Ray pool (pipeline/model_pool.py)."""

    def __init__(self, runner: ModelStepRunner):
        self.runner = runner

    def submit(self, images, meta, verdicts, score_all):
        return self.runner.run(images, meta, verdicts, score_all)

    def submit_final_captions(self, captions, verdicts):
        return self.runner.score_final_captions(captions, verdicts)

    def result(self, handle):
        return handle
