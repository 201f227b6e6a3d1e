"""Two small real stages for the pipeline tests, registered through $ASCAN_T2I_STAGES
(tests/conftest.py sets it) exactly as a user's own stage module would be.

- `probe` (annotator, model pool): says which process ran it and the image's mean
  brightness, so a test can check that model stages ran in the model actor.
- `explode` (filter, model pool): raises on any batch holding an image of a given
  original width, so a test can check that a crashing model batch costs only itself.
- `kill_worker` (filter, CPU workers): SIGKILLs the worker on an image of a given
  original width: a poison input, for the crash-isolation test.
"""

from __future__ import annotations

import os
import signal

import numpy as np
from pydantic import BaseModel, ConfigDict

from annotate.base import Annotator, AnnotatorConfig
from filters.base import Filter
from stages.base import Resources
from stages.registry import register_stage


class ProbeConfig(AnnotatorConfig):
    pass


class ProbeAnnotator(Annotator):
    name = "probe"

    def annotate(self, images, meta):
        return [{"model": "probe", "pid": os.getpid(), "brightness": float(im.mean())} for im in images]


@register_stage("probe", kind="annotator", config=ProbeConfig, order=50)
def build_probe(cfg: ProbeConfig) -> ProbeAnnotator:
    stage = ProbeAnnotator()
    stage.resources = Resources(batch_size=cfg.batch_size)
    return stage


class ExplodeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    on_original_width: int = 0


class ExplodeFilter(Filter):
    name = "explode"
    score_names = ("width",)

    def __init__(self, width: int):
        self.width = width

    def score(self, images, meta):
        widths = np.array([m["original_width"] for m in meta], dtype=np.float64)
        if (widths == self.width).any():
            raise RuntimeError(f"exploded on an image {self.width} px wide")
        return {"width": widths}

    def keep(self, scores):
        return np.ones(len(scores["width"]), dtype=bool)


@register_stage("explode", kind="filter", config=ExplodeConfig, order=35)
def build_explode(cfg: ExplodeConfig) -> ExplodeFilter:
    return ExplodeFilter(cfg.on_original_width)


class KillWorkerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    on_original_width: int = 0


class KillWorkerFilter(Filter):
    """Stands in for an input that crashes a native decoder: SIGKILLs its own process
    (the CPU worker) on any batch holding an image of the given original width."""

    name = "kill_worker"
    needs_pixels = False
    score_names = ("width",)

    def __init__(self, width: int):
        self.width = width

    def score(self, images, meta):
        widths = np.array([m["original_width"] for m in meta], dtype=np.float64)
        if (widths == self.width).any():
            os.kill(os.getpid(), signal.SIGKILL)
        return {"width": widths}

    def keep(self, scores):
        return np.ones(len(scores["width"]), dtype=bool)


@register_stage("kill_worker", kind="filter", config=KillWorkerConfig, order=15, pool="cpu")
def build_kill_worker(cfg: KillWorkerConfig) -> KillWorkerFilter:
    return KillWorkerFilter(cfg.on_original_width)
