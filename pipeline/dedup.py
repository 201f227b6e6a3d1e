"""The dataset-wide duplicate pass: exact copies (same decoded pixels) and near copies
(perceptual hashes within `max_distance` bits) across every shard of a build.

    python pipeline/dedup.py OUTPUT [--max-distance 8] [--no-near]

Runs at the end of every build (`dedup.enabled`, default on) and alone on a finished
one, on Ray (the cluster in RAY_ADDRESS, else a local one): one task per ledger file
reads its hashes, one task per hash chunk finds the near pairs (pipeline/dedup_index.py:
multi-index hashing, not all pairs), one task per affected unit rewrites it. Copies are
grouped transitively; each group keeps one representative, chosen the same way every
time: the largest original resolution, then the smallest key. Every other member becomes
a ledger row `rejected`, reason `duplicate`, detail = the representative's key, and leaves
its shard (rewritten atomically; a shard left empty is deleted). `dedup.parquet` lists
the removed copies (key, kept key, exact/near, Hamming distance) for filter-report.

Idempotent, so a killed pass is simply run again (`--resume` does): it reads the rows
kept AND the rows an earlier pass marked `duplicate`, so the groups come out the same,
and a unit whose shard was rewritten but not yet its ledger (or the reverse) is finished.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.dedup_index import chunk_pairs, components, plan_chunks, unique_hashes
from pipeline.embeddings import drop_keys
from pipeline.image_hashes import phash_array
from pipeline.ledger import read_ledger_file
from pipeline.output_layout import LEDGER_DIR, MANIFEST_FILE, PAIRS_FILE, SHARD_DIR, STATE_FILE, atomic_write
from pipeline.rejects import add_rejects
from pipeline.shard_reader import member_key_ext
from pipeline.shard_rewrite import read_members, write_members

REASON = "duplicate"
COLUMNS = ["key", "status", "reason", "original_width", "original_height", "pixel_hash", "phash"]


def unit_hashes(ledger_path: str) -> dict:
    """The rows of one unit that take part: kept, or removed as duplicates by an earlier pass."""
    path = Path(ledger_path)
    t = read_ledger_file(path)
    if "phash" not in t.column_names:  # a build from before the hashes: nothing to compare
        return {"unit": path.stem, "key": [], "pixel_hash": [], "phash": [], "pixels": np.zeros(0, np.int64)}
    live = pc.or_(pc.equal(t["status"], "kept"), pc.and_(pc.equal(t["status"], "rejected"), pc.equal(t["reason"], REASON)))
    t = t.filter(pc.and_(live, pc.is_valid(t["phash"]))).select(COLUMNS)
    w = t["original_width"].to_numpy(zero_copy_only=False).astype(np.int64)
    h = t["original_height"].to_numpy(zero_copy_only=False).astype(np.int64)
    return {"unit": path.stem, "key": t["key"].to_pylist(), "pixel_hash": t["pixel_hash"].to_pylist(),
            "phash": t["phash"].to_pylist(), "pixels": w * h}


def find_groups(rows: dict, max_distance: int, near: bool, pair_task=None) -> np.ndarray:
    """Component label per row; rows alone in their component are not duplicates."""
    n = len(rows["key"])
    # np.unique's return_index: the first row holding each distinct value
    _, first, exact = np.unique(np.asarray(rows["pixel_hash"], dtype=str), return_index=True, return_inverse=True)
    edges_i, edges_j = [np.arange(n)], [first[exact]]  # each row to the first row with its pixels
    if near and n:
        values, inv = unique_hashes(phash_array(rows["phash"]))
        rep_of_value = np.unique(inv, return_index=True)[1]  # distinct hash -> the first row holding it
        edges_i.append(np.arange(n))
        edges_j.append(rep_of_value[inv])
        chunks = plan_chunks(len(values), max_distance)
        radius = max_distance // len(chunks)
        run = pair_task or (lambda jobs: [chunk_pairs(*job) for job in jobs])
        for vi, vj in run([(values, off, width, max_distance, radius) for off, width in chunks]):
            edges_i.append(rep_of_value[vi])
            edges_j.append(rep_of_value[vj])
    return components(n, np.concatenate(edges_i), np.concatenate(edges_j))


def choose(rows: dict, labels: np.ndarray) -> dict[int, int]:
    """Removed row -> its representative: per group of 2+, the most original pixels, then the smallest key."""
    keys = np.asarray(rows["key"], dtype=object)
    order = sorted(range(len(keys)), key=lambda r: (labels[r], -int(rows["pixels"][r]), keys[r]))
    removed, rep, last = {}, -1, None
    for r in order:
        if labels[r] != last:
            rep, last = r, labels[r]
        elif r != rep:
            removed[r] = rep
    return removed


def removed_thumbs(members, removed: dict[str, str]) -> list[tuple[str, bytes, dict]]:
    """(key, jpg, rejects meta) of the shard members being removed as copies."""
    parts: dict[str, dict[str, bytes]] = {}
    for m, d in members:
        ke = member_key_ext(m.name)
        if d is not None and ke and ke[0] in removed:
            parts.setdefault(ke[0], {})[ke[1]] = d
    out = []
    for key in sorted(parts):
        if "jpg" in parts[key]:
            src = (json.loads(parts[key]["json"]).get("source") or {}) if "json" in parts[key] else {}
            meta = {"key": key, "source": src.get("url") or src.get("path"), "reason": REASON, "detail": removed[key], "scores": {}}
            out.append((key, parts[key]["jpg"], meta))
    return out


def rewrite_unit(out_dir: str, unit: str, removed: dict[str, str]) -> None:
    """Drop `removed` keys from the unit's shard and embeddings, then mark them in its ledger; each atomic."""
    out = Path(out_dir)
    shard = out / SHARD_DIR / f"{unit}.tar"
    if shard.exists():
        members = read_members(shard)
        kept = [(m, d) for m, d in members if (member_key_ext(m.name) or ("",))[0] not in removed]
        if len(kept) != len(members):
            add_rejects(out, unit, removed_thumbs(members, removed))  # before they leave the shard: the report's pairs
            if any(d is not None for _, d in kept):
                write_members(shard, kept)
            else:
                shard.unlink()
    drop_keys(out, unit, removed)  # the stored CLIP embeddings follow the shard
    ledger = out / LEDGER_DIR / f"{unit}.parquet"
    t = pq.read_table(ledger)
    cols = {c: t[c].to_pylist() for c in ("status", "reason", "detail", "shard")}
    for r, key in enumerate(t["key"].to_pylist()):
        if key in removed:
            cols["status"][r], cols["reason"][r], cols["detail"][r], cols["shard"][r] = "rejected", REASON, removed[key], None
    for c, values in cols.items():
        t = t.set_column(t.column_names.index(c), c, pa.array(values, type=t.schema.field(c).type))
    with atomic_write(ledger) as fh:
        pq.write_table(t, fh)


def pairs_table(rows: dict, removed: dict[int, int]) -> pa.Table:
    rem = sorted(removed, key=lambda r: rows["key"][r])
    ph = phash_array(rows["phash"]) if rem else np.zeros(0, np.uint64)
    return pa.table({
        "key": [rows["key"][r] for r in rem],
        "kept_key": [rows["key"][removed[r]] for r in rem],
        "kind": ["exact" if rows["pixel_hash"][r] == rows["pixel_hash"][removed[r]] else "near" for r in rem],
        "distance": pa.array([int(np.bitwise_count(ph[r] ^ ph[removed[r]])) for r in rem], pa.int32()),
    })


def run_dedup(out_dir: str | Path, max_distance: int = 8, near: bool = True) -> dict:
    """The pass on the current Ray (started by the caller); -> a summary for manifest.json."""
    import ray

    t0 = time.perf_counter()
    out = Path(out_dir).absolute()
    ledgers = sorted((out / LEDGER_DIR).glob("*.parquet"))
    load = ray.remote(num_cpus=1)(unit_hashes)
    parts = ray.get([load.remote(str(p)) for p in ledgers])
    rows = {k: [v for p in parts for v in p[k]] for k in ("key", "pixel_hash", "phash")}
    rows["pixels"] = np.concatenate([p["pixels"] for p in parts]) if parts else np.zeros(0, np.int64)
    unit_of = [p["unit"] for p in parts for _ in p["key"]]
    pairs = ray.remote(num_cpus=1)(chunk_pairs)

    def pair_task(jobs):  # one task per chunk, all reading one copy of the hashes
        values = ray.put(jobs[0][0])
        return ray.get([pairs.remote(values, *job[1:]) for job in jobs])

    labels = find_groups(rows, max_distance, near, pair_task)
    removed = choose(rows, labels)
    by_unit: dict[str, dict[str, str]] = {}
    for r, rep in removed.items():
        by_unit.setdefault(unit_of[r], {})[rows["key"][r]] = rows["key"][rep]
    rewrite = ray.remote(num_cpus=1)(rewrite_unit)
    ray.get([rewrite.remote(str(out), u, rem) for u, rem in sorted(by_unit.items())])
    table = pairs_table(rows, removed)
    with atomic_write(out / PAIRS_FILE) as fh:
        pq.write_table(table, fh)
    kinds = table["kind"].to_pylist()
    return {"max_distance": max_distance, "near": near, "compared": len(rows["key"]),
            "groups": int(len({labels[r] for r in removed.values()})), "removed": len(removed),
            "exact": kinds.count("exact"), "near_removed": kinds.count("near"), "units_rewritten": len(by_unit),
            "seconds": round(time.perf_counter() - t0, 3)}


def build_settings(out: Path) -> dict:
    """The build's own `dedup` settings (from its state file), for a standalone run."""
    for name in (MANIFEST_FILE, STATE_FILE):
        if (out / name).is_file():
            return (json.loads((out / name).read_text()).get("config") or {}).get("dedup") or {}
    return {}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("output", help="a build_dataset output folder")
    p.add_argument("--max-distance", type=int, help="largest Hamming distance (of 64 bits) between near copies (default: the build's, else 8)")
    p.add_argument("--no-near", action="store_true", help="exact copies only")
    a = p.parse_args(argv)
    out = Path(a.output)
    if not (out / LEDGER_DIR).is_dir():
        print(f"dedup: {out} has no {LEDGER_DIR}/; give a build_dataset output folder", file=sys.stderr)
        return 2
    own = build_settings(out)
    from pipeline.runner import init_ray

    started = init_ray()
    try:
        summary = run_dedup(out, a.max_distance if a.max_distance is not None else own.get("max_distance", 8),
                            near=not a.no_near and own.get("near", True))
    finally:
        if started:
            import ray

            ray.shutdown()
    if (out / MANIFEST_FILE).is_file():
        from pipeline.manifest import refresh_counts

        refresh_counts(out, {"dedup": summary})
    print(f"dedup: {summary['removed']} copies removed ({summary['exact']} exact, {summary['near_removed']} near) "
          f"in {summary['groups']} groups of {summary['compared']} samples, {summary['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
