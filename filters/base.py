"""The Filter step: scores a batch, keeps or rejects each sample with a reason.

A filter scores a batch of decoded RGB images (uint8 HxWx3 numpy arrays) plus one
metadata dict per image, and decides keep/reject from its thresholds. Filters are
Steps (steps/base.py): plain Python objects, no Ray, each testable alone.

A filter with `needs_pixels = False` gets None for each image and decides from the
metadata. One that also sets `decides_from_size` (the resolution filter) is asked before
any pixel is decoded: when it rejects an image's header size and no filter needing pixels
runs before it, the image is never decoded (pipeline/step_chain.py: StepChain.wants_pixels),
unless `score_all` is set; the chain then runs it as usual and it rejects the sample.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from steps.base import Step, StepConfig

DEVICE_FIELD = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto = CUDA when present, else CPU")


class FilterConfig(StepConfig):
    """Base of every filter's config section: unknown fields fail, naming the field."""


class Filter(Step):
    Config: ClassVar[type[FilterConfig]] = FilterConfig
    kind = "filter"
    # Names of the arrays `score` returns; the ledger gets one column per name,
    # written as f"{filter.name}_{score_name}". (A property when the config decides them.)
    score_names: ClassVar[tuple[str, ...]] = ()
    # score name -> the config field that is its threshold. keep() must decide from the
    # scores and the config alone: filter-report replays it on stored scores, with real
    # instances built from the build's config (no setup(), no model), and its what-if
    # changes exactly these fields.
    threshold_fields: ClassVar[dict[str, str]] = {}
    # True when keep() depends on the original size alone (meta's original_width and
    # original_height, e.g. filters/resolution.py): the loaders ask such a filter, through
    # keeps_size, before decoding, and skip the pixels of a size it rejects.
    decides_from_size: ClassVar[bool] = False
    # `detail`s of rejections this filter makes after the annotators (check_final_caption),
    # which no score replays: filter-report counts rows rejected so as rejected by it.
    late_details: ClassVar[tuple[str, ...]] = ()
    # Scores (of score_names) known only once the training caption is final, after caption
    # fusion in the CPU worker (model filters): `score` gives NaN for them, then the worker
    # sends the final captions back to the model pool for `score_final_captions`, and keep()
    # decides again with them. NaN (never scored: the sample left before fusion) passes;
    # filter-report does not require them to call a row scored.
    late_scores: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def check_declarations(cls) -> None:
        """At registration: every declared threshold is a config field of a declared score."""
        for score, field in cls.threshold_fields.items():
            if field not in cls.Config.model_fields:
                raise TypeError(f"filter {cls.name}: threshold_fields names {field!r}, which is not a field of {cls.Config.__name__}")
            if isinstance(cls.score_names, tuple) and score not in cls.score_names:
                raise TypeError(f"filter {cls.name}: threshold_fields names the score {score!r}, not one of score_names {cls.score_names}")

    def score(self, images: list[np.ndarray], meta: list[dict]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def keep(self, scores: dict[str, np.ndarray]) -> np.ndarray:
        """Boolean array, True where the sample passes this filter."""
        raise NotImplementedError

    def keeps_size(self, width: int, height: int) -> bool:
        """This filter's own keep() on an image of that original size (decides_from_size filters)."""
        scores = self.score([None], [{"original_width": width, "original_height": height}])
        return bool(self.keep(scores)[0])

    def check_final_caption(self, text: str) -> str:
        """Asked once the training caption is final (after caption fusion), for samples
        still kept: a non-empty detail rejects the sample with this filter as the reason."""
        return ""

    def score_final_captions(self, captions: list[str], meta: list[dict]) -> dict[str, np.ndarray]:
        """The `late_scores` of samples still kept, from their final training captions;
        meta[i] holds "embeddings" (the image embeddings the pool stored in the verdict,
        pipeline/embeddings.py) and "scores" (the sample's ledger scores so far)."""
        raise NotImplementedError

    def details(self, scores: dict[str, np.ndarray], keep: np.ndarray) -> list[str]:
        """Why each rejected sample was rejected, for the ledger's `detail` column.

        Default: the filter's name. Filters with several criteria say which one failed.
        """
        return ["" if k else self.name for k in keep]

    def score_and_outputs(self, images, meta) -> tuple[dict[str, np.ndarray], list[dict | None]]:
        """The scores, and per sample what this filter leaves for later steps ({output
        name: value}, e.g. the text filter's boxes under "text", which OCR reuses) or None.
        Inputs are read-only: the step runner, not the filter, puts outputs into meta."""
        return self.score(images, meta), [None] * len(meta)

    def process(self, images, meta) -> list[dict]:
        """Per sample: {"scores": {name: float}, "keep": bool, "detail": str, "outputs": dict | None},
        scored `batch_size` samples at a time."""
        return [r for s in self.batches(len(meta)) for r in self._decide(images[s], meta[s])]

    def _decide(self, images, meta) -> list[dict]:
        scores, outputs = self.score_and_outputs(images, meta)
        keep = self.keep(scores)
        details = self.details(scores, keep)
        return [
            {
                "scores": {n: float(scores[n][i]) for n in self.score_names},
                "keep": bool(keep[i]),
                "detail": details[i],
                "outputs": outputs[i],
            }
            for i in range(len(meta))
        ]

    @property
    def score_columns(self) -> list[str]:
        return [f"{self.name}_{n}" for n in self.score_names]
