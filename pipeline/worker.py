"""The Ray actor that processes units. Filters (and their models) load once per actor."""

from __future__ import annotations

import os
from pathlib import Path

import ray

from stages.registry import build_stages
from pipeline.config import WorkflowConfig
from pipeline.process import score_columns
from pipeline.sources import Unit
from pipeline.units import process_unit

# Offline-safe defaults for libraries that phone home at import.
WORKER_ENV = {"NO_ALBUMENTATIONS_UPDATE": "1", "YOLO_OFFLINE": "1", "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "0")}


@ray.remote
class UnitWorker:
    def __init__(self, cfg_json: str, out_dir: str):
        self.cfg = WorkflowConfig.model_validate_json(cfg_json)
        self.out_dir = Path(out_dir)
        self.filters = build_stages(self.cfg.filters, "filter")

    def score_columns(self) -> list[str]:
        return score_columns(self.filters)

    def process(self, unit: Unit) -> dict:
        return process_unit(unit, self.cfg, self.filters, self.out_dir)
