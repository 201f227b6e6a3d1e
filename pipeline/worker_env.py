"""Offline-safe environment for Ray worker processes: libraries that phone home at
import (albumentations, ultralytics) or reach the Hub must not hang an offline cluster."""

from __future__ import annotations

import os

WORKER_ENV = {
    "NO_ALBUMENTATIONS_UPDATE": "1",
    "YOLO_OFFLINE": "1",
    "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "0"),
    # extra stage modules (stages/registry.py) must register in every worker too
    "ASCAN_T2I_STAGES": os.environ.get("ASCAN_T2I_STAGES", ""),
}
