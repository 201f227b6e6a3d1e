"""Write one unit's output: a WebDataset shard of its kept samples, their CLIP embeddings
(when a CLIP step ran) and its ledger.

Both are written under a temporary name and renamed when complete; the ledger is
renamed last, so a unit counts as done exactly when `ledger/NNNNN.parquet` exists.
A run killed at any moment leaves at most `.tmp` files, which resume deletes.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import webdataset as wds

from pipeline.embeddings import write_unit_embeddings
from pipeline.ledger import write_ledger
from pipeline.output_layout import SHARD_DIR, TMP_SUFFIX, atomic_write
from pipeline.rejects import write_rejects
from pipeline.sample import Sample
from pipeline.verdict import Status
from pipeline.version import PIPELINE_VERSION


def sample_json(s: Sample) -> dict:
    h, w = s.image.height, s.image.width
    return {
        "key": s.key,
        "source": s.source,
        "sizes": {"original_width": s.image.original_width, "original_height": s.image.original_height, "width": w, "height": h},
        "scores": s.scores,
        "filters": s.filter_outputs,
        "annotations": s.annotations,
        "pipeline_version": PIPELINE_VERSION,
    }


def write_shard(out_dir: Path, unit_name: str, kept: list[Sample]) -> str | None:
    if not kept:
        return None
    rel = f"{SHARD_DIR}/{unit_name}.tar"
    final = out_dir / rel
    with atomic_write(final) as fh:
        sink = wds.TarWriter(fh)
        for s in kept:
            sink.write(
                {
                    "__key__": s.key,
                    "jpg": s.image.jpg,
                    "txt": s.training_caption,
                    "json": json.dumps(sample_json(s)).encode("utf-8"),
                }
            )
        sink.close()
    return rel


class OutputFullError(OSError):
    """The output folder cannot take more data: the build stops (the items are not at
    fault, so no row is written for them) and `--resume` finishes it once space is freed."""


def write_unit(out_dir: Path, unit_name: str, samples: list[Sample], score_columns: list[str]) -> None:
    samples = sorted(samples, key=lambda s: s.index)
    try:
        kept = [s for s in samples if s.status == Status.KEPT]
        shard = write_shard(out_dir, unit_name, kept)
        write_unit_embeddings(out_dir, unit_name, [s.key for s in kept], [s.embeddings for s in kept])
        write_rejects(out_dir, unit_name, samples)  # thumbnails of rejected samples, for filter-report
        write_ledger(out_dir, unit_name, samples, shard, score_columns)
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise
        for partial in out_dir.glob(f"*/{unit_name}.*{TMP_SUFFIX}"):  # give the space back
            partial.unlink(missing_ok=True)
        raise OutputFullError(
            err.errno,
            f"output folder {out_dir} cannot be written ({err.strerror}) while writing unit {unit_name}; "
            "free space (or fix the mount), then rerun with --resume: finished units are kept, this one is redone",
        ) from None
