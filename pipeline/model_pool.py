"""The model pool on Ray: ModelActors that load the model steps once each (one GPU
per actor when the cluster has GPUs, else CPU actors), and the client a CPU worker
uses to send them batches without waiting.

Plain actors rather than Ray Data's `map_batches`: a unit (its shard, its ledger, its
resume marker) stays the unit of work and accounting, written by the worker that
loaded it; see bench/README.md ("Model pool: Ray actors vs Ray Data") for the measurement behind the choice.

A step that raises on one sample is handled inside the actor (pipeline/step_guard.py).
An actor that dies on a batch (a native crash, out of host memory) is restarted by Ray,
which runs the batch once more; if it dies again, the client sends the batch again in
halves, and so on, until the sample that kills it is alone: it fails as
`model_pool_error`, the others end as they would have. The batch's data stays in the
object store until its verdicts are in, so it can be sent again.

A sticky CUDA error (pipeline/step_guard.py: after an illegal memory access or a
device-side assert every later CUDA call of the process fails) is handled as such a
death: the actor notes it in the build's PoolHealth and ends its own process, so Ray
replaces it and runs the batch again on the fresh one; a sample that breaks the device
every time ends alone as `model_pool_error`. Swallowed per batch, it would fail every
later batch of that actor.
"""

from __future__ import annotations

import itertools
import os
import random
import sys
import time
from dataclasses import dataclass

import ray

from pipeline.config import WorkflowConfig
from pipeline.pool_health import failed_batch_count, find_pool_health
from pipeline.step_chain import build_model_runner, score_columns
from pipeline.step_guard import DeviceBrokenError
from pipeline.unit_scheduler import RESTART_TIMEOUT_S, WORKER_DEATHS, first_line
from pipeline.verdict import Verdict
from pipeline.worker_env import worker_env
from steps.devices import set_cpu_fallback
from steps.placement import check_placement


@ray.remote(max_restarts=-1, max_task_retries=1)
class ModelActor:
    def __init__(self, cfg_json: str, health_name: str | None = None):
        cfg = WorkflowConfig.model_validate_json(cfg_json)
        self.health = health = find_pool_health(health_name)  # the build's PoolHealth (None outside a build)
        if health is not None and ray.get_runtime_context().was_current_actor_reconstructed:
            ray.get(health.actor_restarted.remote())
        self.warnings: list[str] = []
        set_cpu_fallback(cfg.ray.allow_cpu_fallback)
        self.runner = build_model_runner(cfg, self.warnings, failed_batch_count(health))
        # what each step really runs on; a GPU asked for and not used stops the build here
        gpus = len(ray.get_gpu_ids())
        self.devices = {s.name: check_placement(s, gpus, cfg.ray.allow_cpu_fallback, self.warnings) for s in self.runner.steps}

    def describe(self) -> dict:
        """Score columns of the model filters, load warnings and what each step runs on;
        also proves the models loaded."""
        return {"score_columns": score_columns(self.runner.filters), "warnings": self.warnings,
                "steps": [s.name for s in self.runner.steps], "pid": os.getpid(), "devices": self.devices}

    def run(self, batch: tuple, score_all: bool, positions: list[int]):
        """The samples at `positions` of `batch` (images, meta, verdicts)."""
        images, meta, verdicts = batch
        pick = lambda xs: [xs[i] for i in positions]  # noqa: E731
        try:
            return self.runner.run(pick(images), pick(meta), pick(verdicts), score_all)
        except DeviceBrokenError as err:
            self._replace_process(err)

    def _replace_process(self, err: DeviceBrokenError):
        """End this process so Ray starts a fresh one (with a working CUDA context) and
        runs the batch again there: an actor death, isolated as any other."""
        note = f"{err} (pid {os.getpid()}: the model actor was restarted)"
        print(f"model actor: sticky device error in step {note}", file=sys.stderr, flush=True)
        if self.health is not None:
            ray.get(self.health.device_error.remote(note))
        os._exit(1)

    def final_captions(self, batch: tuple, score_all: bool, positions: list[int]):
        """The second trip (after caption fusion): `batch` is (captions, verdicts)."""
        captions, verdicts = batch
        return self.runner.score_final_captions([captions[i] for i in positions], [verdicts[i] for i in positions])

    def stats(self) -> dict:
        return self.runner.stats_dict()


def model_actor_options(cfg: WorkflowConfig, warnings: list[str] | None = None) -> tuple[int, dict]:
    """(number of actors, actor options) for this cluster and workflow. With GPUs, actors x
    GPUs per actor never exceeds the cluster's GPUs (more would wait for them forever):
    `ray.model_actors`, when set, decides how many actors share a GPU."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus:
        n = cfg.ray.model_actors or gpus * cfg.ray.model_actors_per_gpu
        per_gpu = max(cfg.ray.model_actors_per_gpu, -(-n // gpus))  # ceil: enough actors per GPU for all n to fit
        num_gpus, used = 1.0 / per_gpu, -(-n // per_gpu)
        if used < gpus and warnings is not None:
            warnings.append(f"ray.model_actors = {n} leaves {gpus - used} of the cluster's {gpus} GPUs idle; "
                            "leave it unset to use them all")
    else:
        n, num_gpus = cfg.ray.model_actors or max(1, int(resources.get("CPU", 1) // 4)), 0.0
    return n, {"num_cpus": cfg.ray.num_cpus_per_model_actor, "num_gpus": num_gpus,
               "runtime_env": {"env_vars": worker_env()}}


@dataclass
class _InPool:
    """A batch (or a part of one) sent to an actor, with what it takes to send it again."""

    data: ray.ObjectRef  # (images, meta, verdicts)
    verdicts: list[Verdict]  # the client's copy, for a sample that kills the actor
    positions: list[int]
    score_all: bool
    actor: object
    ref: ray.ObjectRef
    method: str = "run"  # the ModelActor method: run, or final_captions


class RayModelPool:
    """Client side, in a CPU worker: batches go round-robin over the actors (from a
    random start, so workers do not all begin on the same actor); results are
    collected at the end of the unit."""

    def __init__(self, actors: list):
        start = random.randrange(len(actors))
        self._next = itertools.cycle(actors[start:] + actors[:start])

    def submit(self, images, meta, verdicts, score_all):
        return self._send(ray.put((images, meta, verdicts)), verdicts, list(range(len(images))), score_all)

    def submit_final_captions(self, captions, verdicts):
        return self._send(ray.put((captions, verdicts)), verdicts, list(range(len(captions))), False, "final_captions")

    def _send(self, data, verdicts, positions, score_all, method="run") -> _InPool:
        actor = next(self._next)
        ref = getattr(actor, method).remote(data, score_all, positions)
        return _InPool(data, verdicts, positions, score_all, actor, ref, method)

    def result(self, sent: _InPool) -> list[Verdict]:
        try:
            return ray.get(sent.ref)
        except WORKER_DEATHS as err:  # died twice on it (Ray already ran it once more on the restarted actor)
            if len(sent.positions) == 1:
                v = sent.verdicts[sent.positions[0]].copy()
                v.fail("model_pool_error", f"the model actor died twice while processing this sample ({first_line(err)})")
                return [v]
            _wait_until_back(sent.actor)
            half = len(sent.positions) // 2
            parts = [self._send(sent.data, sent.verdicts, p, sent.score_all, sent.method)
                     for p in (sent.positions[:half], sent.positions[half:])]
            return [v for part in parts for v in self.result(part)]


def _wait_until_back(actor) -> None:
    """Until the restarted actor answers (a call sent while it restarts could fail as if
    the batch had killed it again), or RESTART_TIMEOUT_S."""
    deadline = time.monotonic() + RESTART_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            ray.get(actor.describe.remote())
            return
        except WORKER_DEATHS:
            time.sleep(0.5)
