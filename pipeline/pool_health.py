"""One small actor per build that every CPU worker and model actor reports to, so that
what must be counted across the pool is:

- batches a step failed whole, in a row, whichever process ran them: K of them stop the
  build (pipeline/step_guard.py). Counted per process, a broken step on N actors would
  take about K x N batches, and an actor restart would start its count again;
- model actor restarts (each new incarnation says so when it starts), and the sticky
  device errors that caused them, for the manifest.
"""

from __future__ import annotations

import uuid

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from pipeline.step_guard import FailedBatchCount

MAX_NOTES = 20  # device errors kept for the manifest


@ray.remote(num_cpus=0)
class PoolHealth:
    def __init__(self):
        self.failed = FailedBatchCount()
        self.restarts = 0
        self.device_errors: list[str] = []

    def record(self, step: str, failed_whole: bool) -> int:
        return self.failed.record(step, failed_whole)

    def actor_restarted(self) -> None:
        self.restarts += 1

    def device_error(self, note: str) -> None:
        if len(self.device_errors) < MAX_NOTES:
            self.device_errors.append(note)

    def summary(self) -> dict:
        return {"model_actor_restarts": self.restarts, "device_errors": list(self.device_errors)}


def start_pool_health():
    """(actor, name): the processes of the pool find it by its name (an actor handle among
    a restartable actor's constructor arguments would live in the object store, which Ray
    warns may break the restart)."""
    name = f"pool_health_{uuid.uuid4().hex}"
    # on the driver's node: a node lost mid-build must not take the pool's count with it
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    return PoolHealth.options(name=name, scheduling_strategy=here).remote(), name


def find_pool_health(name: str | None):
    return ray.get_actor(name) if name else None


class PoolFailedBatchCount:
    """The StepGuard counter of a process in the pool: the count lives in PoolHealth."""

    def __init__(self, health):
        self.health = health

    def record(self, step: str, failed_whole: bool) -> int:
        return ray.get(self.health.record.remote(step, failed_whole))


def failed_batch_count(health) -> PoolFailedBatchCount | None:
    """The counter for a StepGuard: the pool's when there is one (None: the guard's own)."""
    return PoolFailedBatchCount(health) if health is not None else None
