"""URL units: img2dataset's Downloader fetches them (its thread pool, shard reading,
X-Robots-Tag check), with our capped fetch (pipeline/fetch.py), our resizer (safe
decode, kept in memory) and an in-memory sample writer instead of its tar writer, so
nothing is written twice.

Why a patched fetch: img2dataset 1.47's Downloader reads each body whole with
urllib, with no byte limit and a per-read timeout, and follows redirects (to any
address) inside urllib. It has no fetcher argument: its thread pool calls the
module-level `img2dataset.downloader.download_image_with_retry(row, timeout, retries,
user_agent_token, disallowed_header_directives)` by name. We replace that one name,
once, with a function that fetches through `pipeline.fetch` when `timeout` is a
FetchPolicy (which we pass as the Downloader's `timeout`; it reaches only that call)
and otherwise calls the original, so any other use of img2dataset in the process is
unchanged. Import fails loudly if a future img2dataset stops calling that name.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Callable

import img2dataset.downloader as i2d_downloader
import pyarrow as pa
from img2dataset.downloader import Downloader

from pipeline.config import DownloadConfig
from pipeline.decode import Img2DatasetResizer
from pipeline.fetch import FetchError, FetchPolicy, fetch_bytes, policy_for
from pipeline.sample import Sample

_HTTP_CODE = re.compile(r"HTTP Error (\d{3})")


def classify_download_error(message: str) -> str:
    """'category: message' for a failure string from img2dataset's downloader."""
    low = message.lower()
    if re.match(r"^[a-z_]+: ", message):  # already categorised by our resizer
        return message
    m = _HTTP_CODE.search(message)
    if "infinite loop" in low or ("redirect" in low and "loop" in low):
        return f"redirect_loop: {message}"
    if m:
        return f"http_{m.group(1)}: {message}"
    if "timed out" in low or "timeout" in low:
        return f"timeout: {message}"
    if "connection refused" in low:
        return f"connection_refused: {message}"
    if "name or service not known" in low or "nodename nor servname" in low or "getaddrinfo" in low:
        return f"dns_error: {message}"
    return f"download_error: {message}"


def _calls_name(code, name: str) -> bool:
    return name in code.co_names or any(_calls_name(c, name) for c in code.co_consts if hasattr(c, "co_names"))


_I2D_FETCH = "download_image_with_retry"
if not _calls_name(Downloader.download_shard.__code__, _I2D_FETCH) or not hasattr(i2d_downloader, _I2D_FETCH):
    raise ImportError(
        f"img2dataset's Downloader no longer calls {_I2D_FETCH}; the byte/time caps and address checks of "
        "pipeline/fetch.py cannot be applied. Install the pinned img2dataset (constraints.txt)."
    )
_original_fetch = getattr(i2d_downloader, _I2D_FETCH)


def _capped_download_image_with_retry(row, timeout, retries, user_agent_token, disallowed_header_directives):
    """img2dataset's signature and return value ((key, stream or None, error or None))."""
    if not isinstance(timeout, FetchPolicy):
        return _original_fetch(row, timeout, retries, user_agent_token, disallowed_header_directives)
    key, url = row

    def robots(headers):  # img2dataset's own X-Robots-Tag rule, before the body is read
        if disallowed_header_directives and i2d_downloader.is_disallowed(
            headers, user_agent_token, disallowed_header_directives
        ):
            raise FetchError("robots_disallowed", "use of image disallowed by X-Robots-Tag directive")

    try:
        return key, fetch_bytes(url, timeout, retries=retries, check_headers=robots), None
    except FetchError as err:
        return key, None, str(err)


setattr(i2d_downloader, _I2D_FETCH, _capped_download_image_with_retry)


def _memory_writer_class(by_key: dict[str, Sample], resizer: Img2DatasetResizer, on_sample):
    class MemorySampleWriter:
        """img2dataset sample-writer interface; keeps every row (failures too) in memory."""

        def __init__(self, shard_id, output_folder, save_caption, oom_shard_count, schema, encode_format):
            pass

        def write(self, img_str, key, caption, meta):
            stored = resizer.last if img_str is not None else None
            resizer.last = None
            s = by_key[meta["sample_key"]]
            if stored is None:
                s.fail(classify_download_error(meta.get("error_message") or "unknown download failure"))
            else:
                s.image = stored
                on_sample(s)

        def close(self):
            pass

    return MemorySampleWriter


def download_unit(items: list[dict], cfg: DownloadConfig, on_sample: Callable[[Sample], None]) -> list[Sample]:
    samples = [
        Sample(it["key"], i, {"kind": "url", "url": it["url"], "caption": it["caption"], **it["extra"]})
        for i, it in enumerate(items)
    ]
    for s, it in zip(samples, items):
        if it["error"]:
            s.fail(it["error"])
    todo = [(s, it) for s, it in zip(samples, items) if not it["error"]]
    if not todo:
        return samples

    resizer = Img2DatasetResizer(cfg.image_size, cfg.encode_quality, cfg.max_image_pixels)
    by_key = {s.key: s for s, _ in todo}
    with tempfile.TemporaryDirectory(prefix="unit-dl-") as tmp:
        shard_file = Path(tmp) / "input.feather"
        table = pa.table({"url": [it["url"] for _, it in todo], "sample_key": [it["key"] for _, it in todo]})
        with pa.OSFile(str(shard_file), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table)
        downloader = Downloader(
            sample_writer_class=_memory_writer_class(by_key, resizer, on_sample),
            resizer=resizer,
            thread_count=min(cfg.thread_count, len(todo)),
            save_caption=False,
            extract_exif=False,
            output_folder=tmp,
            column_list=["url", "sample_key"],
            timeout=policy_for(cfg),  # see the module docstring: reaches our capped fetch
            number_sample_per_shard=max(10, len(todo)),
            oom_shard_count=5,
            compute_hash=None,
            verify_hash_type=None,
            encode_format="jpg",
            retries=cfg.retries,
            user_agent_token=cfg.user_agent_token,
            disallowed_header_directives=["noai", "noimageai", "noindex", "noimageindex"],
        )
        downloader((0, str(shard_file)))

    for s, _ in todo:
        if s.status == "pending" and s.image is None:  # the downloader lost it: still one ledger row
            s.fail("internal_error: img2dataset returned no result for this URL")
    return samples
