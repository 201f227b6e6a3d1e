"""Stable sample keys: the same source gives the same key on every run.

WebDataset splits a tar member name at its first dot, so keys are hex digests (plus
an occurrence suffix for a URL listed twice, and the frame time for video frames).
"""

from __future__ import annotations

import hashlib


def source_key(source: str) -> str:
    # surrogatepass: a path with undecodable bytes still has a stable key
    return hashlib.sha1(source.encode("utf-8", "surrogatepass")).hexdigest()[:20]


def frame_key(video_source: str, time_s: float) -> str:
    return f"{source_key(video_source)}_{round(time_s * 1000):010d}"


class KeyAssigner:
    """Keys for a sequence of sources; the n-th repeat of a source gets `_dupN`."""

    def __init__(self):
        self._seen: dict[str, int] = {}

    def __call__(self, source: str) -> str:
        n = self._seen.get(source, 0)
        self._seen[source] = n + 1
        key = source_key(source)
        return key if n == 0 else f"{key}_dup{n}"
