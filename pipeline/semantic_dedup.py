"""Semantic duplicates from the stored CLIP image embeddings (SemDeDup: Abbas et al.,
"SemDeDup: Data-efficient learning at web-scale through semantic deduplication", 2023):
k-means on the embeddings, then, inside each cluster, every pair whose cosine similarity
is above 1 - eps is a pair of duplicates. pipeline/dedup.py adds these pairs to the exact
and near ones, so groups and the sample each keeps follow the pass's one rule.

- k-means: scikit-learn's KMeans (Lloyd, random init, fixed seed, one thread: under load
  its OpenMP threads spin, 7x slower here with two) fitted on a fixed sample of at most
  FIT_ROWS_PER_CLUSTER rows per cluster, then every row goes to its nearest centroid (one
  task per block of rows). The rows come in key order, so the same rows give the same
  clusters every run.
  The embeddings are L2-normalised, so the Euclidean k-means groups by cosine (as
  SemDeDup's spherical k-means does, closely).
- `clusters` 0 = one per ROWS_PER_CLUSTER rows (SemDeDup used 50,000 for 440 M images;
  a pair split across two clusters is missed, the price of not comparing all pairs).
- within a cluster, similarities are computed a block of rows at a time (`cluster_pairs`,
  one Ray task per batch of clusters in pipeline/dedup.py), so a large cluster never needs
  its whole similarity matrix in memory.
"""

from __future__ import annotations

import math

import numpy as np

ROWS_PER_CLUSTER = 1000
FIT_ROWS_PER_CLUSTER = 40  # faiss warns below 39 training points per centroid
BLOCK_ROWS = 2048
ASSIGN_ROWS = 100_000  # rows per assignment task
SEED = 0


def normalised(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def fit_centroids(x: np.ndarray, clusters: int = 0) -> np.ndarray:
    """k-means centroids (k x D) of the normalised rows `x`, deterministic for the same rows."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    n = len(x)
    k = min(n, clusters or max(1, math.ceil(n / ROWS_PER_CLUSTER)))
    if k <= 1:
        return x.mean(axis=0, keepdims=True)
    fit = x
    if n > k * FIT_ROWS_PER_CLUSTER:
        fit = x[np.sort(np.random.default_rng(SEED).choice(n, k * FIT_ROWS_PER_CLUSTER, replace=False))]
    with threadpool_limits(1):
        km = KMeans(n_clusters=k, init="random", n_init=1, max_iter=20, random_state=SEED).fit(fit)
    return km.cluster_centers_.astype(np.float32)


def assign(x: np.ndarray, start: int, stop: int, centroids: np.ndarray) -> np.ndarray:
    """Nearest centroid of rows start:stop (argmin |x - c|^2 = argmax x.c - |c|^2 / 2), a block at a time."""
    half = 0.5 * (centroids * centroids).sum(1)
    return np.concatenate([np.argmax(x[a:min(a + BLOCK_ROWS, stop)] @ centroids.T - half, axis=1) for a in range(start, stop, BLOCK_ROWS)]
                          or [np.zeros(0, np.int64)])


def cluster_pairs(x: np.ndarray, members: list[np.ndarray], eps: float) -> tuple[np.ndarray, np.ndarray]:
    """(i, j), i < j, rows of the same cluster (each of `members` lists one cluster's rows)
    whose cosine similarity is above 1 - eps."""
    found_i, found_j = [], []
    for m in members:
        v = x[m]
        for a in range(0, len(m), BLOCK_ROWS):
            sim = v[a:a + BLOCK_ROWS] @ v.T
            r, c = np.nonzero(sim > 1.0 - eps)
            keep = c > r + a
            found_i.append(m[r[keep] + a])
            found_j.append(m[c[keep]])
    if not found_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(found_i).astype(np.int64), np.concatenate(found_j).astype(np.int64)


def cluster_batches(labels: np.ndarray, batch_rows: int = 50_000) -> list[list[np.ndarray]]:
    """The clusters' row lists (clusters of 2+ rows), cut into batches of about batch_rows rows: one task each."""
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    batches, cur, size = [], [], 0
    for m in np.split(order, bounds):
        if len(m) < 2:
            continue
        cur.append(m)
        size += len(m)
        if size >= batch_rows:
            batches.append(cur)
            cur, size = [], 0
    return batches + ([cur] if cur else [])


def semantic_pairs(x: np.ndarray, eps: float, clusters: int = 0, run=None) -> tuple[np.ndarray, np.ndarray]:
    """All within-cluster pairs above 1 - eps among the rows of `x` (N x D, any float type).
    `run(fn, x, jobs)` -> [fn(x, *job) for job in jobs] (one Ray task each in pipeline/dedup.py)."""
    if len(x) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    run = run or (lambda fn, x, jobs: [fn(x, *job) for job in jobs])
    x = normalised(x)
    centroids = fit_centroids(x, clusters)
    labels = np.concatenate(run(assign, x, [(a, min(a + ASSIGN_ROWS, len(x)), centroids) for a in range(0, len(x), ASSIGN_ROWS)]))
    found = run(cluster_pairs, x, [(members, eps) for members in cluster_batches(labels)])
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])
