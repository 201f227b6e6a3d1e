"""img2dataset glue: everything that plugs this pipeline into img2dataset's Downloader.

- the capped fetch: img2dataset 1.47's Downloader reads each body whole with urllib,
  with no byte limit and a per-read timeout, and follows redirects (to any address)
  inside urllib. It has no fetcher argument: its thread pool calls the module-level
  `img2dataset.downloader.download_image_with_retry(row, timeout, retries,
  user_agent_token, disallowed_header_directives)` by name. We replace that one name,
  once, with a function that fetches through `pipeline.fetch` when `timeout` is a
  FetchPolicy (which we pass as the Downloader's `timeout`; it reaches only that call)
  and otherwise calls the original, so any other use of img2dataset in the process is
  unchanged. Import fails loudly if a future img2dataset stops calling that name.
- `Img2DatasetResizer`: its resizer interface, backed by our safe decode-once
  (pipeline/decode.py: ImageDecoder, which skips the pixels of an image whose header
  size is rejected anyway); the decoded array is kept for the filters.
- `memory_writer_class`: its sample-writer interface, keeping every row in memory
  (failures too) instead of writing img2dataset's own tar, so nothing is written twice.
"""

from __future__ import annotations

import re

import img2dataset.downloader as i2d_downloader
from img2dataset.downloader import Downloader

from pipeline.decode import DecodeError, ImageDecoder, StoredImage
from pipeline.fetch import FetchError, FetchPolicy, fetch_bytes
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


def memory_writer_class(by_key: dict[str, Sample], resizer: Img2DatasetResizer, on_sample):
    class MemorySampleWriter:
        """img2dataset sample-writer interface; keeps every row (failures too) in memory."""

        def __init__(self, shard_id, output_folder, save_caption, oom_shard_count, schema, encode_format):
            pass

        def write(self, img_str, key, caption, meta):
            # the resizer's result, whatever img_str is: None for a header-only image (not decoded)
            stored, resizer.last = resizer.last, None
            s = by_key[meta["sample_key"]]
            if stored is None or meta.get("error_message"):
                s.fail(classify_download_error(meta.get("error_message") or "unknown download failure"))
            else:
                s.image = stored
                on_sample(s)

        def close(self):
            pass

    return MemorySampleWriter



class Img2DatasetResizer:
    """img2dataset's resizer interface (called once per downloaded image, in order, each
    followed by the writer's call for it), backed by ImageDecoder. The StoredImage is kept
    in `last` so the pipeline never decodes the stored JPEG again."""

    def __init__(self, decoder: ImageDecoder):
        self.decoder = decoder
        self.last: StoredImage | None = None

    def __call__(self, img_stream, blurring_bbox_list=None):
        self.last = None
        try:
            img_stream.seek(0)
            stored = self.decoder.from_bytes(img_stream.read())
        except DecodeError as err:
            return None, None, None, None, None, str(err)
        except Exception as err:  # noqa: BLE001 - any decoder crash is this sample's failure
            return None, None, None, None, None, f"decode_error: {err.__class__.__name__}: {err}"
        self.last = stored
        return stored.jpg, stored.width, stored.height, stored.original_width, stored.original_height, None
