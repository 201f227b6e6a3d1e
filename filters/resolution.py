"""Resolution and aspect-ratio filter, decided from the ORIGINAL image size.

Needs no pixels (`needs_pixels = False`): it reads `original_width`/`original_height`
from the sample's metadata, and decides from that size alone (`decides_from_size`). It
runs first, and is asked before decoding: the loaders read the header (PIL, no pixels;
a video frame's size), call `keeps_size`, and do not decode an image whose size it rejects
(pipeline/decode.py: ImageDecoder). The chain then runs this filter as usual, so such a
sample is rejected with the same scores and detail as a decoded one; it has no stored
image (ledger `width`/`height` empty, no thumbnail in rejects/). With `score_all` every
image is decoded, so that the other filters can score it.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from filters.base import Filter, FilterConfig
from steps.registry import register_step


class ResolutionConfig(FilterConfig):
    enabled: bool = True
    min_side: int = Field(256, ge=0, description="reject if the original shorter side is smaller")
    min_pixels: int = Field(0, ge=0, description="reject if original width*height is smaller")
    max_aspect_ratio: float = Field(3.0, ge=1.0, description="reject if long side / short side is larger")


@register_step("resolution", order=10, pool="cpu")
class ResolutionFilter(Filter):
    Config = ResolutionConfig
    needs_pixels = False
    decides_from_size = True
    score_names = ("min_side", "pixels", "aspect_ratio")
    threshold_fields = {"min_side": "min_side", "pixels": "min_pixels", "aspect_ratio": "max_aspect_ratio"}

    def score(self, images, meta):
        w = np.array([m["original_width"] for m in meta], dtype=np.float64)
        h = np.array([m["original_height"] for m in meta], dtype=np.float64)
        short = np.minimum(w, h)
        long_ = np.maximum(w, h)
        aspect = np.divide(long_, short, out=np.full_like(long_, np.inf), where=short > 0)
        return {"min_side": short, "pixels": w * h, "aspect_ratio": aspect}

    def _checks(self, s):
        c = self.cfg
        return {
            "min_side": s["min_side"] >= c.min_side,
            "min_pixels": s["pixels"] >= c.min_pixels,
            "max_aspect_ratio": s["aspect_ratio"] <= c.max_aspect_ratio,
        }

    def keep(self, scores):
        checks = self._checks(scores)
        return np.logical_and.reduce(list(checks.values()))

    def details(self, scores, keep):
        checks = self._checks(scores)
        out = []
        for i, k in enumerate(keep):
            failed = [name for name, ok in checks.items() if not ok[i]]
            out.append("" if k else ",".join(failed))
        return out

