"""The environment Ray worker processes get: on a cluster they do not inherit the
driver's, so the settings that decide offline behaviour and which steps exist are
passed along as the driver has them (set them where the job starts)."""

from __future__ import annotations

import os

PASSED_TO_WORKERS = (
    "NO_ALBUMENTATIONS_UPDATE",  # set by `import pipeline`
    "HF_HUB_OFFLINE",  # 1: models from the hub cache only
    "YOLO_OFFLINE",  # 1: ultralytics never calls home (and never downloads weights)
    "YOLO_AUTOINSTALL",
    "ASCAN_T2I_STEPS",  # extra step modules (steps/registry.py)
)


def worker_env() -> dict[str, str]:
    return {k: os.environ[k] for k in PASSED_TO_WORKERS if k in os.environ}
