"""Hands units to the CPU workers, one at a time each, and survives their deaths.

A unit normally runs whole on one worker, which writes its shard and ledger. When the
worker process dies on it (out of memory, a native decoder crash, SIGKILL, its node
lost), the unit runs once more whole (a lost node is not the unit's fault); if it dies
again, the unit is split in halves and each half runs as a part, split again on every
death, until the item that kills a worker is alone: it is written as
`failed: worker_crash`, and every other item ends as it would have without it. Parts
send their samples back here and the unit is written once all its parts are in, so
exactly-once resume still holds (a unit is done when its ledger exists).

A worker that ends itself because a decode overran `images.max_decode_seconds` leaves a
note naming the image (pipeline/decode_deadline.py): the job runs again as it was, with
that image marked, and it fails as `decode_timeout` without costing a bisection.

A unit that raises an ordinary exception (a bug, not a death) is retried up to
MAX_UNIT_ATTEMPTS times, then all its inputs are written as `failed: worker_error`.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import ray
from ray.exceptions import (
    NodeDiedError,
    OutOfMemoryError,
    RayActorError,
    WorkerCrashedError,
)

from pipeline import decode_deadline
from pipeline.sample import Sample
from pipeline.sources import Unit
from pipeline.step_guard import BrokenStepError
from pipeline.step_stats import StepStats
from pipeline.units import failed_sample, write_failed_unit
from pipeline.writer import OutputFullError, write_unit

MAX_UNIT_ATTEMPTS = 3
RESTART_TIMEOUT_S = 300.0  # a worker actor not back by then (its node is gone) gets no more work
WORKER_DEATHS = (RayActorError, WorkerCrashedError, OutOfMemoryError, NodeDiedError)


@dataclass
class Job:
    unit: Unit
    positions: list[int] | None = None  # a part: positions of its items in the unit; None = whole unit
    attempt: int = 1
    timed_out: dict[str, str] = field(default_factory=dict)  # digest -> message: images that overran the decode deadline

    def part(self, positions: list[int]) -> Job:
        return Job(self.unit, positions, timed_out=self.timed_out)

    @property
    def items(self) -> list[dict]:
        return self.unit.items if self.positions is None else [self.unit.items[i] for i in self.positions]


@dataclass
class _Assembly:
    """The parts of one unit, gathered until none is outstanding."""

    outstanding: int = 0
    samples: list[Sample] = field(default_factory=list)


def first_line(err: Exception) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"


class UnitScheduler:
    def __init__(self, workers: list, out: Path, columns: list[str], on_unit_done):
        self.workers, self.out, self.columns, self.on_unit_done = workers, out, columns, on_unit_done
        self.queue: list[Job] = []
        self.in_flight: dict = {}  # ObjectRef -> (worker, job); job None = a ping to a restarting worker
        self.restarting: dict = {}  # worker -> deadline
        self.idle: list = []  # workers with nothing to do
        self.assemblies: dict[str, _Assembly] = {}
        self.stats = StepStats()
        self.worker_errors: list[str] = []
        self.worker_deaths: list[str] = []  # every death of a worker while it ran a job

    def run(self, units: list[Unit]) -> None:
        self.queue = [Job(u) for u in reversed(units)]
        self.idle = list(self.workers)
        while self.queue or self._jobs_in_flight():
            self._dispatch()
            if self.queue and not self._jobs_in_flight() and not self.restarting:
                raise RuntimeError(f"every CPU worker died and none came back; {len(self.queue)} jobs left undone")
            ready, _ = ray.wait(list(self.in_flight), num_returns=1, timeout=0.5) if self.in_flight else ([], [])
            if not self.in_flight:
                time.sleep(0.5)
            for ref in ready:
                self._collect(ref)
            self._ping_restarting()

    def _jobs_in_flight(self) -> bool:
        return any(job is not None for _, job in self.in_flight.values())

    def _dispatch(self) -> None:
        """Queued jobs to idle workers (a job requeued after a death goes to whoever is free)."""
        while self.queue and self.idle:
            worker, job = self.idle.pop(), self.queue.pop()
            unit = job.unit if job.positions is None else Unit(job.unit.unit_id, job.unit.kind, job.items)
            call = worker.process if job.positions is None else worker.process_part
            self.in_flight[call.remote(unit, job.timed_out)] = (worker, job)

    def _collect(self, ref) -> None:
        worker, job = self.in_flight.pop(ref)
        try:
            result = ray.get(ref)
        except WORKER_DEATHS as err:
            if job is not None:
                overran = decode_deadline.take_notes(self.out, job.unit.name)
                if overran.keys() - job.timed_out.keys():  # not the items' fault: again, without those images
                    self.worker_deaths.append(f"unit {job.unit.name}: decode_timeout: the worker ended itself, "
                                              "a decode overran images.max_decode_seconds")
                    self.queue.append(Job(job.unit, job.positions, job.attempt, {**job.timed_out, **overran}))
                else:
                    self.worker_deaths.append(f"unit {job.unit.name}: {first_line(err)}")
                    self._died(job, err)
            # Ray restarts the actor; a call sent while it restarts would fail as if the
            # item had killed it again, so it gets work only once it answers a ping.
            self.restarting.setdefault(worker, time.monotonic() + RESTART_TIMEOUT_S)
            return
        except (OutputFullError, BrokenStepError) as err:  # the disk or a broken step, not the unit: stop the build, --resume finishes it
            raise getattr(err, "cause", None) or err from None
        except Exception as err:  # noqa: BLE001 - a unit that raises must not end the job
            if job is None:
                return  # a failed ping: still restarting, pinged again
            self._raised(job, err)
        else:
            if job is None:  # a ping: the worker is back
                self.restarting.pop(worker, None)
            else:
                self._finished(job, result)
        self.idle.append(worker)

    def _ping_restarting(self) -> None:
        pinging = {w for w, job in self.in_flight.values() if job is None}
        for worker, deadline in list(self.restarting.items()):
            if time.monotonic() > deadline:  # its node is gone for good: no more work for it
                del self.restarting[worker]
            elif worker not in pinging:
                self.in_flight[worker.score_columns.remote()] = (worker, None)

    def _finished(self, job: Job, result) -> None:
        if job.positions is None:
            self.stats.merge(result["steps"])
            self.on_unit_done(result["counts"])
            return
        samples, steps = result
        self.stats.merge(steps)
        for s in samples:
            s.index = job.positions[s.index]  # back to the item's place in the unit
        self._part_done(job, samples)

    def _died(self, job: Job, err: Exception) -> None:
        if job.positions is None and job.attempt == 1:  # maybe a lost node, not a poison item: once more whole
            self.queue.append(Job(job.unit, None, 2, job.timed_out))
            return
        positions = job.positions if job.positions is not None else list(range(len(job.unit.items)))
        if job.positions is None:
            self.assemblies[job.unit.name] = _Assembly()
        if len(positions) == 1:
            if job.attempt == 1:
                self.queue.append(Job(job.unit, positions, 2, job.timed_out))
                return
            (i,) = positions
            msg = f"the worker process died twice while processing this item ({first_line(err)})"
            self._part_done(job, [failed_sample(job.unit, i, f"worker_crash: {msg}")])
            self.worker_errors.append(f"unit {job.unit.name} item {i}: worker_crash: {first_line(err)}")
            return
        half = len(positions) // 2
        self.assemblies[job.unit.name].outstanding += 2
        self.queue += [job.part(positions[half:]), job.part(positions[:half])]
        if job.positions is not None:
            self.assemblies[job.unit.name].outstanding -= 1  # this part is replaced by its halves

    def _raised(self, job: Job, err: Exception) -> None:
        if job.attempt < MAX_UNIT_ATTEMPTS:
            self.queue.append(Job(job.unit, job.positions, job.attempt + 1, job.timed_out))
            return
        msg = first_line(err)
        self.worker_errors.append(f"unit {job.unit.name}: {msg}")
        if job.positions is None:
            self.on_unit_done(write_failed_unit(job.unit, msg, self.out, self.columns)["counts"])
        else:
            self._part_done(job, [failed_sample(job.unit, i, f"worker_error: {msg}") for i in job.positions])

    def _part_done(self, job: Job, samples: list[Sample]) -> None:
        asm = self.assemblies[job.unit.name]
        asm.samples += samples
        if job.positions is not None:
            asm.outstanding -= 1
        if asm.outstanding == 0:
            del self.assemblies[job.unit.name]
            write_unit(self.out, job.unit.name, asm.samples, self.columns)
            self.on_unit_done(dict(Counter(s.status for s in asm.samples)))
