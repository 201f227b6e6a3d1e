"""manifest.json: the config, versions, counts per status and reason, timings."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections import Counter
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.version import PIPELINE_VERSION
from pipeline.writer import LEDGER_DIR

VERSIONED = ["img2dataset", "ray", "webdataset", "opencv-python-headless", "av", "pyarrow", "numpy", "pillow", "torch"]


def versions() -> dict[str, str]:
    out = {"pipeline": PIPELINE_VERSION, "python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in VERSIONED:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def read_ledger(out_dir: Path, columns: list[str] | None = None):
    files = sorted((Path(out_dir) / LEDGER_DIR).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"{out_dir} has no ledger/*.parquet; is it a build_dataset output folder?")
    import pyarrow as pa

    return pa.concat_tables([pq.read_table(f, columns=columns) for f in files], promote_options="default")


def ledger_counts(out_dir: Path) -> dict:
    t = read_ledger(out_dir, ["status", "reason", "shard"])
    status = t.column("status").to_pylist()
    reason = t.column("reason").to_pylist()
    by_reason: dict[str, Counter] = {}
    for st, rs in zip(status, reason):
        if st != "kept":
            by_reason.setdefault(st, Counter())[rs] += 1
    counts = Counter(status)
    return {
        "inputs": len(status),
        "status": {k: counts.get(k, 0) for k in ("kept", "rejected", "failed")},
        "reasons": {st: dict(c.most_common()) for st, c in sorted(by_reason.items())},
        "shards": sorted({s for s in t.column("shard").to_pylist() if s}),
    }


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
    path = Path(out_dir) / "manifest.json"
    tmp = path.with_name(f"manifest.json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False))
    os.replace(tmp, path)
    return manifest
