"""How long the duplicate pass takes on a large build: the real pass (pipeline/dedup.py's
`run_dedup`, on a local Ray) over a synthetic output folder of N rows.

    python bench/dedup_time.py [--rows 1000000] [--units 100] [--dim 512] [--eps 0.05] [--readme]
    python bench/dedup_time.py --semantic-only --rows 1000000

`--semantic-only` times the semantic step alone (pipeline/semantic_dedup.py's stages, in
one process, no Ray, no files) on the same synthetic embeddings: the hash grouping's time
at 1 M rows is bench/dedup_quality.py's.

The folder holds what a build leaves for the pass: one ledger file per unit (kept rows
with pixel_hash, 64-bit pHash, original size) and the unit's stored CLIP embeddings
(float16, pipeline/embeddings.py); no shards (the pass rewrites a shard only where one
exists, so the time is the grouping plus the ledger and embedding rewrites). 1 % of the rows
are planted near copies (pHash of another row with 1-4 bits flipped) and 1 % semantic copies
(another row's embedding plus noise, cosine about 0.99, pHash unrelated). The embeddings
are drawn around 2,000 random centres (cosine about 0.5 inside one), so k-means has
structure to find. Two runs: hashes only (exact + near: the default pass) and with
`semantic` (SemDeDup, eps 0.05), each on a fresh copy of the folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.bench_report import add_readme_option, machine, readme_section
from pipeline.dedup import run_dedup
from pipeline.embeddings import write_unit_embeddings
from pipeline.output_layout import LEDGER_DIR, PAIRS_FILE

CENTRES = 2000
LABEL = "synthetic-clip"


def synthetic_rows(n: int, dim: int, seed: int = 0) -> dict:
    """Hashes and embeddings of n rows, with 1 % planted near copies and 1 % semantic copies."""
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    order = rng.permutation(n)
    k = n // 100
    near, sem = order[:k], order[k:2 * k]
    near_src, sem_src = rng.choice(order[2 * k:], k), rng.choice(order[2 * k:], k)  # originals are never copies themselves
    flips = np.zeros(k, np.uint64)
    for j in range(4):  # 1-4 distinct bits flipped per planted near copy
        bit = rng.integers(0, 64, k).astype(np.uint64)
        flips |= np.where(rng.random(k) < (1.0 if j == 0 else 0.6), np.uint64(1) << bit, np.uint64(0))
    h[near] = h[near_src] ^ flips
    centres = rng.standard_normal((CENTRES, dim)).astype(np.float32)
    emb = centres[rng.integers(0, CENTRES, n)] + rng.standard_normal((n, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    noise = rng.standard_normal((k, dim)).astype(np.float32)
    emb[sem] = emb[sem_src] + 0.1 * noise / np.linalg.norm(noise, axis=1, keepdims=True)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return {"phash": h, "emb": emb.astype(np.float16), "near": (near, near_src), "sem": (sem, sem_src),
            "pixels": rng.integers(100, 2000, (n, 2))}


def write_folder(out: Path, rows: dict, units: int) -> None:
    (out / LEDGER_DIR).mkdir(parents=True)
    n = len(rows["phash"])
    for u, idx in enumerate(np.array_split(np.arange(n), units)):
        name = f"{u:05d}"
        keys = [f"{i:08d}" for i in idx]
        pq.write_table(pa.table({
            "key": keys, "source": [f"http://example.com/{k}.jpg" for k in keys], "status": ["kept"] * len(idx),
            "reason": [""] * len(idx), "detail": [""] * len(idx), "shard": [f"{name}.tar"] * len(idx),
            "original_width": rows["pixels"][idx, 0], "original_height": rows["pixels"][idx, 1],
            "pixel_hash": [f"{i:032x}" for i in idx], "phash": [f"{int(x):016x}" for x in rows["phash"][idx]],
        }), out / LEDGER_DIR / f"{name}.parquet")
        write_unit_embeddings(out, name, keys, [{LABEL: v} for v in rows["emb"][idx]])


def timed_pass(folder: Path, work: Path, semantic: bool, eps: float, rows: dict) -> dict:
    """run_dedup's summary, plus the share of planted near and semantic copies grouped with their original."""
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(folder, work)
    summary = run_dedup(work, 8, True, semantic, eps)
    pairs = pq.read_table(work / PAIRS_FILE).to_pydict()
    rep = dict(zip(pairs["key"], pairs["kept_key"]))
    find = lambda i: rep.get(f"{i:08d}", f"{i:08d}")  # noqa: E731
    for kind in ("near", "sem"):
        copies, src = rows[kind]
        summary[f"{kind}_found"] = float(np.mean([find(c) == find(s) for c, s in zip(copies, src)]))
    return summary


def semantic_only(rows: dict, eps: float) -> None:
    from pipeline.semantic_dedup import ASSIGN_ROWS, assign, cluster_batches, cluster_pairs, fit_centroids, normalised

    n = len(rows["emb"])
    t = [time.perf_counter()]
    x = normalised(rows["emb"])
    centroids = fit_centroids(x)
    t.append(time.perf_counter())
    labels = np.concatenate([assign(x, a, min(a + ASSIGN_ROWS, n), centroids) for a in range(0, n, ASSIGN_ROWS)])
    t.append(time.perf_counter())
    found = [cluster_pairs(x, m, eps) for m in cluster_batches(labels)]
    t.append(time.perf_counter())
    pairs = {(int(min(i, j)), int(max(i, j))) for f in found for i, j in zip(*f)}
    copies, src = rows["sem"]
    recall = float(np.mean([(min(c, s), max(c, s)) in pairs for c, s in zip(copies, src)]))
    sizes = np.bincount(labels)
    print(f"Semantic step alone (one process, no Ray): {n:,} synthetic {x.shape[1]}-d embeddings, {len(centroids):,} clusters "
          f"(largest {sizes.max():,} rows), eps {eps}\n")
    print("| rows | k-means fit (s) | assign (s) | pairs within clusters (s) | total (s) | planted semantic copies found | pairs found |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {n:,} | {t[1] - t[0]:.0f} | {t[2] - t[1]:.0f} | {t[3] - t[2]:.0f} | {t[3] - t[0]:.0f} | {recall:.4f} | {len(pairs):,} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="synthetic rows (1 M: about 4 min on 2 idle cores)")
    ap.add_argument("--units", type=int, default=100, help="ledger files (units) the rows are spread over")
    ap.add_argument("--semantic-only", action="store_true", help="time the semantic step alone, in one process")
    ap.add_argument("--dim", type=int, default=512, help="embedding width (ViT-B/32: 512, ViT-L/14: 768)")
    ap.add_argument("--eps", type=float, default=0.05)
    ap.add_argument("--tmp", default=None, help="folder for the synthetic output (default: the system's temp)")
    add_readme_option(ap, __file__)
    a = ap.parse_args(argv)
    import ray

    from pipeline.runner import init_ray

    with readme_section(a.readme, __file__), tempfile.TemporaryDirectory(dir=a.tmp) as tmp:
        print(f"Machine: {machine()}; load average {os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d')}\n")
        if a.semantic_only:
            semantic_only(synthetic_rows(a.rows, a.dim), a.eps)
            return 0
        t0 = time.perf_counter()
        rows = synthetic_rows(a.rows, a.dim)
        write_folder(Path(tmp) / "built", rows, a.units)
        made = time.perf_counter() - t0
        started = init_ray()
        try:
            results = [(s, timed_pass(Path(tmp) / "built", Path(tmp) / "work", s, a.eps, rows)) for s in (False, True)]
        finally:
            if started:
                ray.shutdown()
        print(f"Dedup pass (`run_dedup`, local Ray, {os.cpu_count()} CPUs) on {a.rows:,} synthetic rows in {a.units} units, "
              f"{a.dim}-d float16 embeddings; planted: {a.rows // 100:,} near copies (1-4 bits), {a.rows // 100:,} semantic "
              f"copies (cosine ~0.99); folder written in {made:.0f} s (not counted)\n")
        print("| pass | rows | seconds | rows/s | removed: near | semantic | planted near copies found | planted semantic copies found |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for semantic, r in results:
            name = f"hashes + semantic (eps {a.eps})" if semantic else "hashes (exact + near, max_distance 8)"
            print(f"| {name} | {r['compared']:,} | {r['seconds']:.1f} | {r['compared'] / r['seconds']:,.0f} | {r['near_removed']:,} | "
                  f"{r['semantic_removed']:,} | {r['near_found']:.4f} | {r['sem_found']:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
