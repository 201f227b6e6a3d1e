"""The layout of a build's output folder, shared by everything that writes or reads it
(the build, filter-report, annotate.refuse). No heavy imports: the report starts fast."""

from __future__ import annotations

import os
from pathlib import Path

SHARD_DIR = "shards"  # NNNNN.tar: WebDataset shards of kept samples, one per unit
LEDGER_DIR = "ledger"  # NNNNN.parquet: one row per input item; a unit is done when its ledger exists
REJECTS_DIR = "rejects"  # NNNNN.tar: thumbnails of some rejected samples, for filter-report
STATE_FILE = "_state.json"  # the run's config and input fingerprint, written when it starts
MANIFEST_FILE = "manifest.json"  # written when a run ends
TMP_SUFFIX = ".tmp"  # files being written; renamed when complete, deleted by --resume


def atomic_path(path: Path) -> Path:
    """Where to write `path` before renaming it into place."""
    return path.with_name(f"{path.name}.{os.getpid()}{TMP_SUFFIX}")
