"""Every file of the output folder is written whole and durably or not at all
(pipeline/output_layout.py: atomic_write): the bytes are fsynced before the rename and the
folder after it. The ledger, whose existence marks a unit done, goes through it too."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.ledger import write_ledger
from pipeline.output_layout import LEDGER_DIR, TMP_SUFFIX, atomic_write
from pipeline.sample import Sample


@pytest.fixture
def fsynced(monkeypatch) -> list[str]:
    """The paths the code under test fsyncs (the real os.fsync still runs)."""
    seen: list[str] = []
    real = os.fsync

    def spy(fd):
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return seen


def test_the_ledger_is_fsynced_then_renamed_then_its_folder_fsynced(tmp_path, fsynced):
    (tmp_path / LEDGER_DIR).mkdir()
    sample = Sample("k0", 0, {"kind": "url", "url": "http://x/0.jpg"})
    sample.fail("http_404: not found")
    samples = [sample]
    write_ledger(tmp_path, "00000", samples, None, [])
    final = tmp_path / LEDGER_DIR / "00000.parquet"
    assert pq.read_table(final).column("reason").to_pylist() == ["http_404"]
    assert [Path(p).name for p in fsynced] == [f"00000.parquet.{os.getpid()}{TMP_SUFFIX}", LEDGER_DIR]
    assert list((tmp_path / LEDGER_DIR).iterdir()) == [final]


def test_a_failed_write_leaves_the_old_file_and_no_partial_one(tmp_path, fsynced):
    path = tmp_path / "manifest.json"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk trouble"), atomic_write(path) as fh:
        fh.write(b"half of the new")
        raise RuntimeError("disk trouble")
    assert path.read_bytes() == b"old" and list(tmp_path.iterdir()) == [path] and fsynced == []
    with atomic_write(path) as fh:
        fh.write(b"new")
    assert path.read_bytes() == b"new" and list(tmp_path.iterdir()) == [path]
