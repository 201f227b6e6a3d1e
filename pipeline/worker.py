"""The Ray actor that processes units on a CPU: download, decode, cheap filters, and
the hand-off to the model pool. No model loads here."""

from __future__ import annotations

from pathlib import Path

import ray

from pipeline import decode_deadline
from pipeline.config import WorkflowConfig
from pipeline.model_pool import RayModelPool
from pipeline.pool_health import failed_batch_count, find_pool_health
from pipeline.sources import Unit
from pipeline.step_chain import build_chain
from pipeline.units import process_unit, run_unit


@ray.remote
class UnitWorker:
    def __init__(self, cfg_json: str, out_dir: str, model_actors: list, model_columns: list[str], health_name: str | None = None):
        self.cfg = WorkflowConfig.model_validate_json(cfg_json)
        self.out_dir = Path(out_dir)
        pool = RayModelPool(model_actors) if model_actors else None
        self.chain = build_chain(self.cfg, pool, model_columns, failed_batch_count(find_pool_health(health_name)))
        decode_deadline.arm(self.cfg.images.max_decode_seconds, self.out_dir)

    def score_columns(self) -> list[str]:
        return self.chain.score_columns

    def process(self, unit: Unit, timed_out: dict[str, str]) -> dict:
        """Run a whole unit and write its shard and ledger. `timed_out`: digests of images
        that overran the decode deadline in an earlier run of it (they fail at once)."""
        decode_deadline.start_unit(unit.name, timed_out)
        return process_unit(unit, self.cfg, self.chain, self.out_dir)

    def process_part(self, part: Unit, timed_out: dict[str, str]) -> tuple[list, dict]:
        """Run some items of a unit (isolating one that kills workers); the scheduler writes."""
        decode_deadline.start_unit(part.name, timed_out)
        samples, stats = run_unit(part, self.cfg, self.chain)
        return samples, stats.to_dict()
