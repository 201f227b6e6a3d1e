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

from pipeline.config import FolderSource, UrlListSource, VideoSource, WebDatasetSource, WorkflowConfig
from pipeline.keys import KeyAssigner, source_key
from pipeline.safe_text import safe_text, safe_value
from pipeline.shard_paths import expand_shards
from pipeline.url_list_rows import READERS as URL_LIST_READERS
from pipeline.url_list_rows import read_records

# Sample.source's own fields: an input column with one of these names stays the user's,
# under `extra` (json.source.extra, the ledger's source_extra), and never replaces them.
PIPELINE_FIELDS = ("kind", "url", "path", "key", "caption", "video_time", "extra", "text_repaired")


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
    repaired: tuple[str, ...] = ()  # text fields whose bad code points were escaped (pipeline/safe_text.py)

    def source_fields(self, kind: str) -> dict:
        """Sample.source for this item: the pipeline's fields, the input's own columns
        under `extra`, every text UTF-8-safe (a local path may hold undecodable bytes)."""
        field_name = "url" if kind == "url" else "path"
        location, fixed = safe_text(self.location) if self.location is not None else (None, False)
        src = {"kind": kind, field_name: location, "caption": self.caption}
        if self.extra:
            src["extra"] = self.extra
        repaired = sorted({*self.repaired, *([field_name] if fixed else [])})
        if repaired:
            src["text_repaired"] = repaired
        return src


@dataclass
class Unit:
    unit_id: int
    kind: str  # "url" | "file" | "video" | "webdataset"
    items: list[InputItem] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.unit_id:05d}"


def _json_safe(value):
    if value is None or isinstance(value, (str, bytes, bool, int)):  # bytes: decoded by safe_value
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


def url_problem(url, where: str = "the row") -> str | None:
    """Why a URL must not be fetched, or None. Only well-formed http(s) URLs are fetched."""
    if url is None or (isinstance(url, float) and math.isnan(url)) or str(url).strip() == "":
        return f"missing_url: {where} has an empty url"
    url = str(url).strip()
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            return f"unsupported_url_scheme: only http and https URLs are fetched, got {scheme or 'no scheme'!r}"
        parts.hostname, parts.port  # noqa: B018 - both parse (and raise) lazily
    except ValueError as err:  # bad IPv6 brackets, a port out of range, NFKC-unsafe host characters
        return f"invalid_url: {url!r} ({where}) cannot be parsed: {err}"
    if not parts.hostname:
        return f"invalid_url: {url!r} ({where}) has no host"
    return None


def _cell_text(value) -> tuple[str | None, bool]:
    """A URL or caption cell as text (None when empty); bytes columns are decoded."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None, False
    return safe_text(value if isinstance(value, (str, bytes, bytearray)) else str(value))


def read_url_list(path: str | Path) -> list[dict]:
    """Rows of a URL list as dicts: `url`, `caption`, `extra` (the other columns),
    `repaired` (text fields escaped), `where` (its line or row) and `error` (an unreadable
    line: it becomes a failed row naming the line)."""
    path = Path(path)
    if path.suffix.lower() not in URL_LIST_READERS:
        raise SourceError(
            f"URL list {path}: unknown format {path.suffix!r}; use one of {', '.join(URL_LIST_READERS)}"
        )
    if not path.is_file():
        raise SourceError(f"URL list {path} does not exist; check the path (sources[].path or --input)")
    try:
        records = read_records(path)
    except Exception as err:  # noqa: BLE001 - any parse failure is the same user error
        raise SourceError(f"URL list {path} could not be read as {path.suffix[1:]}: {err}") from None
    if not records:
        raise SourceError(f"URL list {path} has no rows; give it at least one URL")
    columns = list(dict.fromkeys(k for _, rec, _ in records if rec for k in rec))
    if "url" not in columns:
        raise SourceError(
            f"URL list {path} has no 'url' column (columns: {', '.join(map(str, columns)) or 'none'}); "
            "rename the column holding image URLs to 'url' (an optional 'caption' column is the alt text)"
        )
    return [_row(path, where, rec or {}, error) for where, rec, error in records]


def _row(path: Path, where: str, rec: dict, error: str | None) -> dict:
    url, url_fixed = _cell_text(rec.get("url"))
    caption, caption_fixed = _cell_text(rec.get("caption"))
    extra, extra_fixed = safe_value({str(k): _json_safe(v) for k, v in rec.items() if k not in ("url", "caption")})
    where = f"{where} of {path.name}"
    if error:
        error = f"invalid_row: {where} {error}"
    elif url_fixed:  # which bytes the URL meant cannot be known: never fetch a guess
        error = f"invalid_url: {url!r} ({where}) holds bytes that are not UTF-8 or lone surrogates (escaped here)"
    repaired = tuple(n for n, fixed in (("url", url_fixed), ("caption", caption_fixed), ("extra", extra_fixed)) if fixed)
    return {"url": url.strip() if url else None, "caption": caption or "", "extra": extra, "repaired": repaired,
            "where": where, "error": error or url_problem(url, where)}


def column_collisions(path: str | Path, rows: list[dict]) -> list[str]:
    """A warning when the list's own columns share names with the pipeline's fields."""
    clash = sorted({k for r in rows for k in r["extra"]} & set(PIPELINE_FIELDS))
    if not clash:
        return []
    return [f"URL list {path}: column(s) {', '.join(clash)} share names with the pipeline's own sample fields; "
            "they are kept as the input's columns (json.source.extra, the ledger's source_extra), never as the sample's"]


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


def plan_units(cfg: WorkflowConfig, warnings: list[str] | None = None) -> list[Unit]:
    """All input items, keyed and cut into units, in a deterministic order; what the
    user should know before the build starts is appended to `warnings`."""
    keys = KeyAssigner()
    url_items, file_items, units = [], [], []
    for src in cfg.sources:
        if isinstance(src, UrlListSource):
            rows = read_url_list(src.path)
            if warnings is not None:
                warnings += column_collisions(src.path, rows)
            for row in rows:
                source = row["url"] or f"{src.path}#row{len(url_items)}"
                url_items.append(InputItem(keys(source), row["url"], row["caption"], row["extra"], row["error"],
                                           repaired=row["repaired"]))
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
