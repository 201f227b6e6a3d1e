"""manifest.json: the config, versions, counts per status and reason, timings."""

from __future__ import annotations

import json
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from pipeline.ledger import ledger_counts
from pipeline.output_layout import MANIFEST_FILE, atomic_write_bytes
from pipeline.version import PIPELINE_VERSION

VERSIONED = ["img2dataset", "ray", "webdataset", "opencv-python-headless", "av", "pyarrow", "numpy", "pillow", "torch"]


def versions() -> dict[str, str]:
    out = {"pipeline": PIPELINE_VERSION, "python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in VERSIONED:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def write_manifest(out_dir: Path, config: dict, timings: dict, extra: dict) -> dict:
    counts = ledger_counts(out_dir)
    manifest = {
        "config": config,
        "versions": versions(),
        "counts": {k: counts[k] for k in ("inputs", "status", "reasons")},
        "shards": counts["shards"],
        "timings": timings,
        **extra,
    }
    path = Path(out_dir) / MANIFEST_FILE
    atomic_write_bytes(path, json.dumps(manifest, indent=2, sort_keys=False).encode("utf-8"))
    return manifest


def refresh_counts(out_dir: Path, extra: dict) -> dict:
    """After a pass that changes the ledger (pipeline/dedup.py run alone): counts and shards again, plus `extra`."""
    path = Path(out_dir) / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    counts = ledger_counts(out_dir)
    manifest.update({"counts": {k: counts[k] for k in ("inputs", "status", "reasons")}, "shards": counts["shards"], **extra})
    atomic_write_bytes(path, json.dumps(manifest, indent=2, sort_keys=False).encode("utf-8"))
    return manifest
