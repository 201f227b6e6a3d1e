"""Unwanted-concepts filter: zero-shot CLIP scores for violence, gore, weapons (or any
concepts the workflow lists), from the image embedding and a few text prompts per concept.

For each concept c, with s(prompts) = the best cosine similarity between the image
embedding and those prompts' text embeddings, and the CLIP model's own logit scale t:

    P(c) = softmax(t * [s(prompts of c), s(neutral prompts)])[0]

i.e. "is the image closer to this concept than to an ordinary photo?". Reject when
P(c) >= the concept's threshold for any concept (`threshold`, per concept overrides in
`thresholds`); the ledger's `detail` names the concepts that fired. Score columns:
`concepts_<name>` per concept, and `concepts_max`.

Model: an open_clip model shared with the NSFW filter's `clip` backend in the same
process (filters/clip_encoder.py: one model object, each image embedded once for both).
No CLIP weights ship offline: set `clip_weights` to an open_clip checkpoint (see README,
"Filters"), or `clip_model: hf-hub:ORG/REPO` with the model in the Hugging Face cache. The
default threshold 0.8 is NOT calibrated on real weights here (none are available offline):
tune it with `score_all: true` and the filter report on your data.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from filters.base import Filter
from filters.clip_encoder import ClipStepConfig, encoder_for
from steps.registry import register_step

_SETTING = "filters.concepts"
DEFAULT_CONCEPT_THRESHOLD = 0.8
DEFAULT_PROMPTS = {
    "violence": ["a photo of violence", "a photo of people fighting", "a photo of a violent assault", "a photo of a riot"],
    "gore": ["a photo of gore", "a photo of a bloody wound", "a photo of blood and injuries", "a photo of a dead body"],
    "weapons": ["a photo of a gun", "a photo of a person holding a weapon", "a photo of a rifle", "a photo of a knife used as a weapon"],
}
DEFAULT_NEUTRAL = ["a photo", "an ordinary photo of everyday life", "a photo of a landscape",
                   "a photo of people", "a photo of an object", "a picture"]


class ConceptsConfig(ClipStepConfig):
    enabled: bool = False
    prompts: dict[str, list[str]] = Field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_PROMPTS.items()},
                                          description="concept name -> text prompts describing it")
    neutral_prompts: list[str] = Field(default_factory=lambda: list(DEFAULT_NEUTRAL), min_length=1,
                                       description="prompts for an ordinary image, the alternative each concept is scored against")
    threshold: float = Field(DEFAULT_CONCEPT_THRESHOLD, ge=0, le=1, description="reject if P(concept) >= this, for any concept")
    thresholds: dict[str, float] = Field(default_factory=dict, description="per-concept threshold overrides")

    @model_validator(mode="after")
    def _check(self):
        if not self.prompts or any(not v for v in self.prompts.values()):
            raise ValueError("prompts: give at least one concept, each with at least one prompt")
        unknown = set(self.thresholds) - set(self.prompts)
        if unknown:
            raise ValueError(f"thresholds: {sorted(unknown)} are not concepts in prompts ({sorted(self.prompts)})")
        if any(not 0 <= v <= 1 for v in self.thresholds.values()):
            raise ValueError("thresholds: each must be within 0..1")
        return self


@register_step("concepts", order=45)
class ConceptFilter(Filter):
    Config = ConceptsConfig
    # the default threshold; per-concept overrides (`thresholds`) stay as built
    threshold_fields = {"max": "threshold"}

    @property
    def concepts(self) -> list[str]:
        return list(self.cfg.prompts)

    @property
    def score_names(self) -> tuple[str, ...]:
        return tuple(self.concepts) + ("max",)

    @property
    def clip_encoder(self):  # the shared encoder whose embeddings the build stores
        return getattr(self, "encoder", None)

    def setup(self):
        c = self.cfg
        self.encoder = encoder_for(c, _SETTING)
        texts = [p for k in self.concepts for p in c.prompts[k]] + list(c.neutral_prompts)
        emb = self.encoder.embed_texts(texts)
        bounds = np.cumsum([0] + [len(c.prompts[k]) for k in self.concepts])
        self._concept_emb = [emb[bounds[k]:bounds[k + 1]] for k in range(len(self.concepts))]
        self._neutral_emb = emb[bounds[-1]:]

    def _probs(self, images) -> np.ndarray:
        import torch

        e = self.encoder.embed_images(images)  # N x D, normalised
        t = self.encoder.logit_scale
        neutral = (e @ self._neutral_emb.T).max(1).values
        cols = []
        for ce in self._concept_emb:
            s = (e @ ce.T).max(1).values
            cols.append(torch.softmax(t * torch.stack([s, neutral], 1), 1)[:, 0])
        return torch.stack(cols, 1).cpu().numpy().astype(np.float64)

    def score(self, images, meta):
        n = len(images)
        p = self._probs(images) if n else np.zeros((0, len(self.concepts)))
        out = {c: p[:, k] for k, c in enumerate(self.concepts)}
        out["max"] = p.max(1) if n else np.zeros(0)
        return out

    def _fired(self, scores) -> dict[str, np.ndarray]:
        """concept -> rows at or above its threshold; the concepts are the score names
        other than `max` (so this works from stored ledger scores alone)."""
        return {c: np.asarray(v) >= self.cfg.thresholds.get(c, self.cfg.threshold) for c, v in scores.items() if c != "max"}

    def keep(self, scores):
        fired = list(self._fired(scores).values())
        return ~np.logical_or.reduce(fired) if fired else np.ones(len(scores["max"]), dtype=bool)

    def details(self, scores, keep):
        fired = self._fired(scores)
        return ["" if k else ",".join(c for c in fired if fired[c][i]) for i, k in enumerate(keep)]
