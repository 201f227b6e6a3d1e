"""The Stage interface: a batch of decoded images in, one result per sample out.

Filters (`filters/base.py`) and annotators (`annotate/base.py`) are Stages. A stage is a
plain Python object with no Ray in it, so each can be built and tested alone; the
pipeline decides where it runs from its `resources`:

- `pool="cpu"`: inside the CPU workers that download and decode (cheap, no model);
- `pool="model"`: in the model pool, a separate set of actors that load each model once
  and get a GPU each when the cluster has GPUs (`gpu=True` marks a stage that uses one).

`process` is what a pool calls: images are RGB uint8 HxWx3 arrays (the stored image),
`meta` one dict per image (sizes, alt text, outputs of earlier stages). It returns one
JSON-able dict per sample; its shape is fixed by the subclass (Filter or Annotator).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np


@dataclass(frozen=True)
class Resources:
    pool: Literal["cpu", "model"] = "model"
    batch_size: int = 32  # samples per process() call
    gpu: bool = False  # runs on a GPU when the model actor has one


class Stage:
    name: ClassVar[str] = "stage"
    kind: ClassVar[str] = "stage"  # "filter" | "annotator"
    resources: Resources = Resources()
    # False for stages that decide from metadata alone (e.g. the original size).
    needs_pixels: ClassVar[bool] = True

    def process(self, images: list[np.ndarray | None], meta: list[dict]) -> list[dict]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, {self.resources})"
