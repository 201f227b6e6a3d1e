"""The Annotator step: describes each kept sample; the result lands in
`json.annotations[name]` of its shard sample (shapes in README, "Captions").

Annotators are Steps (steps/base.py): plain Python objects, no Ray, each testable
alone. `annotate` gets a batch of stored RGB images and one meta dict per image; meta
holds the sizes, the alt text (`caption`), the outputs of the filters that ran
(`filter_outputs`, e.g. the text filter's boxes) and the annotations made so far
(`annotations`, by the annotators that ran before this one).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from steps.base import Step, StepConfig


class AnnotatorConfig(StepConfig):
    """Fields every annotator's config section has (subclass it for the rest)."""

    required: bool = Field(True, description="false: if the model cannot be loaded, skip this annotator with a warning in the manifest")
    batch_size: int = Field(16, ge=1, description="at most this many images per model call")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto = CUDA when present, else CPU")


class Annotator(Step):
    Config: ClassVar[type[AnnotatorConfig]] = AnnotatorConfig
    kind = "annotator"

    def annotate(self, images: list[np.ndarray], meta: list[dict]) -> list[dict]:
        """One JSON-able dict per sample, including the `model` that made it."""
        raise NotImplementedError

    def process(self, images, meta) -> list[dict]:
        """annotate(), `batch_size` samples at a time."""
        return [r for s in self.batches(len(meta)) for r in self.annotate(images[s], meta[s])]
