"""SampleBatcher: collects decoded samples from a loader and sends them through the
step chain a batch at a time, without making the download wait on the models.

Per batch, in the CPU worker: the cheap filters run here; the samples still pending
(every decoded one with score_all) go to the model pool asynchronously and their pixels
are released at once (the pool has its own copy), so a worker holds at most one batch of
decoded images whatever the unit size. At most MAX_BATCHES_IN_POOL batches per worker
wait in the pool (in Ray's object store); past that the worker waits for the oldest, so a
slow model pool slows the downloads instead of filling memory. `finish()` collects the
remaining verdicts; `annotate_kept()` marks the survivors kept after the CPU annotators
(caption fusion, metadata only) describe them and the filters have checked the final
caption: the CPU filters here (filters/caption_rules.py: no empty `txt`), then the model
filters that score it (Filter.late_scores, e.g. clip_score_caption) in a second,
text-only trip to the model pool, a batch at a time.
"""

from __future__ import annotations

import time

from pipeline.image_hashes import image_hashes
from pipeline.sample import Sample
from pipeline.step_chain import StepChain
from pipeline.step_guard import reraise_if_broken
from pipeline.step_runner import run_annotators, run_filters
from pipeline.step_stats import StepStats
from pipeline.verdict import Status, Verdict

MAX_BATCHES_IN_POOL = 4


class SampleBatcher:
    def __init__(self, chain: StepChain, stats: StepStats):
        self.chain, self.stats = chain, stats
        self.pending: list[Sample] = []
        self.in_pool: list[tuple[list[Sample], object]] = []
        self.busy_s = 0.0  # time spent here, inside the loader's callback (waiting excluded)
        self.waited_s = 0.0  # time spent waiting for the model pool's verdicts

    def add(self, sample: Sample) -> None:
        if sample.status != Status.PENDING:
            return
        self.pending.append(sample)
        if len(self.pending) >= self.chain.batch_size:
            self.flush()

    def flush(self) -> None:
        batch, self.pending = self.pending, []
        if not batch:
            return
        t0 = time.perf_counter()
        meta = [s.step_meta() for s in batch]
        verdicts = [Verdict() for _ in batch]
        run_filters(self.chain.cpu_filters, [s.rgb for s in batch], meta, verdicts, self.chain.score_all, self.stats, self.chain.guard)
        for s, v in zip(batch, verdicts):
            s.apply(v)
            if s.status == Status.PENDING and s.image is not None and not s.image.decoded:  # chain.wants_pixels asked these same filters
                s.fail("internal_error: a sample left undecoded by its size passed the filters that rejected that size")
        if self.chain.pool is not None:
            sent = [s for s in batch if s.status == Status.PENDING or (self.chain.score_all and s.status == Status.REJECTED)]
            if sent:
                handle = self.chain.pool.submit(
                    [s.rgb for s in sent], [s.step_meta() for s in sent], [s.verdict.copy() for s in sent], self.chain.score_all
                )
                self.in_pool.append((sent, handle))
        for s in batch:
            if s.image is not None and s.image.rgb is not None:  # every decoded sample, so what-if can replay the duplicate pass
                s.hashes = image_hashes(s.rgb)
            if s.image is not None:
                s.image.release_pixels()
        waited = self.waited_s
        while len(self.in_pool) > MAX_BATCHES_IN_POOL:
            self._settle(*self.in_pool.pop(0))
        self.busy_s += time.perf_counter() - t0 - (self.waited_s - waited)

    def _settle(self, sent: list[Sample], handle) -> None:
        """Wait for one batch's verdicts and apply them."""
        t0 = time.perf_counter()
        try:
            verdicts = self.chain.pool.result(handle)
        except Exception as err:  # noqa: BLE001 - a lost model batch fails its samples, recorded
            reraise_if_broken(err)  # a broken step stops the build instead
            msg = str(err).strip().splitlines()[-1] if str(err).strip() else ""
            verdicts = [s.verdict.copy() for s in sent]
            for v in verdicts:
                v.fail("model_pool_error", f"{type(err).__name__}: {msg}")
        self.waited_s += time.perf_counter() - t0
        for s, v in zip(sent, verdicts):
            s.apply(v)

    def finish(self) -> float:
        """Wait for the model pool, settle every sample; returns seconds spent waiting."""
        self.flush()
        for sent, handle in self.in_pool:
            self._settle(sent, handle)
        self.in_pool = []
        return self.waited_s

    def annotate_kept(self, samples: list[Sample]) -> None:
        """Mark survivors kept, after the CPU annotators (fusion) describe them."""
        live = [s for s in samples if s.status == Status.PENDING]
        if self.chain.cpu_annotators and live:
            meta = [s.step_meta() for s in live]
            verdicts = [s.verdict.copy() for s in live]
            run_annotators(self.chain.cpu_annotators, [None] * len(live), meta, verdicts, self.stats, self.chain.guard)
            for s, v in zip(live, verdicts):
                s.apply(v)
        for s in live:
            for f in self.chain.cpu_filters:  # the caption rules' last word, now that the caption is final
                detail = f.check_final_caption(s.training_caption)
                if detail:
                    s.verdict.reject(f.name, detail)
        live = [s for s in live if s.status == Status.PENDING]
        if self.chain.final_caption_scores and self.chain.pool is not None:
            for i in range(0, len(live), self.chain.batch_size):
                part = live[i:i + self.chain.batch_size]
                self.in_pool.append((part, self.chain.pool.submit_final_captions([s.training_caption for s in part],
                                                                                 [s.verdict.copy() for s in part])))
            self.finish()
        for s in live:
            s.verdict.keep()
