"""CLIP score filter: does the alt text describe the image?

Score `clip_score_alt` = cosine similarity of the image's CLIP embedding (the process's
shared encoder, filters/clip_encoder.py: the same embedding the other CLIP steps use and
the build stores) with the CLIP text embedding of the sample's alt text, from the same
model. Reject when it is below `threshold`. An empty alt text has no score (NaN) and is
not rejected here (the caption_rules filter decides about empty or short alt texts).

Reference values (cosine similarity; they depend on the model: compare only under one):
LAION-400M kept pairs with ViT-B/32 similarity >= 0.3 and LAION-5B >= 0.28; DataComp's
CLIP-score baselines keep the top 30 % of its pool by ViT-L/14 (or ViT-B/32) similarity (a
threshold computed from the pool's own scores) or use a fixed 0.3, and its LAION-2B
reproduction is ViT-B/32 >= 0.28 plus English captions. The default, -1, is off: the filter
only records the score until a threshold is chosen (tune it with the report).

Not done: the same score for the fused training caption. The caption is fused in the CPU
worker after the model pool has answered, and the CPU workers load no model; scoring it
needs a second trip to the pool (or a re-scoring pass over the stored embeddings).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from filters.base import Filter
from filters.clip_encoder import ClipStepConfig, encoder_for
from steps.registry import register_step

_SETTING = "filters.clip_score"
LAION_B32_THRESHOLD = 0.28


class ClipScoreConfig(ClipStepConfig):
    enabled: bool = False
    threshold: float = Field(-1.0, ge=-1, le=1, description="reject if cos(image, alt text) < this; -1 = off "
                             f"(LAION-5B: {LAION_B32_THRESHOLD} with ViT-B/32)")


@register_step("clip_score", order=46)
class ClipScoreFilter(Filter):
    Config = ClipScoreConfig
    score_names = ("alt",)
    threshold_fields = {"alt": "threshold"}

    @property
    def clip_encoder(self):  # the shared encoder whose embeddings the build stores
        return getattr(self, "encoder", None)

    def setup(self):
        self.encoder = encoder_for(self.cfg, _SETTING)

    def score(self, images, meta):
        texts = [(m.get("caption") or "").strip() for m in meta]
        out = np.full(len(images), np.nan)
        idx = [i for i, t in enumerate(texts) if t]
        if idx:
            img = self.encoder.embed_images([images[i] for i in idx])
            txt = self.encoder.embed_texts([texts[i] for i in idx])
            out[idx] = (img * txt).sum(-1).float().cpu().numpy()
        return {"alt": out}

    def keep(self, scores):
        return ~(np.asarray(scores["alt"], dtype=float) < self.cfg.threshold)  # NaN (no alt text) passes
