"""Process one work unit end to end, without Ray: load (download, read or decode
video) -> filters -> shard + ledger. The Ray worker wraps this; tests call it alone."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from filters.base import Filter
from pipeline.config import WorkflowConfig
from pipeline.download import download_unit
from pipeline.local_files import load_file_unit
from pipeline.process import StreamingFilter, score_columns
from pipeline.sample import Sample
from pipeline.sources import Unit
from pipeline.video import load_video_unit
from pipeline.writer import write_unit

LOADERS = {"url": download_unit, "file": load_file_unit, "video": load_video_unit}


def process_unit(unit: Unit, cfg: WorkflowConfig, filters: list[Filter], out_dir: Path) -> dict:
    t0 = time.perf_counter()
    stream = StreamingFilter(filters, cfg.score_all)
    samples = LOADERS[unit.kind](unit.items, cfg.download, stream.add)  # filters run as samples arrive
    stream.flush()
    if unit.kind != "video" and len(samples) != len(unit.items):  # accounting guard, before anything is written
        raise RuntimeError(f"unit {unit.name}: {len(unit.items)} inputs but {len(samples)} ledger rows")
    t1 = time.perf_counter()
    write_unit(out_dir, unit.name, samples, score_columns(filters))
    t2 = time.perf_counter()
    filter_s = sum(stream.timings.values())
    return {
        "unit": unit.name,
        "counts": dict(Counter(s.status for s in samples)),
        "timings": {"load_s": t1 - t0 - filter_s, "filter_s": filter_s, "write_s": t2 - t1,
                    **{f"filter_{k}_s": v for k, v in stream.timings.items()}},
    }


def write_failed_unit(unit: Unit, error: str, out_dir: Path, columns: list[str]) -> dict:
    """A unit whose worker kept crashing: every input still gets a failed ledger row."""
    samples = []
    for i, it in enumerate(unit.items):
        src = {"kind": unit.kind, "caption": it.get("caption", "")}
        src["url" if unit.kind == "url" else "path"] = it.get("url") or it.get("path")
        s = Sample(it["key"], i, src)
        s.fail(f"worker_error: {error}")
        samples.append(s)
    write_unit(out_dir, unit.name, samples, columns)
    return {"unit": unit.name, "counts": {"failed": len(samples)}, "timings": {}}
