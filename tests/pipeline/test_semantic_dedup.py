"""SemDeDup's pairs (pipeline/semantic_dedup.py) on synthetic embeddings: planted copies
(cosine ~0.99) are found inside their k-means cluster, distinct rows are not paired, and
the same rows give the same pairs every time (the pass's idempotence rests on it)."""

import numpy as np

from pipeline.semantic_dedup import cluster_batches, semantic_pairs


def _rows(n=3000, dim=32, copies=30, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((20, dim))[rng.integers(0, 20, n)] + rng.standard_normal((n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    src, dst = np.arange(copies), np.arange(n - copies, n)
    x[dst] = x[src] + 0.1 * rng.standard_normal((copies, dim)) / np.sqrt(dim)
    return x.astype(np.float16), {(int(a), int(b)) for a, b in zip(src, dst)}


def test_planted_copies_found_and_deterministic():
    x, planted = _rows()
    i, j = semantic_pairs(x, eps=0.05, clusters=8)
    found = {(int(a), int(b)) for a, b in zip(i, j)}
    assert found == planted  # every copy, nothing else (distinct rows here are far below cosine 0.95)
    i2, j2 = semantic_pairs(x, eps=0.05, clusters=8)
    assert np.array_equal(i, i2) and np.array_equal(j, j2)
    assert len(semantic_pairs(x[:1], 0.05)[0]) == 0


def test_clusters_are_cut_into_batches_of_whole_clusters():
    labels = np.array([0, 1, 0, 2, 1, 3, 3, 3])
    batches = cluster_batches(labels, batch_rows=3)
    assert [[m.tolist() for m in b] for b in batches] == [[[0, 2], [1, 4]], [[5, 6, 7]]]  # cluster 2 (one row) has no pair
