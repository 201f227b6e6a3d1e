"""The report's numbers, computed once from the ledger and manifest; the terminal and
HTML views only format them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.report.duplicates import duplicate_pairs, duplicate_summary
from pipeline.report.load import BuildOutput
from pipeline.report.rules import FilterRule, build_rules

STATUSES = ("kept", "rejected", "failed")
QUANTILES = (1, 10, 50, 90, 99)


def counts(ledger: pd.DataFrame) -> list[tuple[str, str, int]]:
    """(status, reason, count) rows: each status total (reason ""), then its reasons, most frequent first."""
    rows = []
    for st in STATUSES:
        sub = ledger[ledger["status"] == st]
        rows.append((st, "", len(sub)))
        if st != "kept":
            for reason, n in sub["reason"].value_counts().items():
                rows.append((st, str(reason), int(n)))
    return rows


def filter_stats(ledger: pd.DataFrame, rules: list[FilterRule]) -> list[dict]:
    """Per filter: rows scored, rows it rejected as the first rejecting filter, pass rate
    among the scored rows (its own keep(), so with score_all it is the filter's rate
    alone), and per score column its quantiles and threshold."""
    out = []
    for rule in rules:
        scored, keep = rule.keep_rows(ledger)
        n = int(scored.sum())
        cols = []
        for c in rule.columns:
            vals = ledger.loc[scored, c].to_numpy(dtype=np.float64) if n else np.zeros(0)
            vals = vals[np.isfinite(vals)]
            q = dict(zip(QUANTILES, np.percentile(vals, QUANTILES))) if len(vals) else {}
            cols.append({"column": c, "threshold": rule.threshold(c), "field": rule.threshold_fields().get(c), "quantiles": q})
        out.append({
            "name": rule.name,
            "scored": n,
            "passed": int((scored & keep).sum()),
            "pass_rate": float((scored & keep).sum() / n) if n else None,
            "rejected_first": int(((ledger["status"] == "rejected") & (ledger["reason"] == rule.name)).sum()),
            "columns": cols,
        })
    return out


def failures(ledger: pd.DataFrame) -> list[dict]:
    """Per failure reason: count, an example source (URL or path) and its error message."""
    failed = ledger[ledger["status"] == "failed"]
    out = []
    for reason, group in sorted(failed.groupby("reason"), key=lambda kv: -len(kv[1])):
        first = group.iloc[0]
        out.append({"reason": str(reason), "count": len(group), "source": first["source"], "detail": first.get("detail") or "",
                    "sources": group["source"].head(5).tolist()})
    return out


def steps(build: BuildOutput) -> tuple[list[dict], str]:
    """Per step: busy/idle seconds, images, images/s, as the manifest's `steps` records them."""
    m = build.manifest or {}
    if not m:
        return [], "no timings (the build has not finished)"
    timings = m.get("steps", m.get("stages"))  # "stages" in folders built before the rename to steps
    if not timings:
        return [], "no per-step times (the last run had no unit left to process)"
    rows = [{"step": name, **{k: v.get(k) for k in ("busy_s", "idle_s", "images", "images_per_s")}}
            for name, v in timings.items()]
    return rows, "manifest steps"


def _describe(values: pd.Series) -> dict | None:
    v = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=np.float64)
    if not len(v):
        return None
    return {"n": len(v), "mean": float(v.mean()), **{f"p{q}": float(np.percentile(v, q)) for q in (10, 50, 90)},
            "min": float(v.min()), "max": float(v.max())}


def annotation_stats(ledger: pd.DataFrame) -> dict[str, dict]:
    """Length statistics of kept samples' captions and annotations, when the ledger has them."""
    kept = ledger[ledger["status"] == "kept"]
    out = {}
    for col, label in (("caption_words", "caption words (training caption)"), ("object_count", "objects detected"),
                       ("ocr_words", "OCR words")):
        if col in kept.columns:
            d = _describe(kept[col])
            if d:
                out[label] = d
    if "caption" in kept.columns and not out.get("caption words (training caption)"):  # no annotations: the alt text is the caption
        words = kept["caption"].fillna("").astype(str).str.split().str.len()
        d = _describe(words[kept["caption"].fillna("").astype(str).str.len() > 0])
        if d:
            out["alt-text words (input caption)"] = d
    return out


def summarize(build: BuildOutput, rules: list[FilterRule] | None = None) -> dict:
    ledger = build.ledger
    rules = rules if rules is not None else build_rules(build.config)
    step_rows, step_source = steps(build)
    return {
        "path": str(build.path),
        "state": build.state_line,
        "finished": build.finished,
        "inputs": len(ledger),
        "shards": int(ledger["shard"].dropna().nunique()) if len(ledger) else 0,
        "score_all": bool(build.config.get("score_all")),
        "counts": counts(ledger),
        "filters": filter_stats(ledger, rules),
        "failures": failures(ledger),
        "steps": step_rows,
        "steps_source": step_source,
        "annotations": annotation_stats(ledger),
        "duplicates": duplicate_summary(duplicate_pairs(build.path, ledger)),
        "warnings": (build.manifest or {}).get("warnings") or [],
    }
