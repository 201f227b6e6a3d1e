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

    def filter_meta(self) -> dict:
        """The per-sample dict filters see (they may add `filter_outputs`)."""
        return {
            "key": self.key,
            "original_width": self.image.original_width,
            "original_height": self.image.original_height,
            "width": self.image.width,
            "height": self.image.height,
            "caption": self.source.get("caption", ""),
            "filter_outputs": self.filter_outputs,
        }
