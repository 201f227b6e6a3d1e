"""Two small real steps for the pipeline tests, registered through $ASCAN_T2I_STEPS
(tests/conftest.py sets it) exactly as a user's own step module would be.

- `probe` (annotator, model pool): says which process ran it and the image's mean
  brightness, so a test can check that model steps ran in the model actor.
- `explode` (filter, model pool): raises on any batch holding an image of a given
  original width, so a test can check that a crashing model batch costs only itself.
- `kill_worker` (filter, CPU workers): SIGKILLs the worker on an image of a given
  original width: a poison input, for the crash-isolation test.
- `kill_actor` (filter, model pool): the same in the model actor.
- `broken` (filter, model pool): raises on every batch, like a model missing its weights.
- `oom` (filter, model pool): raises torch.cuda.OutOfMemoryError on a batch of more than
  `max_batch` images, or holding an image of a given original width (too large alone).
- `sticky_cuda` (filter, model pool): raises a sticky CUDA error (illegal memory access)
  once, on the first batch of the build (a marker file says it happened) or on any batch
  holding an image of a given width; after that every call in that process fails as a
  real CUDA context would.
"""

from __future__ import annotations

import os
import signal

import numpy as np

from annotate.base import Annotator, AnnotatorConfig
from filters.base import Filter, FilterConfig
from steps.registry import register_step


@register_step("probe", order=50)
class ProbeAnnotator(Annotator):
    Config = AnnotatorConfig

    def annotate(self, images, meta):
        return [{"model": "probe", "pid": os.getpid(), "brightness": float(im.mean())} for im in images]


class OnWidthConfig(FilterConfig):
    on_original_width: int = 0


@register_step("explode", order=35)
class ExplodeFilter(Filter):
    """Keeps everything, but `trigger`s on any batch holding an image of the given width."""

    Config = OnWidthConfig
    needs_pixels = False
    score_names = ("width",)

    def trigger(self):
        raise RuntimeError(f"exploded on an image {self.cfg.on_original_width} px wide")

    def score(self, images, meta):
        widths = np.array([m["original_width"] for m in meta], dtype=np.float64)
        if (widths == self.cfg.on_original_width).any():
            self.trigger()
        return {"width": widths}

    def keep(self, scores):
        return np.ones(len(scores["width"]), dtype=bool)


@register_step("kill_worker", order=15, pool="cpu")
class KillWorkerFilter(ExplodeFilter):
    """Stands in for an input that crashes a native decoder: SIGKILLs its own process
    (the CPU worker)."""

    def trigger(self):
        os.kill(os.getpid(), signal.SIGKILL)


@register_step("kill_actor", order=36)
class KillActorFilter(KillWorkerFilter):
    """A poison input for the model actor: SIGKILLs it (as a native crash in a model would)."""


@register_step("broken", order=37)
class BrokenFilter(ExplodeFilter):
    def score(self, images, meta):
        raise RuntimeError("the model has no weights")


class OomConfig(OnWidthConfig):
    batch_size: int = 16
    max_batch: int = 2


@register_step("oom", order=38)
class OomFilter(ExplodeFilter):
    """Runs out of (GPU) memory above `max_batch` images, and on the image of the given width alone."""

    Config = OomConfig

    def setup(self):
        self.batch_sizes: list[int] = []  # every call's batch size, for the test to read

    def trigger(self):
        import torch

        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def score(self, images, meta):
        self.batch_sizes.append(len(meta))
        if len(meta) > self.cfg.max_batch:
            self.trigger()
        return super().score(images, meta)


class StickyCudaConfig(OnWidthConfig):
    once_marker: str = ""  # a file: the first call of the build, across processes, creates it and fails


_device_broken = False  # this process's "CUDA context", broken for good by a sticky error


@register_step("sticky_cuda", order=39)
class StickyCudaFilter(ExplodeFilter):
    Config = StickyCudaConfig

    def trigger(self):
        global _device_broken
        _device_broken = True
        raise RuntimeError("CUDA error: an illegal memory access was encountered\n"
                           "CUDA kernel errors might be asynchronously reported at some other API call")

    def score(self, images, meta):
        marker = self.cfg.once_marker
        if _device_broken or (marker and not os.path.exists(marker) and open(marker, "w")):
            self.trigger()
        return super().score(images, meta)
