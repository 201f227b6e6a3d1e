"""Images for the HTML report: the rejected and the kept samples nearest each filter's
threshold, and sample captions with their parts.

Rejected samples come from the build's `rejects/` thumbnails (pipeline/rejects.py);
kept ones are read from the shards (only the shards that hold the chosen keys).
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.rejects import read_rejects, thumbnail
from pipeline.report.rules import FilterRule
from pipeline.shard_reader import iter_samples


def _where(row) -> str:
    """The URL or path, with the time for a video frame."""
    t = row.get("video_time")
    return f"{row['source']} @ {t:g} s" if t is not None and not pd.isna(t) else str(row["source"])


def _nearest(rows: pd.DataFrame, column: str, threshold: float, n: int) -> pd.DataFrame:
    dist = (rows[column].astype(float) - threshold).abs()
    return rows.assign(_dist=dist).sort_values(["_dist", "key"]).head(n)


def read_shard_samples(out_dir: Path, wanted: dict[str, set[str]]) -> dict[str, dict]:
    """key -> {ext: bytes} for the wanted keys, grouped by shard (shard -> keys)."""
    found: dict[str, dict] = {}
    for shard, keys in wanted.items():
        path = Path(out_dir) / shard
        try:
            with tarfile.open(path) as tar:
                for key, parts in iter_samples(tar):
                    if key in keys:
                        found.setdefault(key, {}).update(parts)
        except (tarfile.TarError, OSError):
            continue  # a damaged shard costs its images here; --validate names it
    return found


def near_threshold(out_dir: Path, ledger: pd.DataFrame, rules: list[FilterRule], per_side: int = 8) -> list[dict]:
    """Per filter (with a threshold on its first score, and on each late score: clip_score_caption):
    the rejected and the kept samples nearest it.
    Each image: {"key", "source", "score", "jpg" (thumbnail bytes), "detail"}."""
    rejects = read_rejects(out_dir)
    kept_pick: dict[tuple[str, str], pd.DataFrame] = {}
    out = []
    grids = [(rule, col) for rule in rules
             for col in dict.fromkeys([rule.primary] + [f"{rule.name}_{n}" for n in rule.filter.late_scores])]
    for rule, col in grids:
        thr = rule.threshold(col)
        if thr is None or col not in ledger.columns:
            continue
        kept = ledger[(ledger["status"] == "kept") & ledger[col].notna()]
        kept_pick[(rule.name, col)] = _nearest(kept, col, thr, per_side)
        names = set(rule.score_names)  # a detail naming one score (clip_score: alt, caption) puts the image in that grid only
        rej = [(meta["scores"].get(col), key, jpg, meta) for key, (jpg, meta) in rejects.items()
               if meta.get("reason") == rule.name and meta["scores"].get(col) is not None and meta["scores"][col] == meta["scores"][col]
               and (meta.get("detail") not in names or col == f"{rule.name}_{meta['detail']}")]
        rej.sort(key=lambda r: (abs(r[0] - thr), r[1]))
        out.append({"filter": rule.name, "column": col, "threshold": thr,
                    "rejected_total": int(((ledger["status"] == "rejected") & (ledger["reason"] == rule.name)).sum()),
                    "rejected": [{"key": k, "source": m.get("source"), "score": s, "jpg": j, "detail": m.get("detail", "")}
                                 for s, k, j, m in rej[:per_side]],
                    "kept": []})
    wanted: dict[str, set[str]] = {}
    for pick in kept_pick.values():
        for _, r in pick.iterrows():
            wanted.setdefault(r["shard"], set()).add(r["key"])
    samples = read_shard_samples(out_dir, wanted)
    for entry in out:
        for _, r in kept_pick[(entry["filter"], entry["column"])].iterrows():
            jpg = samples.get(r["key"], {}).get("jpg")
            thumb = thumbnail(jpg) if jpg else None
            if thumb:
                entry["kept"].append({"key": r["key"], "source": _where(r), "score": float(r[entry["column"]]), "jpg": thumb, "detail": ""})
    return out


def _parts(meta: dict) -> dict:
    """The caption parts of a sample's json.annotations (each optional)."""
    ann = meta.get("annotations") or {}
    objects = (ann.get("objects") or {}).get("items") or []
    ocr = (ann.get("ocr") or {}).get("lines") or []
    return {
        "alt": (meta.get("source") or {}).get("caption") or "",
        "caption": (ann.get("caption") or {}).get("text") or "",
        "caption_model": (ann.get("caption") or {}).get("model") or "",
        "objects": ", ".join(f"{o.get('label')} {o.get('confidence', 0):.2f}" for o in objects),
        "ocr": " | ".join(str(line.get("text", "")) for line in ocr),
        "fused_parts": ", ".join((ann.get("fused") or {}).get("parts") or []),
        "template": (ann.get("fused") or {}).get("template") or "",
    }


def caption_samples(out_dir: Path, ledger: pd.DataFrame, n: int = 12) -> list[dict]:
    """Up to n kept samples (spread over the shards): thumbnail, training caption and its parts."""
    kept = ledger[ledger["status"] == "kept"]
    if not len(kept):
        return []
    idx = np.unique(np.linspace(0, len(kept) - 1, min(n, len(kept))).round().astype(int))
    pick = kept.iloc[idx]
    wanted: dict[str, set[str]] = {}
    for _, r in pick.iterrows():
        wanted.setdefault(r["shard"], set()).add(r["key"])
    samples = read_shard_samples(out_dir, wanted)
    out = []
    for _, r in pick.iterrows():
        s = samples.get(r["key"])
        if not s or "jpg" not in s:
            continue
        meta = json.loads(s["json"]) if "json" in s else {}
        out.append({"key": r["key"], "source": _where(r), "jpg": thumbnail(s["jpg"]),
                    "txt": s.get("txt", b"").decode("utf-8", "replace"), **_parts(meta)})
    return [o for o in out if o["jpg"]]
