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


class OnWidthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    on_original_width: int = 0


class ExplodeFilter(Filter):
    """Keeps everything, but `trigger`s on any batch holding an image of the given width."""

    name = "explode"
    needs_pixels = False
    score_names = ("width",)

    def __init__(self, width: int):
        self.width = width

    def trigger(self):
        raise RuntimeError(f"exploded on an image {self.width} px wide")

    def score(self, images, meta):
        widths = np.array([m["original_width"] for m in meta], dtype=np.float64)
        if (widths == self.width).any():
            self.trigger()
        return {"width": widths}

    def keep(self, scores):
        return np.ones(len(scores["width"]), dtype=bool)


class KillWorkerFilter(ExplodeFilter):
    """Stands in for an input that crashes a native decoder: SIGKILLs its own process
    (the CPU worker)."""

    name = "kill_worker"

    def trigger(self):
        os.kill(os.getpid(), signal.SIGKILL)


@register_stage("explode", kind="filter", config=OnWidthConfig, order=35)
def build_explode(cfg: OnWidthConfig) -> ExplodeFilter:
    return ExplodeFilter(cfg.on_original_width)


@register_stage("kill_worker", kind="filter", config=OnWidthConfig, order=15, pool="cpu")
def build_kill_worker(cfg: OnWidthConfig) -> KillWorkerFilter:
    return KillWorkerFilter(cfg.on_original_width)
