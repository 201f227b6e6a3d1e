"""WebDataset units: read an existing shard (this project's, or any img2dataset
output such as a LAION subset) so its images go through the filters and annotators
again, into new shards with a ledger: re-captioning a dataset you already have.

One unit per input shard, read as a stream (one sample in memory at a time, each member
capped at `download.max_bytes` before it is read; pipeline/input_shard_reader.py says how
every kind of member is accounted for). Each sample is one ledger row: a sample without
an image, whose image does not decode, or with a member that cannot be used (too large,
a link out of the tar, a device, a repeated extension) is a failed row; a shard that
cannot be opened, or breaks part-way (cut anywhere, also at a member boundary), adds one
failed row (`<shard key>_error`) after the samples read so far.

Keys: a hash of (shard path, original key), so two datasets that both number their
samples 000000001 do not collide; the original key is kept in `json.source.key`.
"""

from __future__ import annotations

import json
import tarfile
import zlib
from collections.abc import Callable

from pipeline.config import DownloadConfig
from pipeline.decode import DecodeError, ImageDecoder
from pipeline.input_shard_reader import InputShardReader, open_input_shard
from pipeline.keys import source_key
from pipeline.safe_text import safe_text
from pipeline.sample import Sample
from pipeline.sources import InputItem

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")


def _source(it: InputItem, key: str, parts: dict[str, bytes]) -> dict:
    """A member sample's Sample.source; its key (the member name), alt text and url are
    made UTF-8-safe here, and escaped ones named in `text_repaired`."""
    src = it.source_fields("webdataset")
    fields = {"key": key, "caption": parts.get("txt", b"")}
    if "json" in parts:
        try:
            meta = json.loads(parts["json"])
            inner = meta.get("source", meta) if isinstance(meta, dict) else {}
            if isinstance(inner, dict) and isinstance(inner.get("url"), str):
                fields["url"] = inner["url"]
        except (ValueError, RecursionError):
            pass  # a bad (or absurdly nested) json member does not cost the image
    repaired = set(src.get("text_repaired", ()))
    for name, value in fields.items():
        src[name], fixed = safe_text(value)
        repaired |= {name} if fixed else set()
    if repaired:
        src["text_repaired"] = sorted(repaired)
    return src


def load_shard_unit(items: list[InputItem], cfg: DownloadConfig, decoder: ImageDecoder, on_sample: Callable[[Sample], None]) -> list[Sample]:
    (it,) = items
    shard = it.location
    name = it.source_fields("webdataset")["path"]  # UTF-8-safe, for messages
    samples: list[Sample] = []

    def failure(error: str) -> Sample:
        s = Sample(f"{it.key}_error", len(samples), {"kind": "webdataset", "path": name, "caption": ""})
        s.fail(error)
        return s

    if it.error:
        return [failure(it.error)]
    seen: dict[str, int] = {}
    reader = InputShardReader(shard, cfg.max_bytes, "download.max_bytes")
    try:
        with open_input_shard(shard) as tar:
            for member in reader.samples(tar):
                n = seen.get(member.key, 0)
                seen[member.key] = n + 1
                parts = member.parts
                s = Sample(source_key(f"{shard}#{member.key}") + (f"_dup{n}" if n else ""), len(samples),
                           _source(it, member.key, parts))
                samples.append(s)
                if member.problem:
                    s.fail(safe_text(member.problem)[0])
                    continue
                key = s.source["key"]  # UTF-8-safe, for the messages below
                ext = next((e for e in IMAGE_EXTS if e in parts), None)
                if ext is None:
                    s.fail(f"missing_image: sample {key} in {name} has no {'/'.join(IMAGE_EXTS)} member "
                           f"(has: {', '.join(sorted(safe_text(p)[0] for p in parts)) or 'nothing'})")
                    continue
                try:
                    s.image = decoder.from_bytes(parts[ext])
                except DecodeError as err:
                    s.fail(str(err))
                    continue
                on_sample(s)
            ended = tar.end_problem
        if ended and samples:
            samples.append(failure(f"shard_truncated: {name}: {ended}, after {len(samples)} samples"))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        where = f"after {len(samples)} samples" if samples else "before the first sample"
        reason = "shard_open_error" if not samples else "shard_truncated"
        samples.append(failure(f"{reason}: reading {name} failed {where}: {safe_text(str(err))[0]}"))
    if not samples:
        samples.append(failure(f"shard_empty: {name} holds no samples"))
    return samples
