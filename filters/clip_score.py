"""CLIP score filter: do the alt text and the training caption describe the image?

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

Score `clip_score_caption` = the same cosine with the training caption (the shard's `txt`:
the fused caption, or the alt text when fusion is off), and `threshold_caption` rejects
below it; a sample is rejected when either score is below its threshold (detail `alt` or
`caption`). The caption is fused in the CPU worker after the model pool has answered, so
this is a second, text-only trip to the pool for the samples still kept
(`score_final_captions`): the image side is the embedding the pool already stored in the
sample's verdict (float16, the one written beside the shard), so no image is encoded twice.
A sample that left before fusion has no caption score (NaN, passes). Captions rewritten
later (`python -m annotate.refuse`) keep the score of the caption the build fused.
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
    threshold_caption: float = Field(-1.0, ge=-1, le=1, description="reject if cos(image, training caption) < this; -1 = off")


@register_step("clip_score", order=46)
class ClipScoreFilter(Filter):
    Config = ClipScoreConfig
    score_names = ("alt", "caption")
    threshold_fields = {"alt": "threshold", "caption": "threshold_caption"}
    late_scores = ("caption",)

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
        return {"alt": out, "caption": np.full(len(images), np.nan)}  # caption: after fusion (score_final_captions)

    def score_final_captions(self, captions, meta):
        import torch

        out = np.full(len(captions), np.nan)
        idx = [i for i, (t, m) in enumerate(zip(captions, meta)) if t.strip() and self.encoder.label in m["embeddings"]]
        if idx:
            img = torch.nn.functional.normalize(torch.as_tensor(
                np.stack([m["embeddings"][self.encoder.label] for m in (meta[i] for i in idx)]).astype(np.float32)), dim=-1)
            txt = self.encoder.embed_texts([captions[i].strip() for i in idx]).cpu()
            out[idx] = (img * txt).sum(-1).numpy()
        return {"caption": out}

    def keep(self, scores):
        c = self.cfg  # NaN (no alt text; no caption yet) passes
        return ~(np.asarray(scores["alt"], dtype=float) < c.threshold) & ~(np.asarray(scores["caption"], dtype=float) < c.threshold_caption)

    def details(self, scores, keep):
        alt_low = np.asarray(scores["alt"], dtype=float) < self.cfg.threshold
        return ["" if k else ("alt" if a else "caption") for k, a in zip(keep, alt_low)]
