"""`--what-if blur=0.3 watermark=0.7`: counts per status and reason under other
thresholds, from the ledger's stored scores, without running any model.

Each kept or rejected row is replayed through the filters in run order with the
filters' own keep() (rules.py); it leaves at the first filter that rejects it. Failed
rows stay failed. A row is UNKNOWN when it reaches a filter that never scored it (it
left at an earlier filter in the real run and score_all was off): it may be kept or
rejected by that filter or a later one, which gives each count a lower and upper bound.
With score_all: true every row is scored by every filter and all counts are exact.
With the build's `dedup` settings, the duplicate pass is replayed on the rows the new
thresholds keep (a copy whose representative is now rejected comes back). Semantic pairs
(dedup.semantic) come from the build's dedup.parquet, not from a new k-means: embeddings
are stored only for the samples the build kept, so no other pair can be known.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.report.rules import FilterRule

DUPLICATE = "duplicate"  # pipeline/dedup.py's reason


def replay_dedup(ledger: pd.DataFrame, kept: np.ndarray, dedup: dict, pairs: pd.DataFrame | None = None) -> np.ndarray:
    """Rows among `kept` the build's duplicate pass would remove (pipeline/dedup.py, same code);
    `pairs`: the build's dedup.parquet, whose semantic pairs are replayed."""
    from pipeline.dedup import choose, find_groups

    idx = np.flatnonzero(kept & ledger["phash"].notna().to_numpy())
    sub = ledger.iloc[idx]
    rows = {"key": sub["key"].tolist(), "pixel_hash": sub["pixel_hash"].tolist(), "phash": sub["phash"].tolist(),
            "pixels": (sub["original_width"].to_numpy(np.int64) * sub["original_height"].to_numpy(np.int64))}
    extra = None
    if pairs is not None and dedup.get("semantic") and "kind" in pairs.columns:
        at = {k: i for i, k in enumerate(rows["key"])}
        sem = [(at[a], at[b]) for a, b in pairs.loc[pairs["kind"] == "semantic", ["key", "kept_key"]].itertuples(index=False)
               if a in at and b in at]
        extra = (np.array([a for a, _ in sem], np.int64), np.array([b for _, b in sem], np.int64))
    removed = choose(rows, find_groups(rows, dedup.get("max_distance", 8), dedup.get("near", True), extra=extra))
    out = np.zeros(len(ledger), dtype=bool)
    out[idx[list(removed)]] = True
    return out


def what_if(ledger: pd.DataFrame, rules: list[FilterRule], dedup: dict | None = None, pairs: pd.DataFrame | None = None) -> dict:
    n = len(ledger)
    status = ledger["status"].to_numpy()
    pending = np.isin(status, ["kept", "rejected"])
    reason = np.full(n, "", dtype=object)
    first_unknown = np.full(n, -1)
    for i, rule in enumerate(rules):
        scored, keep = rule.keep_rows(ledger)
        rejected = pending & scored & ~keep
        reason[rejected] = rule.name
        unknown = pending & ~scored
        first_unknown[unknown] = i
        pending &= ~(rejected | unknown)
    unknown = first_unknown >= 0
    n_dup = 0
    if dedup and dedup.get("enabled", True) and "phash" in ledger.columns:  # copies among the new kept rows
        dup = replay_dedup(ledger, pending, dedup, pairs)
        reason[dup], pending, n_dup = DUPLICATE, pending & ~dup, int(dup.sum())
    rejected_by = {r.name: int((reason == r.name).sum()) for r in rules}
    rows = [{"status": "kept", "reason": "", "low": int(pending.sum()), "high": int(pending.sum() + unknown.sum())}]
    rej_low = sum(rejected_by.values()) + n_dup
    rows.append({"status": "rejected", "reason": "", "low": rej_low, "high": rej_low + int(unknown.sum())})
    for i, r in enumerate(rules):
        could = int((unknown & (first_unknown <= i)).sum())  # unknown rows that reach this filter unscored (or earlier)
        rows.append({"status": "rejected", "reason": r.name, "low": rejected_by[r.name], "high": rejected_by[r.name] + could})
    if n_dup or (ledger["reason"] == DUPLICATE).any():
        # an unknown row may end kept and be a copy (or the better original of a copy)
        rows.append({"status": "rejected", "reason": DUPLICATE, "low": max(0, n_dup - int(unknown.sum())), "high": n_dup + int(unknown.sum())})
    failed = ledger[ledger["status"] == "failed"]
    rows.append({"status": "failed", "reason": "", "low": len(failed), "high": len(failed)})
    for rs, m in failed["reason"].value_counts().items():
        rows.append({"status": "failed", "reason": str(rs), "low": int(m), "high": int(m)})
    now = ledger.groupby(["status", "reason"]).size().to_dict()
    for row in rows:
        row["now"] = (int((ledger["status"] == row["status"]).sum()) if not row["reason"]
                      else int(now.get((row["status"], row["reason"]), 0)))
        row["exact"] = row["low"] == row["high"]
    unknown_by = {rules[i].name: int((first_unknown == i).sum()) for i in range(len(rules)) if (first_unknown == i).any()}
    return {"rows": rows, "unknown": int(unknown.sum()), "unknown_at": unknown_by,
            "thresholds": {r.name: {f: r.params.get(f) for f in sorted(set(r.threshold_fields().values()))} for r in rules},
            "new_status": np.where(pending, "kept", np.where(reason != "", "rejected", np.where(unknown, "unknown", status))),
            "new_reason": np.where(status == "failed", ledger["reason"].to_numpy(), reason)}
