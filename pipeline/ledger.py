"""The ledger: one parquet file per unit under ledger/, one row per input item (kept,
rejected or failed, and why, with every score). Written here, read here."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from annotate.figures import LEDGER_FIGURES, ledger_figures
from pipeline.output_layout import LEDGER_DIR, atomic_write
from pipeline.sample import Sample
from pipeline.verdict import Status

LEDGER_FIELDS = [
    ("key", pa.string()),
    ("source", pa.string()),  # where the input came from: its URL, or the path of a local file, video or shard
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
    # what the text filter's recogniser read as text, where it read (filters/text.py: `words`)
    ("text_read", pa.string()),
    # every decoded sample: for the dataset-wide duplicate pass (pipeline/dedup.py) and its replay in what-if
    ("pixel_hash", pa.string()),
    ("phash", pa.string()),
]
RENAMED_COLUMNS = {"url": "source"}  # old name -> new name: read_ledger_file maps them


def row_detail(s: Sample) -> str:
    """The verdict's detail, plus which input text fields had bad code points escaped."""
    repaired = s.source.get("text_repaired")
    if not repaired:
        return s.detail
    note = f"input text not valid UTF-8, escaped as \\xNN/\\uXXXX in: {', '.join(repaired)}"
    return f"{s.detail}; {note}" if s.detail else note


def ledger_schema(score_columns: list[str]) -> pa.Schema:
    return pa.schema(LEDGER_FIELDS + [(c, pa.float64()) for c in score_columns])


def caption_figures(s: Sample) -> dict[str, int | None]:
    """The ledger's caption columns (None where the sample has no annotations)."""
    if s.status != Status.KEPT or not s.annotations:
        return dict.fromkeys(LEDGER_FIGURES)
    return ledger_figures(s.annotations, s.source.get("caption"))


def ledger_rows(samples: list[Sample], shard: str | None, score_columns: list[str]) -> dict[str, list]:
    cols = {name: [] for name, _ in LEDGER_FIELDS}
    cols.update({c: [] for c in score_columns})
    for s in samples:
        img = s.image
        cols["key"].append(s.key)
        cols["source"].append(s.source.get("url") or s.source.get("path"))
        cols["kind"].append(s.source.get("kind"))
        cols["status"].append(str(s.status))
        cols["reason"].append(s.reason)
        cols["detail"].append(row_detail(s))
        cols["shard"].append(shard if s.status == Status.KEPT else None)
        cols["original_width"].append(img.original_width if img else None)
        cols["original_height"].append(img.original_height if img else None)
        cols["width"].append(img.width if img else None)
        cols["height"].append(img.height if img else None)
        cols["video_time"].append(s.source.get("video_time"))
        cols["caption"].append(s.source.get("caption"))
        cols["source_extra"].append(json.dumps(s.source.get("extra") or {}))  # the input's own columns
        cols["pixel_hash"].append(s.hashes.get("pixel_hash"))
        cols["phash"].append(s.hashes.get("phash"))
        cols["text_read"].append((s.filter_outputs.get("text") or {}).get("words"))
        for name, value in caption_figures(s).items():
            cols[name].append(value)
        for c in score_columns:
            cols[c].append(s.scores.get(c))
    return cols


def write_ledger(out_dir: Path, unit_name: str, samples: list[Sample], shard: str | None, score_columns: list[str]) -> None:
    final = out_dir / LEDGER_DIR / f"{unit_name}.parquet"
    table = pa.table(ledger_rows(samples, shard, score_columns), schema=ledger_schema(score_columns))
    with atomic_write(final) as fh:  # durable: this file's existence marks the unit done
        pq.write_table(table, fh)


def read_ledger_file(path: Path, columns: list[str] | None = None) -> pa.Table:
    """One unit's ledger, with columns of older builds renamed to today's names (so
    `--resume` and `filter-report` work on an output folder written before a rename)."""
    present = pq.read_schema(path).names
    renames = {old: new for old, new in RENAMED_COLUMNS.items() if old in present and new not in present}
    as_stored = {new: old for old, new in renames.items()}
    table = pq.read_table(path, columns=None if columns is None else [as_stored.get(c, c) for c in columns])
    return table.rename_columns([renames.get(c, c) for c in table.column_names])


def read_ledger(out_dir: Path, columns: list[str] | None = None) -> pa.Table:
    files = sorted((Path(out_dir) / LEDGER_DIR).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"{out_dir} has no ledger/*.parquet; is it a build_dataset output folder?")
    return pa.concat_tables([read_ledger_file(f, columns) for f in files], promote_options="default")


def ledger_counts(out_dir: Path) -> dict:
    t = read_ledger(out_dir, ["status", "reason", "shard"])
    status = t.column("status").to_pylist()
    reason = t.column("reason").to_pylist()
    by_reason: dict[str, Counter] = {}
    for st, rs in zip(status, reason):
        if st != Status.KEPT:
            by_reason.setdefault(st, Counter())[rs] += 1
    counts = Counter(status)
    return {
        "inputs": len(status),
        "status": {str(k): counts.get(k, 0) for k in (Status.KEPT, Status.REJECTED, Status.FAILED)},
        "reasons": {st: dict(c.most_common()) for st, c in sorted(by_reason.items())},
        "shards": sorted({s for s in t.column("shard").to_pylist() if s}),
    }


