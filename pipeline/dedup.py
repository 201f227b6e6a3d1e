"""The dataset-wide duplicate pass: exact copies (same decoded pixels), near copies
(perceptual hashes within `max_distance` bits) and, with `semantic`, semantic duplicates
(stored CLIP image embeddings closer than 1 - eps in cosine within a k-means cluster:
SemDeDup, pipeline/semantic_dedup.py) across every shard of a build.

    python pipeline/dedup.py OUTPUT [--max-distance 8] [--no-near] [--semantic [--eps 0.05]]

Runs at the end of every build (`dedup.enabled`, default on) and alone on a finished
one, on Ray (the cluster in RAY_ADDRESS, else a local one): one task per ledger file
reads its hashes, one task per hash chunk finds the near pairs (pipeline/dedup_index.py:
multi-index hashing, not all pairs), one task per affected unit rewrites it. Copies are
grouped transitively; each group keeps one representative, chosen the same way every
time: the largest original resolution, then the smallest key. Every other member becomes
a ledger row `rejected`, reason `duplicate`, detail = the representative's key (followed
by " (semantic, cos 0.973)" when only the embeddings join them), and leaves its shard
(rewritten atomically; a shard left empty is deleted) and its stored embeddings.
`dedup.parquet` lists the removed copies (key, kept key, kind exact/near/semantic, Hamming
distance, cosine similarity where both have embeddings) for filter-report.
The semantic step holds every embedding in the driver (1 M x 512 float16: 1 GB); the
hashes scale further (8 bytes a row).

Idempotent, so a killed pass is simply run again (`--resume` does): it reads the rows
kept AND the rows an earlier pass marked `duplicate`, so the groups come out the same,
and a unit whose shard was rewritten but not yet its ledger (or the reverse) is finished.
The embeddings of removed rows are kept aside (pipeline/embeddings.py), so the semantic
step also sees the same rows again.
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
from pipeline.embeddings import all_unit_embeddings, drop_keys
from pipeline.image_hashes import phash_array
from pipeline.ledger import read_ledger_file
from pipeline.output_layout import LEDGER_DIR, MANIFEST_FILE, PAIRS_FILE, SHARD_DIR, STATE_FILE, atomic_write
from pipeline.rejects import add_rejects
from pipeline.semantic_dedup import normalised, semantic_pairs
from pipeline.shard_reader import member_key_ext
from pipeline.shard_rewrite import read_members, write_members

REASON = "duplicate"
COLUMNS = ["key", "status", "reason", "original_width", "original_height", "pixel_hash", "phash"]


def unit_hashes(ledger_path: str, semantic: bool = False) -> dict:
    """The rows of one unit that take part: kept, or removed as duplicates by an earlier pass;
    with `semantic`, their stored embeddings ("emb_rows": which rows have one, "emb", "label")."""
    path = Path(ledger_path)
    t = read_ledger_file(path)
    out = {"unit": path.stem, "key": [], "pixel_hash": [], "phash": [], "pixels": np.zeros(0, np.int64),
           "emb_rows": np.zeros(0, np.int64), "emb": None, "label": None}
    if "phash" not in t.column_names:  # a build from before the hashes: nothing to compare
        return out
    live = pc.or_(pc.equal(t["status"], "kept"), pc.and_(pc.equal(t["status"], "rejected"), pc.equal(t["reason"], REASON)))
    t = t.filter(pc.and_(live, pc.is_valid(t["phash"]))).select(COLUMNS)
    w = t["original_width"].to_numpy(zero_copy_only=False).astype(np.int64)
    h = t["original_height"].to_numpy(zero_copy_only=False).astype(np.int64)
    out.update({"key": t["key"].to_pylist(), "pixel_hash": t["pixel_hash"].to_pylist(), "phash": t["phash"].to_pylist(), "pixels": w * h})
    if semantic:
        keys, arrays = all_unit_embeddings(path.parent.parent, path.stem)
        if arrays:
            out["label"] = min(arrays)  # the first model by name, as the unit's json names it
            at = {k: i for i, k in enumerate(keys)}
            rows = [r for r, k in enumerate(out["key"]) if k in at]
            out["emb_rows"] = np.array(rows, dtype=np.int64)
            out["emb"] = arrays[out["label"]][[at[out["key"][r]] for r in rows]]
    return out


def unit_embeddings(parts: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(row of each embedding in the concatenated rows, embeddings), in key order (the
    k-means input must not depend on the order the units came back in)."""
    labels = {p["label"] for p in parts if p["label"]}
    if len(labels) > 1:
        raise ValueError(f"dedup.semantic: the units store embeddings of different models {sorted(labels)}; "
                         "rebuild them with one CLIP model, or turn dedup.semantic off")
    offsets = np.cumsum([0] + [len(p["key"]) for p in parts])
    rows = np.concatenate([p["emb_rows"] + off for p, off in zip(parts, offsets)]) if parts else np.zeros(0, np.int64)
    embs = [p["emb"] for p in parts if p["emb"] is not None and len(p["emb"])]
    if not embs:
        return np.zeros(0, np.int64), np.zeros((0, 1), np.float16)
    emb = np.concatenate(embs)
    keys = np.asarray([p["key"][r] for p in parts for r in p["emb_rows"]], dtype=object)
    order = np.argsort(keys, kind="stable")
    return rows[order], emb[order]


def find_groups(rows: dict, max_distance: int, near: bool, pair_task=None, extra=None) -> np.ndarray:
    """Component label per row; rows alone in their component are not duplicates.
    `extra`: more (i, j) pairs of duplicate rows (the semantic ones)."""
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
    if extra is not None:
        edges_i.append(extra[0])
        edges_j.append(extra[1])
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


def removed_thumbs(members, removed: dict[str, str]) -> list[tuple[str, bytes, dict]]:  # removed: key -> detail
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
    """Drop `removed` keys (key -> ledger detail) from the unit's shard and embeddings, then
    mark them in its ledger; each atomic."""
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


def kinds(rows: dict, removed: dict[int, int], hash_labels: np.ndarray) -> dict[int, str]:
    """exact (same pixels), near (joined to the kept row by hashes alone), else semantic."""
    return {r: "exact" if rows["pixel_hash"][r] == rows["pixel_hash"][k] else "near" if hash_labels[r] == hash_labels[k] else "semantic"
            for r, k in removed.items()}


def similarities(removed: dict[int, int], emb_rows: np.ndarray, emb: np.ndarray) -> dict[int, float]:
    """Cosine of each removed row and its kept row, where both have an embedding."""
    at = {int(r): i for i, r in enumerate(emb_rows)}
    pairs = [(r, k) for r, k in removed.items() if r in at and k in at]
    if not pairs:
        return {}
    x = normalised(emb[[at[r] for r, _ in pairs]]), normalised(emb[[at[k] for _, k in pairs]])
    return {r: float(s) for (r, _), s in zip(pairs, (x[0] * x[1]).sum(1))}


def detail(rows: dict, rep: int, kind: str, sim: float | None) -> str:
    """The ledger detail of a removed copy: the key kept in its place (and, semantic, why)."""
    return rows["key"][rep] + (f" (semantic, cos {sim:.3f})" if kind == "semantic" else "")


def pairs_table(rows: dict, removed: dict[int, int], kind: dict[int, str], sim: dict[int, float]) -> pa.Table:
    rem = sorted(removed, key=lambda r: rows["key"][r])
    ph = phash_array(rows["phash"]) if rem else np.zeros(0, np.uint64)
    return pa.table({
        "key": [rows["key"][r] for r in rem],
        "kept_key": [rows["key"][removed[r]] for r in rem],
        "kind": [kind[r] for r in rem],
        "distance": pa.array([int(np.bitwise_count(ph[r] ^ ph[removed[r]])) for r in rem], pa.int32()),
        "similarity": pa.array([sim.get(r) for r in rem], pa.float32()),
    })


def run_dedup(out_dir: str | Path, max_distance: int = 8, near: bool = True, semantic: bool = False, eps: float = 0.05,
              clusters: int = 0) -> dict:
    """The pass on the current Ray (started by the caller); -> a summary for manifest.json."""
    import ray

    t0 = time.perf_counter()
    out = Path(out_dir).absolute()
    ledgers = sorted((out / LEDGER_DIR).glob("*.parquet"))
    load = ray.remote(num_cpus=1)(unit_hashes)
    parts = ray.get([load.remote(str(p), semantic) for p in ledgers])
    rows = {k: [v for p in parts for v in p[k]] for k in ("key", "pixel_hash", "phash")}
    rows["pixels"] = np.concatenate([p["pixels"] for p in parts]) if parts else np.zeros(0, np.int64)
    unit_of = [p["unit"] for p in parts for _ in p["key"]]
    pairs = ray.remote(num_cpus=1)(chunk_pairs)

    def pair_task(jobs):  # one task per chunk, all reading one copy of the hashes
        values = ray.put(jobs[0][0])
        return ray.get([pairs.remote(values, *job[1:]) for job in jobs])

    hash_labels = find_groups(rows, max_distance, near, pair_task)
    labels, emb_rows, emb = hash_labels, np.zeros(0, np.int64), np.zeros((0, 1), np.float16)
    if semantic:
        emb_rows, emb = unit_embeddings(parts)
        sem = semantic_pairs(emb, eps, clusters, _ray_map)
        first = np.unique(hash_labels, return_index=True)[1]  # hash groups joined by the semantic pairs, no second search
        labels = components(len(hash_labels), np.concatenate([np.arange(len(hash_labels)), emb_rows[sem[0]]]),
                            np.concatenate([first[hash_labels], emb_rows[sem[1]]]))
    removed = choose(rows, labels)
    kind, sim = kinds(rows, removed, hash_labels), similarities(removed, emb_rows, emb)
    by_unit: dict[str, dict[str, str]] = {}
    for r, rep in removed.items():
        by_unit.setdefault(unit_of[r], {})[rows["key"][r]] = detail(rows, rep, kind[r], sim.get(r))
    rewrite = ray.remote(num_cpus=1)(rewrite_unit)
    ray.get([rewrite.remote(str(out), u, rem) for u, rem in sorted(by_unit.items())])
    table = pairs_table(rows, removed, kind, sim)
    with atomic_write(out / PAIRS_FILE) as fh:
        pq.write_table(table, fh)
    found = table["kind"].to_pylist()
    return {"max_distance": max_distance, "near": near, "semantic": semantic, "eps": eps, "compared": len(rows["key"]),
            "embeddings": len(emb_rows), "groups": int(len({labels[r] for r in removed.values()})), "removed": len(removed),
            "exact": found.count("exact"), "near_removed": found.count("near"), "semantic_removed": found.count("semantic"),
            "units_rewritten": len(by_unit), "seconds": round(time.perf_counter() - t0, 3)}


def _ray_map(fn, x: np.ndarray, jobs: list) -> list:
    """semantic_pairs' map on Ray: one task per job, all reading one copy of x."""
    import ray

    task = ray.remote(num_cpus=1)(fn)
    ref = ray.put(x)
    return ray.get([task.remote(ref, *job) for job in jobs])


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
    p.add_argument("--semantic", action="store_true", default=None, help="also semantic duplicates from the stored CLIP embeddings (default: the build's)")
    p.add_argument("--eps", type=float, help="semantic duplicates: cosine similarity above 1 - eps (default: the build's, else 0.05)")
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
                            near=not a.no_near and own.get("near", True), semantic=a.semantic or own.get("semantic", False),
                            eps=a.eps if a.eps is not None else own.get("eps", 0.05), clusters=own.get("clusters", 0))
    finally:
        if started:
            import ray

            ray.shutdown()
    if (out / MANIFEST_FILE).is_file():
        from pipeline.manifest import refresh_counts

        refresh_counts(out, {"dedup": summary})
    if summary["semantic"] and not summary["embeddings"]:
        print(f"dedup: --semantic found no stored embeddings in {out}/embeddings: the build ran no CLIP step "
              "(enable clip_score, aesthetic or concepts to store them)", file=sys.stderr)
    print(f"dedup: {summary['removed']} copies removed ({summary['exact']} exact, {summary['near_removed']} near, "
          f"{summary['semantic_removed']} semantic) "
          f"in {summary['groups']} groups of {summary['compared']} samples, {summary['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
