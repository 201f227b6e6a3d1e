"""The layout of a build's output folder, shared by everything that writes or reads it
(the build, filter-report, annotate.refuse), and the one way a file in it is written:
`atomic_write`. No heavy imports: the report starts fast."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

SHARD_DIR = "shards"  # NNNNN.tar: WebDataset shards of kept samples, one per unit
LEDGER_DIR = "ledger"  # NNNNN.parquet: one row per input item; a unit is done when its ledger exists
EMBED_DIR = "embeddings"  # NNNNN.json + .npy: CLIP image embeddings of a shard's samples (pipeline/embeddings.py)
REJECTS_DIR = "rejects"  # NNNNN.tar: thumbnails of some rejected samples, for filter-report
STATE_FILE = "_state.json"  # the run's config and input fingerprint, written when it starts
MANIFEST_FILE = "manifest.json"  # written when a run ends
PAIRS_FILE = "dedup.parquet"  # the copies the duplicate pass removed (pipeline/dedup.py)
TMP_SUFFIX = ".tmp"  # files being written; renamed when complete, deleted by --resume


def atomic_path(path: Path) -> Path:
    """Where to write `path` before renaming it into place."""
    return path.with_name(f"{path.name}.{os.getpid()}{TMP_SUFFIX}")


def fsync_dir(folder: Path) -> None:
    """Make the entries of `folder` (a rename into it) durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_write(path: str | Path) -> Iterator[BinaryIO]:
    """`with atomic_write(path) as fh:` writes `path` whole and durably, or not at all.

    The bytes go to `atomic_path(path)`, which is flushed and fsynced, renamed over `path`,
    and then the folder is fsynced: after a crash or power loss a reader finds the old file
    or the complete new one, never a part (the ledger relies on it: a unit is done when its
    ledger file exists). If writing fails, the temporary file is removed and the error raised.
    """
    path = Path(path)
    tmp = atomic_path(path)
    try:
        with open(tmp, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_write(path) as fh:
        fh.write(data)
