"""`--export FILE --status failed --reason timeout,http_5xx` (or `--status rejected
--filter watermark`): the matching ledger rows as a URL list that
`build_dataset.py --input` reads (url, caption and the input's other columns), to retry
failed downloads or re-judge rejected items.

Only URL rows can be exported: local files and video frames are not URLs and are
counted as left out. The format follows the file's extension (parquet, csv, tsv, jsonl),
the ones build_dataset.py reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from pipeline.sources import URL_LIST_READERS

STATUSES = ("kept", "rejected", "failed")


class ExportError(ValueError):
    """A bad export request; the message names the option and what is allowed."""


def select(ledger: pd.DataFrame, status: str | None, reasons: list[str], filters: list[str]) -> pd.DataFrame:
    if status is not None and status not in STATUSES:
        raise ExportError(f"--status {status!r}: use one of {', '.join(STATUSES)}")
    if filters:
        if status not in (None, "rejected"):
            raise ExportError("--filter selects rejected rows (by the filter that rejected them); use it with --status rejected")
        status = "rejected"
        reasons = [*reasons, *filters]
    if status is None and not reasons:
        raise ExportError("--export needs --status (kept, rejected, failed) and/or --reason/--filter to say which rows")
    rows = ledger if status is None else ledger[ledger["status"] == status]
    if reasons:
        present = set(rows["reason"].dropna())
        unknown = [r for r in reasons if r not in present]
        if len(unknown) == len(reasons):
            raise ExportError(f"--reason/--filter {','.join(reasons)}: no {status or ''} rows have that reason; "
                              f"reasons present: {', '.join(sorted(present)) or 'none'}")
        rows = rows[rows["reason"].isin(reasons)]
    return rows


def url_list(rows: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """(url list, rows left out because they are not URLs)."""
    is_url = rows["kind"] == "url"
    urls = rows[is_url]
    records = []
    for _, r in urls.iterrows():
        rec = {"url": r["source"], "caption": r.get("caption") if isinstance(r.get("caption"), str) else ""}
        extra = r.get("source_extra")
        if isinstance(extra, str) and extra:
            rec.update({k: v for k, v in json.loads(extra).items() if k not in rec})
        records.append(rec)
    return pd.DataFrame.from_records(records, columns=None if records else ["url", "caption"]), int((~is_url).sum())


def write_url_list(df: pd.DataFrame, path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix not in URL_LIST_READERS:
        raise ExportError(f"--export {path}: unknown format {suffix!r}; use one of {', '.join(URL_LIST_READERS)} "
                          "(what build_dataset.py --input reads)")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        df.to_parquet(path, index=False)
    elif suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        df.to_csv(path, sep="\t" if suffix == ".tsv" else ",", index=False)


def export(ledger: pd.DataFrame, path: str | Path, status: str | None, reasons: list[str], filters: list[str]) -> dict:
    rows = select(ledger, status, reasons, filters)
    df, left_out = url_list(rows)
    if "source_extra" not in ledger.columns:
        note = "this ledger predates the caption/source_extra columns: only urls are exported"
    else:
        note = ""
    write_url_list(df, Path(path))
    return {"path": str(path), "rows": len(df), "left_out_not_urls": left_out, "note": note}
