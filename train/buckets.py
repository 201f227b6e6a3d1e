"""Aspect-ratio buckets (PixArt-alpha style) and the streaming per-bucket batcher.

A bucket is a (height, width) in pixels, both multiples of `multiple` (the VAE's 8 x the
UNet's 8), at about `resolution**2` pixels, for height/width ratios from 0.25 to 4.0.
Each sample goes to the bucket whose ratio is nearest its own, read from the stored
size in its json (no decode). Batches are formed per bucket, so one batch holds one size.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Iterable, Iterator

# height/width ratios, as in PixArt's ASPECT_RATIO tables (0.25 ... 4.0)
RATIOS = (0.25, 0.26, 0.27, 0.28, 0.32, 0.33, 0.35, 0.4, 0.42, 0.48, 0.5, 0.52, 0.57, 0.6, 0.68, 0.72, 0.78,
          0.82, 0.88, 0.94, 1.0, 1.07, 1.13, 1.21, 1.29, 1.38, 1.46, 1.67, 1.75, 2.0, 2.09, 2.4, 2.5, 2.89, 3.0,
          3.11, 3.62, 3.75, 3.88, 4.0)


def bucket_table(resolution: int, multiple: int = 64) -> list[tuple[int, int]]:
    """(height, width) per ratio at ~resolution^2 pixels, sides rounded to `multiple`; unique, sorted by ratio."""
    area = resolution * resolution
    out = []
    for r in RATIOS:
        h = max(multiple, round(math.sqrt(area * r) / multiple) * multiple)
        w = max(multiple, round(math.sqrt(area / r) / multiple) * multiple)
        if (h, w) not in out:
            out.append((h, w))
    return sorted(out, key=lambda hw: hw[0] / hw[1])


def assign_bucket(height: int, width: int, table: list[tuple[int, int]]) -> tuple[int, int]:
    """The bucket whose log aspect ratio is nearest the image's."""
    r = math.log(height / width)
    return min(table, key=lambda hw: abs(math.log(hw[0] / hw[1]) - r))


class BucketBatcher:
    """Groups a stream of (bucket, item) into batches of one bucket each.

    Deterministic: the same stream gives the same batches in the same order. Items of
    a rare bucket wait in its buffer until it fills; `flush=True` (finite validation
    streams) yields the partial batches at the end.
    """

    def __init__(self, batch_size: int, flush: bool = False):
        self.batch_size, self.flush = batch_size, flush
        self.assigned: Counter = Counter()  # samples per bucket, for the bucket-fill log

    def __call__(self, items: Iterable[tuple[tuple[int, int], dict]]) -> Iterator[tuple[tuple[int, int], list[dict]]]:
        buffers: dict[tuple[int, int], list[dict]] = {}
        for bucket, item in items:
            self.assigned[bucket] += 1
            buf = buffers.setdefault(bucket, [])
            buf.append(item)
            if len(buf) == self.batch_size:
                yield bucket, buf
                buffers[bucket] = []
        if self.flush:
            for bucket, buf in buffers.items():
                if buf:
                    yield bucket, buf
