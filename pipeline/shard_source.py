"""WebDataset units: read an existing shard (this project's, or any img2dataset
output such as a LAION subset) so its images go through the filters and annotators
again, into new shards with a ledger: re-captioning a dataset you already have.

One unit per input shard, read as a stream (one sample in memory at a time). Each
sample is one ledger row: a sample without an image, or whose image does not decode,
is a failed row; a shard that cannot be opened, or breaks part-way (truncated tar),
adds one failed row (`<shard key>_error`) after the samples read so far.

Keys: a hash of (shard path, original key), so two datasets that both number their
samples 000000001 do not collide; the original key is kept in `json.source.key`.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable

from pipeline.config import DownloadConfig
from pipeline.decode import DecodeError, ImageDecoder
from pipeline.keys import source_key
from pipeline.safe_text import safe_text
from pipeline.sample import Sample
from pipeline.shard_reader import iter_samples
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
        except ValueError:
            pass  # a bad json member does not cost the image
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
    samples: list[Sample] = []

    def failure(error: str) -> Sample:
        s = Sample(f"{it.key}_error", len(samples), {"kind": "webdataset", "path": shard, "caption": ""})
        s.fail(error)
        return s

    if it.error:
        return [failure(it.error)]
    seen: dict[str, int] = {}
    try:
        with tarfile.open(shard, mode="r|*") as tar:
            for key, parts in iter_samples(tar):
                n = seen.get(key, 0)
                seen[key] = n + 1
                s = Sample(source_key(f"{shard}#{key}") + (f"_dup{n}" if n else ""), len(samples), _source(it, key, parts))
                samples.append(s)
                key = s.source["key"]  # UTF-8-safe, for the messages below
                ext = next((e for e in IMAGE_EXTS if e in parts), None)
                if ext is None:
                    s.fail(f"missing_image: sample {key} in {shard} has no {'/'.join(IMAGE_EXTS)} member "
                           f"(has: {', '.join(sorted(parts)) or 'nothing'})")
                    continue
                try:
                    s.image = decoder.from_bytes(parts[ext])
                except DecodeError as err:
                    s.fail(str(err))
                    continue
                on_sample(s)
    except (tarfile.TarError, OSError, EOFError) as err:
        where = f"after {len(samples)} samples" if samples else "before the first sample"
        reason = "shard_open_error" if not samples else "shard_truncated"
        samples.append(failure(f"{reason}: reading {shard} failed {where}: {err}"))
    if not samples:
        samples.append(failure(f"shard_empty: {shard} holds no samples"))
    return samples
