"""The duplicates the build's dedup pass removed, for the report: counts, the pairs
(removed copy, the key it kept) with both sources, their thumbnails side by side, and
`--export FILE --duplicates` (the pairs as a table).

The pairs come from `dedup.parquet` (pipeline/dedup.py). The removed copy's thumbnail is
the one the pass put in `rejects/` before taking it out of its shard; the kept one is
read from its shard. Near copies at the largest distance come first: they are the ones
worth a look (exact copies are certain).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.output_layout import PAIRS_FILE
from pipeline.rejects import read_rejects, thumbnail
from pipeline.report.export import write_url_list
from pipeline.report.images import read_shard_samples


def duplicate_pairs(out_dir: Path, ledger: pd.DataFrame) -> pd.DataFrame | None:
    """key, kept_key, kind, distance, source, kept_source; most distant near copies first.
    None when the build has no duplicate pass output."""
    path = Path(out_dir) / PAIRS_FILE
    if not path.is_file():
        return None
    pairs = pd.read_parquet(path)
    source = ledger.set_index("key")["source"] if len(ledger) else pd.Series(dtype=object)
    pairs["source"] = pairs["key"].map(source)
    pairs["kept_source"] = pairs["kept_key"].map(source)
    pairs["_exact"] = pairs["kind"] == "exact"
    pairs = pairs.sort_values(["_exact", "distance", "key"], ascending=[True, False, True]).drop(columns="_exact")
    return pairs.reset_index(drop=True)


def kind_label(pair: dict) -> str:
    """exact / near / semantic (cos 0.973)."""
    sim = pair.get("similarity")
    return f"{pair['kind']} (cos {sim:.3f})" if pair["kind"] == "semantic" and sim == sim and sim is not None else pair["kind"]


def duplicate_summary(pairs: pd.DataFrame | None) -> dict | None:
    if pairs is None:
        return None
    return {"removed": len(pairs), "exact": int((pairs["kind"] == "exact").sum()), "near": int((pairs["kind"] == "near").sum()),
            "semantic": int((pairs["kind"] == "semantic").sum()),
            "pairs": pairs.head(20).to_dict("records")}


def duplicate_images(out_dir: Path, ledger: pd.DataFrame, pairs: pd.DataFrame | None, n: int = 12) -> list[dict]:
    """The first n pairs with both thumbnails (None where one is missing)."""
    if pairs is None or not len(pairs):
        return []
    pick = pairs.head(n)
    rejects = read_rejects(out_dir)
    shard_of = ledger.set_index("key")["shard"]
    wanted: dict[str, set[str]] = {}
    for k in pick["kept_key"]:
        if isinstance(shard_of.get(k), str):
            wanted.setdefault(shard_of[k], set()).add(k)
    kept = read_shard_samples(out_dir, wanted)
    out = []
    for r in pick.to_dict("records"):
        jpg = kept.get(r["kept_key"], {}).get("jpg")
        out.append({**r, "removed_jpg": rejects.get(r["key"], (None,))[0], "kept_jpg": thumbnail(jpg) if jpg else None})
    return out


def export_duplicates(out_dir: Path, ledger: pd.DataFrame, path: str | Path) -> int:
    """Write every pair (format from the extension); returns the number of rows."""
    pairs = duplicate_pairs(out_dir, ledger)
    if pairs is None:
        raise FileNotFoundError(f"{out_dir} has no {PAIRS_FILE}: the duplicate pass did not run (dedup.enabled) or has not finished")
    cols = ["key", "source", "kept_key", "kept_source", "kind", "distance"] + (["similarity"] if "similarity" in pairs.columns else [])
    write_url_list(pairs[cols], Path(path))
    return len(pairs)
