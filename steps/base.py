"""The Step interface: a batch of decoded images in, one result per sample out.

Filters (`filters/base.py`) and annotators (`annotate/base.py`) are Steps. A step is a
plain Python object with no Ray in it, so each can be built and tested alone. Its shape:

- `Config`: the pydantic model of its workflow section (`filters.NAME` / `annotate.NAME`);
  `__init__(cfg)` stores it as `self.cfg` and does nothing else that costs: no model loads,
  so the filter report can build real instances to replay `keep()` on stored scores;
- `setup()`: loads models, once per process that runs the step (a CPU worker or a model
  actor), before the first `process()`; `ready(cfg)` is construct + setup in one call;
- `name`, `order` and `pool` come from `@register_step` on the class (steps/registry.py):
  `pool="cpu"` runs inside the CPU workers that download and decode (cheap, no model),
  `pool="model"` in the model pool (actors that load each model once, one GPU each when
  the cluster has GPUs);
- `batch_size`: the config's `batch_size` field when it has one: the most samples one
  model call gets. `process()` splits a larger batch into `batches()` itself, whoever
  calls it (the step guard also splits, to the size that held after running out of
  memory); None = no limit.

`process` is what a pool calls: images are RGB uint8 HxWx3 arrays (the stored image),
`meta` one dict per image (sizes, alt text, outputs of earlier steps). It returns one
JSON-able dict per sample; its shape is fixed by the subclass (Filter or Annotator).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict


class StepConfig(BaseModel):
    """Base of every step's config section: unknown fields fail, naming the field."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    enabled: bool = False


class Step:
    Config: ClassVar[type[BaseModel]] = StepConfig
    kind: ClassVar[str] = "step"  # "filter" | "annotator": the workflow section it is configured in
    # set by @register_step
    name: ClassVar[str] = "step"
    order: ClassVar[int] = 0
    pool: ClassVar[str] = "model"
    # False for steps that decide from metadata alone (e.g. the original size).
    needs_pixels: ClassVar[bool] = True

    def __init__(self, cfg: BaseModel | None = None):
        if cfg is None:
            cfg = self.Config()
        elif not isinstance(cfg, self.Config):
            raise TypeError(f"{type(self).__name__} takes a {self.Config.__name__}, got {type(cfg).__name__}")
        self.cfg = cfg

    def setup(self) -> None:
        """Load models (once per process, before the first process()). Default: nothing to load."""

    @classmethod
    def ready(cls, cfg: BaseModel | None = None, **fields):
        """A step ready to run: `cls(cfg)` (or a Config of `fields`), set up."""
        if fields:
            if cfg is not None:
                raise TypeError("ready(): give a config or its fields, not both")
            cfg = cls.Config(**fields)
        step = cls(cfg)
        step.setup()
        return step

    @property
    def batch_size(self) -> int | None:
        return getattr(self.cfg, "batch_size", None)

    def batches(self, n: int) -> list[slice]:
        """Slices of at most `batch_size` samples covering `n` samples, in order."""
        size = self.batch_size or max(n, 1)
        return [slice(s, s + size) for s in range(0, n, size)]

    def process(self, images: list[np.ndarray | None], meta: list[dict]) -> list[dict]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, pool={self.pool!r}, batch_size={self.batch_size})"
