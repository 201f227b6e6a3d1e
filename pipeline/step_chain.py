"""Which enabled step runs where: cheap filters in the CPU workers, model filters and
annotators in the model pool, caption fusion back in the CPU workers (each step's
`pool`, declared when it registers)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.config import WorkflowConfig
from pipeline.step_guard import StepGuard
from pipeline.step_runner import LocalModelPool, ModelStepRunner
from steps.registry import build_steps, enabled_steps


@dataclass
class StepChain:
    """cpu_filters and cpu_annotators run in the worker, the rest behind `pool`
    (None when no model step is enabled)."""

    cpu_filters: list
    pool: object | None
    cpu_annotators: list
    score_columns: list[str]
    score_all: bool = False
    batch_size: int = 64
    warnings: list[str] = field(default_factory=list)
    guard: StepGuard = field(default_factory=StepGuard)  # this worker's CPU steps: lives as long as the worker
    final_caption_scores: bool = False  # a model filter scores the final caption (Filter.late_scores): a second trip to the pool

    def wants_pixels(self, width: int, height: int) -> bool:
        """False when a filter that decides from the original size alone, running before
        any filter that needs pixels, rejects this size: the loaders then skip decoding
        (pipeline/decode.py) and this chain rejects the sample with that filter's own scores.
        Always True with score_all, which scores every filter on every sample."""
        if self.score_all:
            return True
        for f in self.cpu_filters:
            if f.needs_pixels:
                return True
            if f.decides_from_size and not f.keeps_size(width, height):
                return False
        return True


def has_model_steps(cfg: WorkflowConfig) -> bool:
    return bool(enabled_steps(cfg.filters, "filter", "model") or enabled_steps(cfg.annotate, "annotator", "model"))


def build_model_runner(cfg: WorkflowConfig, warnings: list[str], counter=None) -> ModelStepRunner:
    """The model steps, loaded here (once per model actor). `counter`: where the guard
    counts failed batches (pipeline/pool_health.py), default this process."""
    return ModelStepRunner(
        build_steps(cfg.filters, "filter", warnings, pool="model"),
        build_steps(cfg.annotate, "annotator", warnings, pool="model"),
        StepGuard(cfg.ray.max_failed_batches, counter),
    )


def score_columns(filters: list) -> list[str]:
    return [c for f in filters for c in f.score_columns]


def build_chain(cfg: WorkflowConfig, pool=None, model_columns: list[str] | None = None, counter=None) -> StepChain:
    """The chain a CPU worker runs. Without `pool`, the model steps are built in this
    process (LocalModelPool: tests, and runs without Ray)."""
    warnings: list[str] = []
    cpu_filters = build_steps(cfg.filters, "filter", warnings, pool="cpu")
    cpu_annotators = build_steps(cfg.annotate, "annotator", warnings, pool="cpu")
    if pool is None and has_model_steps(cfg):
        runner = build_model_runner(cfg, warnings)
        pool, model_columns = LocalModelPool(runner), score_columns(runner.filters)
    columns = score_columns(cpu_filters) + list(model_columns or [])
    late = any(c.late_scores for c in enabled_steps(cfg.filters, "filter", "model"))
    return StepChain(cpu_filters, pool, cpu_annotators, columns, cfg.score_all, cfg.ray.model_batch_size, warnings,
                     StepGuard(cfg.ray.max_failed_batches, counter), late)
