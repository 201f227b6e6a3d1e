"""The records of a URL list file, each with where it is ('line 7', 'row 7') and, for a
record that cannot be read, why: one bad line costs its own row, never the list.

JSONL is read line by line with Python's json (pandas refuses the whole file for one bad
line, and integers above 2^64); a UTF-8 BOM is skipped; bytes that are not UTF-8 reach
pipeline/safe_text.py as surrogate escapes. CSV/TSV/parquet go through pandas.
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pandas as pd

READERS = {
    ".parquet": lambda p: pd.read_parquet(p),
    ".csv": lambda p: pd.read_csv(p, dtype=str, keep_default_na=False, encoding="utf-8-sig", encoding_errors="surrogateescape"),
    ".tsv": lambda p: pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False, encoding="utf-8-sig",
                                  encoding_errors="surrogateescape"),
    ".jsonl": lambda p: pd.read_json(p, lines=True, dtype=False),  # writing side (report export) only
}

Record = tuple[str, dict | None, str | None]  # (where, the record or None, why it is unreadable or None)


def jsonl_records(path: Path) -> list[Record]:
    data = path.read_bytes()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    out: list[Record] = []
    for n, raw in enumerate(data.split(b"\n"), 1):
        line = raw.decode("utf-8", "surrogateescape").strip()
        if not line:
            continue
        where = f"line {n}"
        try:
            rec = json.loads(line)
        except ValueError as err:  # JSONDecodeError, or an integer too long to convert
            out.append((where, None, f"is not valid JSON ({err}): {line[:80]!r}"))
            continue
        if not isinstance(rec, dict):
            out.append((where, None, f"is a JSON {type(rec).__name__}, not an object with a 'url' field"))
            continue
        out.append((where, rec, None))
    return out


def table_records(path: Path) -> list[Record]:
    df = READERS[path.suffix.lower()](path)
    first = 2 if path.suffix.lower() in (".csv", ".tsv") else 0  # a CSV's line 1 is its header
    name = "line" if first else "row"
    return [(f"{name} {i + first}", rec, None) for i, rec in enumerate(df.to_dict("records"))]


def read_records(path: Path) -> list[Record]:
    return jsonl_records(path) if path.suffix.lower() == ".jsonl" else table_records(path)
