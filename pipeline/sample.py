"""One input item on its way through the pipeline, from source to ledger row."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.decode import StoredImage


@dataclass
class Sample:
    key: str
    index: int  # position within its unit: shards and ledgers are written in this order
    source: dict  # url or path, kind, caption, video_time, extra columns
    image: StoredImage | None = None
    status: str = "pending"  # -> kept | rejected | failed
    reason: str = ""  # rejecting filter's name, or the error category
    detail: str = ""  # which criterion, or the full error message
    scores: dict[str, float] = field(default_factory=dict)
    filter_outputs: dict = field(default_factory=dict)
    annotations: dict = field(default_factory=dict)

    def fail(self, error: str) -> None:
        """Record a failure; `error` is 'category: message' (category becomes the reason)."""
        category, _, message = error.partition(": ")
        if not message or " " in category:
            category, message = "error", error
        self.status, self.reason, self.detail = "failed", category, message
        self.image = None

    @property
    def rgb(self) -> np.ndarray:
        return self.image.rgb

    def stage_meta(self) -> dict:
        """The per-sample dict stages see (see stages/base.py)."""
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

    def verdict(self) -> dict:
        """This sample's state as the stage chain passes it around (stage_chain.py)."""
        return {"status": self.status, "reason": self.reason, "detail": self.detail, "scores": dict(self.scores),
                "filter_outputs": dict(self.filter_outputs), "annotations": dict(self.annotations)}

    def apply(self, verdict: dict) -> None:
        """Take a stage chain's verdict; a failure drops the image."""
        self.scores.update(verdict["scores"])
        self.filter_outputs.update(verdict["filter_outputs"])
        self.annotations.update(verdict["annotations"])
        if verdict["status"] == "failed" and self.status != "failed":
            self.fail(f"{verdict['reason']}: {verdict['detail']}")
        elif verdict["status"] != "failed":
            self.status, self.reason, self.detail = verdict["status"], verdict["reason"], verdict["detail"]
