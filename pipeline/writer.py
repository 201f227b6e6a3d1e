"""Write one unit's output: a WebDataset shard of its kept samples and its ledger.

Both are written under a temporary name and renamed when complete; the ledger is
renamed last, so a unit counts as done exactly when `ledger/NNNNN.parquet` exists.
A run killed at any moment leaves at most `.tmp` files, which resume deletes.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import webdataset as wds

from annotate.figures import LEDGER_FIGURES, ledger_figures
from pipeline.rejects import write_rejects
from pipeline.sample import Sample
from pipeline.version import PIPELINE_VERSION

SHARD_DIR, LEDGER_DIR = "shards", "ledger"
TMP_SUFFIX = ".tmp"

LEDGER_FIELDS = [
    ("key", pa.string()),
    ("url", pa.string()),  # the URL, or the path for local files and videos
    ("kind", pa.string()),
    ("status", pa.string()),
    ("reason", pa.string()),
    ("detail", pa.string()),
    ("shard", pa.string()),
    ("original_width", pa.int32()),
    ("original_height", pa.int32()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("video_time", pa.float64()),
    ("caption", pa.string()),  # the input's caption (alt text) and its other columns (JSON),
    ("source_extra", pa.string()),  # so `filter-report --export` can give back a URL list to rebuild from
    # kept samples with annotations: words of the training caption, objects detected, words read by OCR
    ("caption_words", pa.int32()),
    ("object_count", pa.int32()),
    ("ocr_words", pa.int32()),
]
SOURCE_KEYS = ("kind", "url", "path", "caption", "video_time")  # the rest of Sample.source: the input's extra columns


def ledger_schema(score_columns: list[str]) -> pa.Schema:
    return pa.schema(LEDGER_FIELDS + [(c, pa.float64()) for c in score_columns])


def sample_json(s: Sample) -> dict:
    h, w = s.image.height, s.image.width
    return {
        "key": s.key,
        "source": s.source,
        "sizes": {"original_width": s.image.original_width, "original_height": s.image.original_height, "width": w, "height": h},
        "scores": s.scores,
        "filters": s.filter_outputs,
        "annotations": s.annotations,
        "pipeline_version": PIPELINE_VERSION,
    }


def training_caption(s: Sample) -> str:
    """The fused caption when the fusion stage ran, else the alt text."""
    fused = s.annotations.get("fused")
    return fused["text"] if fused else (s.source.get("caption") or "")


def caption_figures(s: Sample) -> dict[str, int | None]:
    """The ledger's caption columns (None where the sample has no annotations)."""
    if s.status != "kept" or not s.annotations:
        return dict.fromkeys(LEDGER_FIGURES)
    return ledger_figures(s.annotations, s.source.get("caption"))


def _atomic_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.{os.getpid()}{TMP_SUFFIX}")


def write_shard(out_dir: Path, unit_name: str, kept: list[Sample]) -> str | None:
    if not kept:
        return None
    rel = f"{SHARD_DIR}/{unit_name}.tar"
    final = out_dir / rel
    tmp = _atomic_path(final)
    with open(tmp, "wb") as fh:
        sink = wds.TarWriter(fh)
        for s in kept:
            sink.write(
                {
                    "__key__": s.key,
                    "jpg": s.image.jpg,
                    "txt": training_caption(s),
                    "json": json.dumps(sample_json(s)).encode("utf-8"),
                }
            )
        sink.close()
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    return rel


def ledger_rows(samples: list[Sample], shard: str | None, score_columns: list[str]) -> dict[str, list]:
    cols = {name: [] for name, _ in LEDGER_FIELDS}
    cols.update({c: [] for c in score_columns})
    for s in samples:
        img = s.image
        cols["key"].append(s.key)
        cols["url"].append(s.source.get("url") or s.source.get("path"))
        cols["kind"].append(s.source.get("kind"))
        cols["status"].append(s.status)
        cols["reason"].append(s.reason)
        cols["detail"].append(s.detail)
        cols["shard"].append(shard if s.status == "kept" else None)
        cols["original_width"].append(img.original_width if img else None)
        cols["original_height"].append(img.original_height if img else None)
        cols["width"].append(img.width if img else None)
        cols["height"].append(img.height if img else None)
        cols["video_time"].append(s.source.get("video_time"))
        cols["caption"].append(s.source.get("caption"))
        cols["source_extra"].append(json.dumps({k: v for k, v in s.source.items() if k not in SOURCE_KEYS}))
        for name, value in caption_figures(s).items():
            cols[name].append(value)
        for c in score_columns:
            cols[c].append(s.scores.get(c))
    return cols


def write_ledger(out_dir: Path, unit_name: str, samples: list[Sample], shard: str | None, score_columns: list[str]) -> None:
    final = out_dir / LEDGER_DIR / f"{unit_name}.parquet"
    tmp = _atomic_path(final)
    table = pa.table(ledger_rows(samples, shard, score_columns), schema=ledger_schema(score_columns))
    pq.write_table(table, tmp)
    os.replace(tmp, final)


class OutputFullError(OSError):
    """The output folder cannot take more data: the build stops (the items are not at
    fault, so no row is written for them) and `--resume` finishes it once space is freed."""


def write_unit(out_dir: Path, unit_name: str, samples: list[Sample], score_columns: list[str]) -> None:
    samples = sorted(samples, key=lambda s: s.index)
    try:
        shard = write_shard(out_dir, unit_name, [s for s in samples if s.status == "kept"])
        write_rejects(out_dir, unit_name, samples)  # thumbnails of rejected samples, for filter-report
        write_ledger(out_dir, unit_name, samples, shard, score_columns)
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise
        for partial in out_dir.glob(f"*/{unit_name}.*{TMP_SUFFIX}"):  # give the space back
            partial.unlink(missing_ok=True)
        raise OutputFullError(
            err.errno,
            f"output folder {out_dir} cannot be written ({err.strerror}) while writing unit {unit_name}; "
            "free space (or fix the mount), then rerun with --resume: finished units are kept, this one is redone",
        ) from None
