"""Near-duplicate search on 64-bit perceptual hashes without comparing all pairs:
multi-index hashing (Norouzi et al., "Fast search in Hamming space with multi-index
hashing", CVPR 2012). Pure numpy; pipeline/dedup.py runs one `chunk_pairs` per Ray task.

The hash is cut into m chunks. Two hashes within Hamming distance t differ by at most
floor(t/m) bits in at least one chunk (pigeonhole), so for each chunk every hash looks up
the hashes whose chunk equals its own with up to r = floor(t/m) bits flipped: exact
recall, and with chunks of about log2(N) bits each lookup finds about one candidate. A
lookup is a table index (chunks of at most MAX_CHUNK_BITS bits), not a search.
Identical hashes are collapsed first (`unique_hashes`): the index only sees distinct
values, so a million copies of one blank image do not make a million-squared pairs.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

HASH_BITS = 64
MAX_CHUNK_BITS = 22  # a 4M-entry lookup table per chunk (32 MB)


def plan_chunks(n: int, max_distance: int) -> list[tuple[int, int]]:
    """(bit offset, width) of each chunk: about log2(n) bits each (MIH's advice), at most
    max_distance + 1 chunks (then r = 0: exact lookups) and at most MAX_CHUNK_BITS wide."""
    m = round(HASH_BITS / max(math.log2(max(n, 2)), 1))
    m = max(m, math.ceil(HASH_BITS / MAX_CHUNK_BITS))
    m = max(1, min(m, max_distance + 1, HASH_BITS))
    widths = [HASH_BITS // m + (1 if k < HASH_BITS % m else 0) for k in range(m)]
    offsets = np.cumsum([0] + widths[:-1]).tolist()
    return list(zip(offsets, widths))


def flip_masks(width: int, radius: int) -> np.ndarray:
    """Every bit pattern of `width` bits with at most `radius` bits set."""
    out = [sum(1 << b for b in bits) for k in range(radius + 1) for bits in itertools.combinations(range(width), k)]
    return np.array(out, dtype=np.int64)


def chunk_pairs(hashes: np.ndarray, offset: int, width: int, max_distance: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) with i < j and hamming(hashes[i], hashes[j]) <= max_distance, among the
    pairs whose chunk (offset, width) differs by at most `radius` bits."""
    chunk = ((hashes >> np.uint64(offset)) & np.uint64((1 << width) - 1)).astype(np.int32)
    order = np.argsort(chunk, kind="stable").astype(np.int64)
    ordered = chunk[order]  # walking the table in order keeps the lookups below cache-friendly
    counts = np.bincount(chunk, minlength=1 << width).astype(np.int32)
    starts = (np.cumsum(counts, dtype=np.int64) - counts).astype(np.int64)
    found_i, found_j = [], []
    for flip in flip_masks(width, radius):
        q = ordered ^ np.int32(flip)
        cnt = counts[q]
        hit = np.flatnonzero(cnt)
        if not len(hit):
            continue
        q, cnt = q[hit], cnt[hit].astype(np.int64)
        total = int(cnt.sum())
        i = np.repeat(order[hit], cnt)
        within = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        j = order[np.repeat(starts[q], cnt) + within]
        keep = i < j
        i, j = i[keep], j[keep]
        keep = np.bitwise_count(hashes[i] ^ hashes[j]) <= max_distance
        found_i.append(i[keep])
        found_j.append(j[keep])
    if not found_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(found_i), np.concatenate(found_j)


def unique_hashes(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct values, index of each row's value among them)."""
    return np.unique(hashes, return_inverse=True)


def components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected-component label per node of the graph with edges (i, j)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n, n))
    return connected_components(graph, directed=False)[1]
