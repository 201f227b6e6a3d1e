"""Run a dataset build on Ray: plan units, skip the ones already done (resume),
process the rest on a pool of UnitWorker actors, remove duplicates across the build
(pipeline/dedup.py), then write manifest.json."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import ray
from tqdm import tqdm

from pipeline.config import WorkflowConfig
from pipeline.dedup import run_dedup
from pipeline.manifest import write_manifest
from pipeline.model_pool import ModelActor, model_actor_options
from pipeline.output_layout import (
    EMBED_DIR,
    LEDGER_DIR,
    REJECTS_DIR,
    SHARD_DIR,
    STATE_FILE,
    TMP_SUFFIX,
    atomic_write_bytes,
)
from pipeline.pool_health import start_pool_health
from pipeline.pool_start import wait_for_actors
from pipeline.sources import fingerprint, plan_units
from pipeline.step_chain import has_model_steps
from pipeline.unit_scheduler import UnitScheduler
from pipeline.worker import UnitWorker
from pipeline.worker_env import worker_env


class OutputError(ValueError):
    """The output folder cannot be used as asked; the message says what to do."""


def _prepare_output(out: Path, cfg: WorkflowConfig, fp: str, resume: bool) -> None:
    state_path = out / STATE_FILE
    config = cfg.model_dump(mode="json")
    if out.exists() and any(out.iterdir()):
        if not resume:
            raise OutputError(f"output {out} is not empty; pass --resume to continue that run, or choose a new --output")
        if state_path.exists():
            old = json.loads(state_path.read_text())
            if old["fingerprint"] != fp or old["config"] != config:
                changed = sorted(k for k in config if config.get(k) != old["config"].get(k)) or ["sources (the inputs)"]
                raise OutputError(
                    f"--resume: {out} was started with a different workflow or inputs (differs in: {', '.join(changed)}); "
                    "resume with the same config and inputs, or choose a new --output"
                )
    for sub in (SHARD_DIR, LEDGER_DIR, REJECTS_DIR, EMBED_DIR):
        (out / sub).mkdir(parents=True, exist_ok=True)
        for stale in (out / sub).glob(f"*{TMP_SUFFIX}"):  # partial files of a killed run
            stale.unlink()
    atomic_write_bytes(state_path, json.dumps({"fingerprint": fp, "config": config}).encode("utf-8"))


def init_ray(num_cpus: int | None = None) -> bool:
    """Connect to the cluster in RAY_ADDRESS (ray job submit sets it) or start a
    local Ray bound to loopback. Returns True when this call started Ray."""
    if ray.is_initialized():
        return False
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=True)
    else:
        ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, num_cpus=num_cpus, log_to_driver=True)
    return True


def run_build(cfg: WorkflowConfig, output_dir: str | Path, resume: bool = False, show_progress: bool = True) -> dict:
    t_start = time.time()
    out = Path(output_dir).absolute()
    plan_warnings: list[str] = []
    units = plan_units(cfg, plan_warnings)
    for w in plan_warnings:  # said once, before any work; also kept in the manifest
        print(f"warning: {w}", file=sys.stderr)
    t_plan = time.time() - t_start
    _prepare_output(out, cfg, fingerprint(units), resume)
    done = {p.stem for p in (out / LEDGER_DIR).glob("*.parquet")}
    todo = [u for u in units if u.name not in done]

    started_ray = init_ray()
    try:
        stats = _run_units(cfg, out, todo, len(units), show_progress)
        if cfg.dedup.enabled:  # every time, resumed or not: the pass is idempotent and finishes a killed one
            d = cfg.dedup
            stats["dedup"] = run_dedup(out, d.max_distance, d.near, d.semantic, d.eps, d.clusters)
    finally:
        if started_ray:
            ray.shutdown()
    timings = {"total_s": round(time.time() - t_start, 3), "plan_s": round(t_plan, 3)}
    extra = {
        "output": str(out),
        "units": {"total": len(units), "done_before_this_run": len(done), "processed_now": len(todo)},
        **stats,
        "warnings": plan_warnings + stats["warnings"],
    }
    return write_manifest(out, cfg.model_dump(mode="json"), timings, extra)


def _start_model_pool(cfg: WorkflowConfig, health_name: str | None = None) -> tuple[list, list[str], list[str], dict]:
    """(actors, model score columns, warnings, what each model step runs on). Loads every
    model step once per actor and fails here, before any unit runs, when a required model
    cannot be loaded, a GPU asked for is not used, or the actors cannot start in time."""
    if not has_model_steps(cfg):
        return [], [], [], {}
    warnings: list[str] = []
    n, options = model_actor_options(cfg, warnings)
    cfg_json = cfg.model_dump_json()
    actors = [ModelActor.options(**options).remote(cfg_json, health_name) for _ in range(n)]
    described = wait_for_actors(actors, options, cfg.ray.model_pool_start_timeout_s)
    return actors, described[0]["score_columns"], warnings + described[0]["warnings"], described[0]["devices"]


def _run_units(cfg: WorkflowConfig, out: Path, todo: list, total: int, show_progress: bool) -> dict:
    if not todo:
        return {"steps": {}, "worker_errors": [], "worker_deaths": [], "warnings": [], "pool": {}}
    health, health_name = start_pool_health()  # failed batches in a row across the pool, actor restarts
    actors, model_columns, warnings, devices = _start_model_pool(cfg, health_name)
    warnings = list(warnings)
    cpus = ray.cluster_resources().get("CPU", 1)
    free = cpus - len(actors) * cfg.ray.num_cpus_per_model_actor
    fits = max(1, int(free // cfg.ray.num_cpus_per_worker))
    if cfg.ray.num_workers and cfg.ray.num_workers > fits:
        # more actors than CPUs would wait for resources forever
        warnings.append(f"ray.num_workers = {cfg.ray.num_workers} does not fit beside the model pool on "
                        f"{cpus:g} CPUs; running {fits}")
    n_workers = min(cfg.ray.num_workers or fits, fits, len(todo))
    make = UnitWorker.options(
        num_cpus=cfg.ray.num_cpus_per_worker,
        max_restarts=-1,
        runtime_env={"env_vars": worker_env()},
    )
    cfg_json = cfg.model_dump_json()
    workers = [make.remote(cfg_json, str(out), actors, model_columns, health_name) for _ in range(n_workers)]
    # Surfaces a CPU step that cannot be built before any unit runs; gives the ledger's score columns.
    columns = ray.get([w.score_columns.remote() for w in workers])[0]

    counts: Counter = Counter()
    bar = tqdm(total=total, initial=total - len(todo), unit="shard", desc=f"build {cfg.name}", disable=not show_progress)

    def unit_done(unit_counts: dict) -> None:
        counts.update(unit_counts)
        bar.update(1)
        bar.set_postfix({k: counts.get(k, 0) for k in ("kept", "rejected", "failed")})

    scheduler = UnitScheduler(workers, out, columns, unit_done)
    try:
        scheduler.run(todo)
        actor_stats = ray.get([a.stats.remote() for a in actors])
        restarts = ray.get(health.summary.remote())
    finally:  # a build stopped by an error (a broken step, a full disk) must not leave its actors holding CPUs
        bar.close()
        for w in [*workers, *actors, health]:
            ray.kill(w)
    stats = scheduler.stats
    for s in actor_stats:
        stats.merge(s)
    pool = {"cpu_workers": n_workers, "model_actors": len(actors),
            "model_actor_gpus": (model_actor_options(cfg)[1]["num_gpus"] if actors else 0),
            # how long the CPU workers sat waiting on the model pool: high = the models are the bottleneck
            "cpu_waiting_for_models_s": round(stats.waiting_for_models_s, 3),
            **restarts}  # model_actor_restarts, and the device errors behind them
    steps = stats.summary()
    for name, runs_on in devices.items():  # the first actor's: all load the same steps on the same kind of node
        steps.setdefault(name, {})["runs_on"] = runs_on
    return {"steps": steps, "worker_errors": scheduler.worker_errors,
            "worker_deaths": scheduler.worker_deaths, "warnings": warnings, "pool": pool}
