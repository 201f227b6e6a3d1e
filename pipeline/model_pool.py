"""The model pool on Ray: ModelActors that load the model steps once each (one GPU
per actor when the cluster has GPUs, else CPU actors), and the client a CPU worker
uses to send them batches without waiting.

Plain actors rather than Ray Data's `map_batches`: a unit (its shard, its ledger, its
resume marker) stays the unit of work and accounting, written by the worker that
loaded it; see bench/README.md ("Model pool") for the measurement behind the choice.
"""

from __future__ import annotations

import itertools
import os
import random

import ray

from pipeline.config import WorkflowConfig
from pipeline.step_chain import build_model_runner, score_columns
from pipeline.worker_env import worker_env


@ray.remote(max_restarts=-1, max_task_retries=1)
class ModelActor:
    def __init__(self, cfg_json: str):
        cfg = WorkflowConfig.model_validate_json(cfg_json)
        self.warnings: list[str] = []
        self.runner = build_model_runner(cfg, self.warnings)

    def describe(self) -> dict:
        """Score columns of the model filters and load warnings; also proves the models loaded."""
        return {"score_columns": score_columns(self.runner.filters), "warnings": self.warnings,
                "steps": [s.name for s in self.runner.steps], "pid": os.getpid()}

    def run(self, images, meta, verdicts, score_all):
        return self.runner.run(images, meta, verdicts, score_all)

    def stats(self) -> dict:
        return self.runner.stats_dict()


def model_actor_options(cfg: WorkflowConfig) -> tuple[int, dict]:
    """(number of actors, actor options) for this cluster and workflow."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus:
        n = cfg.ray.model_actors or gpus * cfg.ray.model_actors_per_gpu
        num_gpus = 1.0 / cfg.ray.model_actors_per_gpu
    else:
        n, num_gpus = cfg.ray.model_actors or max(1, int(resources.get("CPU", 1) // 4)), 0.0
    return n, {"num_cpus": cfg.ray.num_cpus_per_model_actor, "num_gpus": num_gpus,
               "runtime_env": {"env_vars": worker_env()}}


class RayModelPool:
    """Client side, in a CPU worker: batches go round-robin over the actors (from a
    random start, so workers do not all begin on the same actor); results are
    ObjectRefs collected at the end of the unit."""

    def __init__(self, actors: list):
        start = random.randrange(len(actors))
        self._next = itertools.cycle(actors[start:] + actors[:start])

    def submit(self, images, meta, verdicts, score_all):
        return next(self._next).run.remote(images, meta, verdicts, score_all)

    def result(self, ref):
        return ray.get(ref)
