"""Read the workflow's sources into a flat, ordered list of input items, then cut it
into work units (one unit = one task for a worker = one shard + one ledger file).

Every input item gets a stable key here. Items that can never be fetched (a missing
URL, a non-http(s) scheme such as file:// or ftp://) are marked with an `error` now and
are never handed to the downloader, but still get their ledger row.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd

from pipeline.config import FolderSource, UrlListSource, VideoSource, WebDatasetSource, WorkflowConfig
from pipeline.keys import KeyAssigner, source_key
from pipeline.shard_paths import expand_shards

URL_LIST_READERS = {
    ".parquet": lambda p: pd.read_parquet(p),
    ".csv": lambda p: pd.read_csv(p, dtype=str, keep_default_na=False),
    ".tsv": lambda p: pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False),
    ".jsonl": lambda p: pd.read_json(p, lines=True, dtype=False),
}


class SourceError(ValueError):
    """An input that cannot be read at all; the message names the input and the fix."""


@dataclass(frozen=True)
class VideoSampling:
    every_seconds: float | None  # a frame every N seconds (None: off)
    keyframes: bool  # also every keyframe


@dataclass(frozen=True)
class InputItem:
    """One input of a unit, whatever its kind: a URL, an image file, a video, a shard."""

    key: str  # stable across runs (pipeline/keys.py)
    location: str | None  # the URL, or the path of the file / video / shard; None: a URL row left empty
    caption: str = ""  # the alt text
    extra: dict = field(default_factory=dict)  # the input's other columns, carried into the sample's json
    error: str | None = None  # why it can never be fetched ('category: message'), known when planning
    video: VideoSampling | None = None  # video inputs only


@dataclass
class Unit:
    unit_id: int
    kind: str  # "url" | "file" | "video" | "webdataset"
    items: list[InputItem] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.unit_id:05d}"


def _json_safe(value):
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if hasattr(value, "item"):  # numpy scalar
        return _json_safe(value.item())
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    return str(value)


def url_problem(url) -> str | None:
    """Why a URL must not be fetched, or None. Only http(s) is ever fetched."""
    if url is None or (isinstance(url, float) and math.isnan(url)) or str(url).strip() == "":
        return "missing_url: the row has an empty url"
    scheme = urlsplit(str(url).strip()).scheme.lower()
    if scheme not in ("http", "https"):
        return f"unsupported_url_scheme: only http and https URLs are fetched, got {scheme or 'no scheme'!r}"
    return None


def read_url_list(path: str | Path) -> list[dict]:
    """Rows of a URL list as dicts with `url`, `caption` and `extra` (the other columns)."""
    path = Path(path)
    reader = URL_LIST_READERS.get(path.suffix.lower())
    if reader is None:
        raise SourceError(
            f"URL list {path}: unknown format {path.suffix!r}; use one of {', '.join(URL_LIST_READERS)}"
        )
    if not path.is_file():
        raise SourceError(f"URL list {path} does not exist; check the path (sources[].path or --input)")
    try:
        df = reader(path)
    except Exception as err:  # noqa: BLE001 - any parse failure is the same user error
        raise SourceError(f"URL list {path} could not be read as {path.suffix[1:]}: {err}") from None
    if "url" not in df.columns:
        raise SourceError(
            f"URL list {path} has no 'url' column (columns: {', '.join(map(str, df.columns)) or 'none'}); "
            "rename the column holding image URLs to 'url' (an optional 'caption' column is the alt text)"
        )
    if len(df) == 0:
        raise SourceError(f"URL list {path} has no rows; give it at least one URL")
    extra_cols = [c for c in df.columns if c not in ("url", "caption")]
    rows = []
    for rec in df.to_dict("records"):
        url = rec["url"]
        caption = rec.get("caption")
        rows.append(
            {
                "url": None if url is None or (isinstance(url, float) and math.isnan(url)) else str(url).strip(),
                "caption": "" if caption is None or (isinstance(caption, float) and math.isnan(caption)) else str(caption),
                "extra": {str(c): _json_safe(rec[c]) for c in extra_cols},
            }
        )
    return rows


def list_folder(src: FolderSource) -> list[Path]:
    root = Path(src.path)
    if not root.is_dir():
        raise SourceError(f"image folder {root} does not exist or is not a folder (sources[].path)")
    exts = {e.lower() for e in src.extensions}
    pattern = root.rglob("*") if src.recursive else root.glob("*")
    return sorted(p for p in pattern if p.is_file() and p.suffix.lower() in exts)


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def plan_units(cfg: WorkflowConfig) -> list[Unit]:
    """All input items, keyed and cut into units, in a deterministic order."""
    keys = KeyAssigner()
    url_items, file_items, units = [], [], []
    for src in cfg.sources:
        if isinstance(src, UrlListSource):
            for row in read_url_list(src.path):
                source = row["url"] or f"{src.path}#row{len(url_items)}"
                url_items.append(InputItem(keys(source), row["url"], row["caption"], row["extra"], url_problem(row["url"])))
        elif isinstance(src, FolderSource):
            for p in list_folder(src):
                file_items.append(InputItem(keys(str(p.resolve())), str(p)))
        elif isinstance(src, VideoSource):
            video = src.path
            is_url = "://" in video
            problem = url_problem(video) if is_url else (None if Path(video).is_file() else f"missing_file: video {video} does not exist")
            units.append(
                Unit(
                    0,
                    "video",
                    [InputItem(source_key(video), video, src.caption, error=problem,
                               video=VideoSampling(src.every_seconds, src.keyframes))],
                )
            )
        elif isinstance(src, WebDatasetSource):
            for shard in expand_shards(src.path, "webdataset source (sources[].path)", SourceError, local_only=True):
                units.append(Unit(0, "webdataset", [InputItem(source_key(shard), shard)]))
    size = cfg.output.shard_size
    planned = [Unit(0, "url", chunk) for chunk in _chunks(url_items, size)]
    planned += [Unit(0, "file", chunk) for chunk in _chunks(file_items, size)]
    planned += units
    for i, unit in enumerate(planned):
        unit.unit_id = i
    if not planned:
        raise SourceError("the workflow's sources hold no input items (empty folders?); add images or URLs")
    return planned


def fingerprint(units: list[Unit]) -> str:
    """Identifies the exact input plan, so --resume refuses a different one."""
    h = hashlib.sha1()
    for u in units:
        h.update(f"{u.kind}:{len(u.items)}:".encode())
        for it in u.items:
            h.update(it.key.encode())
    return h.hexdigest()
