"""One input item on its way through the pipeline, from source to ledger row."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.decode import StoredImage
from pipeline.verdict import Status, Verdict


@dataclass
class Sample:
    key: str
    index: int  # position within its unit: shards and ledgers are written in this order
    source: dict  # url or path, kind, caption, video_time, extra columns
    image: StoredImage | None = None
    verdict: Verdict = field(default_factory=Verdict)  # its state: status, reason, scores, outputs, annotations
    hashes: dict = field(default_factory=dict)  # pixel_hash, phash (pipeline/image_hashes.py), for the duplicate pass

    # read-only views of the verdict, for the loaders, the writer and the ledger
    status = property(lambda self: self.verdict.status)
    reason = property(lambda self: self.verdict.reason)
    detail = property(lambda self: self.verdict.detail)
    scores = property(lambda self: self.verdict.scores)
    filter_outputs = property(lambda self: self.verdict.filter_outputs)
    annotations = property(lambda self: self.verdict.annotations)
    embeddings = property(lambda self: self.verdict.embeddings)

    def fail(self, error: str) -> None:
        """Record a failure; `error` is 'category: message' (category becomes the reason)."""
        self.verdict.fail_with(error)
        self.image = None

    def apply(self, verdict: Verdict) -> None:
        """Take a step chain's verdict (Verdict.merge); a failure drops the image."""
        self.verdict.merge(verdict)
        if self.verdict.status == Status.FAILED:
            self.image = None

    @property
    def training_caption(self) -> str:
        """The shard's `txt`: the fused caption when the fusion step ran, else the alt text."""
        fused = self.annotations.get("fused")
        return fused["text"] if fused else (self.source.get("caption") or "")

    @property
    def rgb(self) -> np.ndarray:
        return self.image.rgb

    def step_meta(self) -> dict:
        """The per-sample dict steps see (see steps/base.py)."""
        img = self.image
        return {
            "key": self.key,
            "original_width": img.original_width if img else None,
            "original_height": img.original_height if img else None,
            "width": img.width if img else None,
            "height": img.height if img else None,
            "caption": self.source.get("caption", ""),
            "filter_outputs": dict(self.filter_outputs),
            "annotations": dict(self.annotations),
        }
