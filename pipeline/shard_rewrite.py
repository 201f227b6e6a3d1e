"""Rewriting a finished shard in place (re-captioning, removing duplicates): its members
read whole, changed or dropped, and written back with `atomic_write`, so a reader finds
the old shard or the new one, never a part."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from pipeline.output_layout import atomic_write

Member = tuple[tarfile.TarInfo, bytes | None]  # None: not a file (a folder entry)


def read_members(path: Path) -> list[Member]:
    with tarfile.open(path) as tar:
        return [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]


def write_members(path: Path, members: list[Member]) -> None:
    with atomic_write(path) as fh, tarfile.open(fileobj=fh, mode="w") as out:
        for m, d in members:
            if d is None:
                out.addfile(m)
            else:
                m.size = len(d)
                out.addfile(m, io.BytesIO(d))
