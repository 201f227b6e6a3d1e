"""Waiting for the model actors to start, with a deadline: an actor asking for more than
the cluster has free (a GPU that is not there, CPUs the workers hold) would otherwise
wait for it forever, silently. The error names what is missing."""

from __future__ import annotations

import ray


class PoolStartError(RuntimeError):
    """The model actors did not start in time; the message says what they wait for."""


def wait_for_actors(actors: list, options: dict, timeout_s: float) -> list[dict]:
    """Each actor's describe(), in order; raises PoolStartError after `timeout_s`."""
    refs = [a.describe.remote() for a in actors]
    ready, pending = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
    if pending:
        for a in actors:
            ray.kill(a)
        raise PoolStartError(_not_started(len(pending), len(actors), options, timeout_s))
    return ray.get(refs)  # raises the first actor's set-up error, if any


def _not_started(waiting: int, total: int, options: dict, timeout_s: float) -> str:
    asks = {"CPU": float(options.get("num_cpus") or 0), "GPU": float(options.get("num_gpus") or 0)}
    free, have = ray.available_resources(), ray.cluster_resources()
    missing = {r: waiting * q - free.get(r, 0.0) for r, q in asks.items() if q and waiting * q > free.get(r, 0.0) + 1e-9}
    head = (f"{waiting} of {total} model actors did not start within ray.model_pool_start_timeout_s = {timeout_s:g} s; "
            f"each asks for {asks['CPU']:g} CPU and {asks['GPU']:g} GPU, the cluster has "
            f"{have.get('CPU', 0):g} CPU and {have.get('GPU', 0):g} GPU ({free.get('CPU', 0):g} CPU, {free.get('GPU', 0):g} GPU free)")
    if missing:
        need = ", ".join(f"{q:g} {r}" for r, q in missing.items())
        return (f"{head}: missing {need}. Lower ray.model_actors or ray.num_cpus_per_model_actor, "
                "or add nodes with those resources")
    return (f"{head}: nothing is missing, so they are still loading their models (a first download?); "
            "raise ray.model_pool_start_timeout_s")
