"""Process one work unit end to end, without Ray: load (download, read, decode video or
shard) -> step chain (cheap filters here, model steps in the pool, fusion here) ->
shard + ledger. The Ray worker wraps this; tests call it alone."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from pipeline.batcher import SampleBatcher
from pipeline.config import WorkflowConfig
from pipeline.decode import ImageDecoder
from pipeline.download import download_unit
from pipeline.local_files import load_file_unit
from pipeline.sample import Sample
from pipeline.shard_source import load_shard_unit
from pipeline.sources import Unit
from pipeline.step_chain import StepChain
from pipeline.step_stats import StepStats
from pipeline.verdict import Status
from pipeline.video import load_video_unit
from pipeline.writer import write_unit

LOADERS = {"url": download_unit, "file": load_file_unit, "video": load_video_unit, "webdataset": load_shard_unit}
ROWS_PER_ITEM = {"url", "file"}  # kinds with exactly one ledger row per input item


def process_unit(unit: Unit, cfg: WorkflowConfig, chain: StepChain, out_dir: Path) -> dict:
    """Run the unit and write its shard and ledger; returns counts and step figures."""
    t0 = time.perf_counter()
    samples, stats = run_unit(unit, cfg, chain)
    t1 = time.perf_counter()
    write_unit(out_dir, unit.name, samples, chain.score_columns)
    t2 = time.perf_counter()
    stats.add("write", "cpu", t2 - t1, len(samples))
    stats.add_wall("cpu", t2 - t0)
    return {"unit": unit.name, "counts": dict(Counter(s.status for s in samples)), "steps": stats.to_dict()}


def run_unit(unit: Unit, cfg: WorkflowConfig, chain: StepChain) -> tuple[list[Sample], StepStats]:
    """Load the unit's items and run every step on them; nothing is written."""
    t0 = time.perf_counter()
    stats = StepStats()
    batcher = SampleBatcher(chain, stats)
    decoder = ImageDecoder.for_images(cfg.images, chain.wants_pixels)  # no pixels for sizes the first filters reject
    samples = LOADERS[unit.kind](unit.items, cfg.download, decoder, batcher.add)  # steps run as samples arrive
    t_loaded = time.perf_counter()
    batcher.finish()
    batcher.annotate_kept(samples)  # may wait on the pool again (final-caption scores)
    if unit.kind in ROWS_PER_ITEM and len(samples) != len(unit.items):  # accounting guard, before anything is written
        raise RuntimeError(f"unit {unit.name}: {len(unit.items)} inputs but {len(samples)} ledger rows")
    loaded = sum(1 for s in samples if s.image is not None or s.status != Status.FAILED)
    stats.add("load", "cpu", t_loaded - t0 - batcher.busy_s, loaded)
    stats.waiting_for_models_s += batcher.waited_s
    return samples, stats


def failed_sample(unit: Unit, i: int, error: str) -> Sample:
    """The ledger row of item i of a unit that could not be processed ('category: message')."""
    it = unit.items[i]
    s = Sample(it.key, i, it.source_fields(unit.kind))
    s.fail(error)
    return s


def write_failed_unit(unit: Unit, error: str, out_dir: Path, columns: list[str]) -> dict:
    """A unit whose worker kept raising: every input still gets a failed ledger row."""
    samples = [failed_sample(unit, i, f"worker_error: {error}") for i in range(len(unit.items))]
    write_unit(out_dir, unit.name, samples, columns)
    return {"unit": unit.name, "counts": {str(Status.FAILED): len(samples)}, "steps": StepStats().to_dict()}
