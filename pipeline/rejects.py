"""Small thumbnails of rejected samples, so the report can show what a filter dropped.

Rejected samples have no place in the shards. Each unit keeps up to `PER_FILTER`
thumbnails per rejecting filter in `rejects/NNNNN.tar` (WebDataset layout: `jpg` =
thumbnail, `json` = key, source (URL or path), reason, detail, scores), chosen evenly over the filter's
score range with both ends included, so the one nearest the threshold is always there
whichever way the filter's threshold points. Written under a temporary name and renamed,
like the shards, before the unit's ledger (the unit's "done" mark).
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import cv2
import numpy as np

from pipeline.output_layout import REJECTS_DIR, atomic_write
from pipeline.shard_reader import iter_samples
from pipeline.verdict import Status

THUMB_SIDE = 160  # longest side of a stored thumbnail, pixels
PER_FILTER = 8  # thumbnails kept per rejecting filter per unit
THUMB_QUALITY = 80


def thumbnail(jpg: bytes, side: int = THUMB_SIDE) -> bytes | None:
    """A smaller JPEG of `jpg` (never upscaled); None when it cannot be decoded."""
    img = cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return None
    h, w = img.shape[:2]
    scale = side / max(h, w)
    if scale < 1:
        img = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, THUMB_QUALITY])
    return buf.tobytes() if ok else None


def _spread(items: list, n: int) -> list:
    """n items evenly spaced over a sorted list, first and last included."""
    if len(items) <= n:
        return items
    idx = np.unique(np.round(np.linspace(0, len(items) - 1, n)).astype(int))
    return [items[i] for i in idx]


def choose(samples: list, per_filter: int = PER_FILTER) -> list:
    """The rejected samples to keep a thumbnail of, per rejecting filter."""
    by_filter: dict[str, list] = {}
    for s in samples:
        if s.status == Status.REJECTED and s.image is not None and s.image.jpg:
            by_filter.setdefault(s.reason, []).append(s)
    chosen = []
    for reason, group in sorted(by_filter.items()):
        primary = next((k for k in group[0].scores if k.startswith(f"{reason}_")), None)
        if primary is not None:
            group = sorted(group, key=lambda s: (s.scores.get(primary, float("nan")), s.key))
        chosen += _spread(group, per_filter)
    return chosen


def write_rejects(out_dir: Path, unit_name: str, samples: list, per_filter: int = PER_FILTER) -> str | None:
    """Write `rejects/<unit>.tar`; returns its relative path, or None when nothing was rejected."""
    folder = Path(out_dir) / REJECTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(f"{unit_name}.tar.*.tmp"):  # left by a killed run of this unit
        stale.unlink(missing_ok=True)
    records = []
    for s in choose(samples, per_filter):
        thumb = thumbnail(s.image.jpg)
        if thumb is None:
            continue
        meta = {"key": s.key, "source": s.source.get("url") or s.source.get("path"), "reason": s.reason,
                "detail": s.detail, "scores": s.scores}
        records.append({"__key__": s.key, "jpg": thumb, "json": json.dumps(meta).encode("utf-8")})
    if not records:
        return None
    final = folder / f"{unit_name}.tar"
    import webdataset as wds  # here, not at the top: filter-report reads rejects without torch

    with atomic_write(final) as fh:
        sink = wds.TarWriter(fh)
        for rec in records:
            sink.write(rec)
        sink.close()
    return f"{REJECTS_DIR}/{unit_name}.tar"


def read_rejects(out_dir: Path) -> dict[str, tuple[bytes, dict]]:
    """key -> (thumbnail jpg, meta) over every finished `rejects/*.tar`."""
    out: dict[str, tuple[bytes, dict]] = {}
    for path in sorted((Path(out_dir) / REJECTS_DIR).glob("*.tar")):
        files: dict[str, dict] = {}
        try:
            with tarfile.open(path) as tar:
                for key, parts in iter_samples(tar):
                    files.setdefault(key, {}).update(parts)
        except (tarfile.TarError, OSError):
            continue  # a damaged rejects file only costs thumbnails; --validate checks the shards
        for key, parts in files.items():
            if "jpg" in parts and "json" in parts:
                meta = json.loads(parts["json"])
                if "url" in meta and "source" not in meta:  # written before the ledger's `url` became `source`
                    meta["source"] = meta.pop("url")
                out[key] = (parts["jpg"], meta)
    return out



def add_rejects(out_dir: Path, unit_name: str, records: list[tuple[str, bytes, dict]], limit: int = PER_FILTER) -> None:
    """Add thumbnails (key, full-size jpg, meta) of samples rejected after their unit was
    written (the duplicate pass) to `rejects/<unit>.tar`, at most `limit`, skipping keys
    already there, so a pass run twice adds nothing the second time. Atomic, like the rest."""
    from pipeline.shard_reader import member_key_ext
    from pipeline.shard_rewrite import read_members, write_members

    path = Path(out_dir) / REJECTS_DIR / f"{unit_name}.tar"
    members = read_members(path) if path.exists() else []
    have = {(member_key_ext(m.name) or ("",))[0] for m, _ in members}
    added = 0
    for key, jpg, meta in records:
        thumb = thumbnail(jpg) if key not in have and added < limit else None
        if thumb is None:
            continue
        for ext, data in (("jpg", thumb), ("json", json.dumps(meta).encode("utf-8"))):
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.mode, info.size = 0o444, len(data)
            members.append((info, data))
        added += 1
    if added:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_members(path, members)
