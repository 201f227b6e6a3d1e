"""`--validate [--shards 'DIR/{00000..00009}.tar']`: check shards as a trainer will read them.

Every tar is read to its end (a truncated tar fails, also one cut at a member
boundary: its end-of-archive blocks are missing); keys are unique across ALL shards
(webdataset groups by adjacent key and silently accepts a key repeated further on);
each sample has jpg + txt + json, the jpg decodes to the size its json states, the
json has the sample schema; and, given the build's ledger, ledger and shards agree:
every kept row is in exactly the shard it names, and nothing else is in the shards.
"""

from __future__ import annotations

import json
import tarfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from braceexpand import braceexpand

from pipeline.shard_reader import iter_members

REQUIRED_PARTS = ("jpg", "txt", "json")
END_OF_ARCHIVE = b"\0" * 1024  # two zero blocks: tarfile writes them on close


@dataclass
class ShardReport:
    path: str
    samples: int = 0
    bytes: int = 0
    readable: bool = True


@dataclass
class Validation:
    shards: list[ShardReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def shard_paths(out_dir: Path, pattern: str | None) -> list[Path]:
    if pattern:
        return [Path(p) for p in braceexpand(pattern)]
    return sorted((Path(out_dir) / "shards").glob("*.tar"))


def _check_json(key: str, raw: bytes, jpg_shape) -> list[str]:
    try:
        meta = json.loads(raw)
    except ValueError as err:
        return [f"json is not valid JSON ({err})"]
    if not isinstance(meta, dict):
        return ["json is not an object"]
    probs = []
    for name, kind in (("key", str), ("source", dict), ("sizes", dict), ("scores", dict), ("pipeline_version", str)):
        if not isinstance(meta.get(name), kind):
            probs.append(f"json.{name} missing or not a {kind.__name__}")
    if isinstance(meta.get("key"), str) and meta["key"] != key:
        probs.append(f"json.key {meta['key']!r} differs from the sample key")
    src = meta.get("source")
    if isinstance(src, dict) and not (src.get("url") or src.get("path")):
        probs.append("json.source has neither url nor path")
    sizes = meta.get("sizes")
    if isinstance(sizes, dict):
        for k in ("original_width", "original_height", "width", "height"):
            if not isinstance(sizes.get(k), int):
                probs.append(f"json.sizes.{k} missing or not an int")
        if jpg_shape is not None and (sizes.get("height"), sizes.get("width")) != tuple(jpg_shape[:2]):
            probs.append(f"jpg is {jpg_shape[1]}x{jpg_shape[0]} but json.sizes says {sizes.get('width')}x{sizes.get('height')}")
    if "annotations" in meta and not isinstance(meta["annotations"], dict):
        probs.append("json.annotations is not an object")
    return probs


def _read_tar(path: Path, rep: ShardReport, problems: list[str]) -> list[tuple[str, dict]]:
    """(key, {ext: bytes}) groups in file order; a key repeated non-adjacently is a separate group."""
    groups: list[tuple[str, dict]] = []
    try:
        with tarfile.open(path, mode="r:") as tar:
            for key, ext, data in iter_members(tar, whole=True):
                if groups and groups[-1][0] == key:
                    if ext in groups[-1][1]:
                        problems.append(f"{path}: key {key} has two .{ext} files")
                    groups[-1][1][ext] = data
                else:
                    groups.append((key, {ext: data}))
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 10240))
            tail = fh.read()
        if size % 512 or END_OF_ARCHIVE not in tail:
            raise tarfile.ReadError("no end-of-archive marker (the file is cut short)")
    except (tarfile.TarError, OSError, EOFError) as err:
        rep.readable = False
        problems.append(f"{path}: not readable to its end: {err} (after {len(groups)} samples); the file is truncated or damaged")
    return groups


def validate(shards: list[Path], ledger: pd.DataFrame | None, out_dir: Path | None = None) -> Validation:
    v = Validation()
    if not shards:
        v.problems.append("no shards to validate (the build kept nothing, or --shards matched no file)")
    where: dict[str, list[str]] = defaultdict(list)  # key -> shards (relative names) holding it
    for path in shards:
        rep = ShardReport(str(path))
        v.shards.append(rep)
        if not path.is_file():
            rep.readable = False
            v.problems.append(f"{path}: does not exist")
            continue
        rep.bytes = path.stat().st_size
        name = _shard_name(path, out_dir)
        for key, parts in _read_tar(path, rep, v.problems):
            rep.samples += 1
            where[key].append(name)
            missing = [p for p in REQUIRED_PARTS if p not in parts]
            if missing:
                v.problems.append(f"{path}: sample {key} has no {', '.join(missing)}")
            shape = None
            if "jpg" in parts:
                img = cv2.imdecode(np.frombuffer(parts["jpg"], np.uint8), cv2.IMREAD_COLOR)
                if img is None:
                    v.problems.append(f"{path}: sample {key}: jpg does not decode")
                else:
                    shape = img.shape
            if "json" in parts:
                v.problems += [f"{path}: sample {key}: {p}" for p in _check_json(key, parts["json"], shape)]
            if "txt" in parts:
                try:
                    parts["txt"].decode("utf-8")
                except UnicodeDecodeError:
                    v.problems.append(f"{path}: sample {key}: txt is not UTF-8")
    for key, names in where.items():
        if len(names) > 1:
            v.problems.append(f"key {key} appears {len(names)} times: in {', '.join(names)} (keys must be unique across all shards)")
    if ledger is not None:
        v.problems += _ledger_agreement(ledger, where, {_shard_name(p, out_dir) for p in shards})
    return v


def _shard_name(path: Path, out_dir: Path | None) -> str:
    """The name the ledger's `shard` column uses (shards/NNNNN.tar), else the path."""
    if out_dir is not None:
        try:
            return str(Path(path).resolve().relative_to(Path(out_dir).resolve()))
        except ValueError:
            pass
    return str(path)


def _ledger_agreement(ledger: pd.DataFrame, where: dict[str, list[str]], validated: set[str]) -> list[str]:
    probs = []
    by_key = ledger.set_index("key")
    kept = ledger[ledger["status"] == "kept"]
    for _, row in kept[kept["shard"].isin(validated)].iterrows():
        if row["key"] not in where:
            probs.append(f"ledger row {row['key']} ({row['source']}) is kept in {row['shard']} but no shard holds that sample")
        elif row["shard"] not in where[row["key"]]:
            probs.append(f"ledger row {row['key']} names {row['shard']} but the sample is in {', '.join(where[row['key']])}")
    for key, names in where.items():
        if key not in by_key.index:
            probs.append(f"sample {key} in {', '.join(names)} has no ledger row")
            continue
        row = by_key.loc[key]
        if isinstance(row, pd.DataFrame):
            probs.append(f"ledger has {len(row)} rows for key {key}")
            continue
        if row["status"] != "kept":
            probs.append(f"sample {key} in {', '.join(names)} is {row['status']} ({row['reason']}) in the ledger; only kept samples belong in shards")
    return probs
