"""img2dataset glue: everything that plugs this pipeline into img2dataset's Downloader.

- the capped fetch: img2dataset 1.47's Downloader reads each body whole with urllib,
  with no byte limit and a per-read timeout, and follows redirects (to any address)
  inside urllib. It has no fetcher argument: its thread pool calls the module-level
  `img2dataset.downloader.download_image_with_retry(row, timeout, retries,
  user_agent_token, disallowed_header_directives)` by name. We replace that one name,
  once, with a function that fetches through `pipeline.fetch` when `timeout` is a
  FetchPolicy (which we pass as the Downloader's `timeout`; it reaches only that call)
  and otherwise calls the original, so any other use of img2dataset in the process is
  unchanged. Import fails, naming the installed and the pinned version, unless the
  function has exactly the replacement's parameters and `download_shard` passes exactly
  those keywords (a new keyword upstream would otherwise fail every URL at run time).
- `Img2DatasetResizer`: its resizer interface, backed by our safe decode-once
  (pipeline/decode.py: ImageDecoder, which skips the pixels of an image whose header
  size is rejected anyway); the decoded array is kept for the filters.
- `memory_writer_class`: its sample-writer interface, keeping every row in memory
  (failures too) instead of writing img2dataset's own tar, so nothing is written twice.
"""

from __future__ import annotations

import inspect
import re
import sys
import tempfile
from importlib.metadata import version

import img2dataset.downloader as i2d_downloader
from img2dataset.downloader import Downloader

from pipeline.decode import DecodeError, ImageDecoder, StoredImage
from pipeline.fetch import FetchError, FetchPolicy, fetch_bytes
from pipeline.sample import Sample

_HTTP_CODE = re.compile(r"HTTP Error (\d{3})")


def _drop_wandb_temp_dirs() -> None:
    """img2dataset imports wandb, whose import makes two temporary folders (`tmp*wandb-media`,
    `tmp*wandb-artifacts`) that only a clean interpreter exit removes; Ray ends its workers
    without one, so every build left them in /tmp. Nothing here uses wandb: remove them now
    (only these two objects, which this process created)."""
    private = sys.modules.get("wandb.sdk.data_types._private")
    artifact = getattr(sys.modules.get("wandb.sdk.artifacts.artifact"), "Artifact", None)
    for tmp in (getattr(private, "MEDIA_TMP", None), getattr(artifact, "_TMP_DIR", None)):
        if isinstance(tmp, tempfile.TemporaryDirectory):
            tmp.cleanup()


_drop_wandb_temp_dirs()


def classify_download_error(message: str) -> str:
    """'category: message' for a failure string from img2dataset's downloader."""
    low = message.lower()
    if re.match(r"^[a-z][a-z0-9_]*: ", message):  # already categorised (our fetch, our resizer): http_404 too
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


_I2D_FETCH = "download_image_with_retry"
WRITTEN_FOR = "1.47.0"  # the img2dataset this patch was checked against; constraints.txt pins it


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


def _name_tuples(code):
    """Every tuple of names among the constants of `code` and the code nested in it
    (a call's keyword names are such a tuple)."""
    for c in code.co_consts:
        if hasattr(c, "co_consts"):
            yield from _name_tuples(c)
        elif isinstance(c, tuple) and all(isinstance(x, str) for x in c):
            yield c


def check_fetch_target(fetch, download_shard) -> None:
    """ImportError unless img2dataset's fetch function has exactly the replacement's
    parameters and `download_shard` calls it by name with exactly those keywords."""
    ours = list(inspect.signature(_capped_download_image_with_retry).parameters)
    problems = []
    if fetch is None:
        problems.append(f"img2dataset.downloader has no {_I2D_FETCH}")
    elif list(inspect.signature(fetch).parameters) != ours:
        problems.append(f"{_I2D_FETCH}{inspect.signature(fetch)} is not ({', '.join(ours)})")
    code = download_shard.__code__
    calls = any(_I2D_FETCH in c.co_names for c in [code, *(k for k in code.co_consts if hasattr(k, "co_names"))])
    if not calls:
        problems.append(f"Downloader.download_shard no longer calls {_I2D_FETCH}")
    elif tuple(ours[1:]) not in set(_name_tuples(code)):
        problems.append(f"Downloader.download_shard does not call it with exactly the keywords {', '.join(ours[1:])}")
    if problems:
        raise ImportError(
            f"img2dataset {version('img2dataset')} is installed, but pipeline/img2dataset_glue.py replaces its fetch for "
            f"img2dataset {WRITTEN_FOR}: " + "; ".join(problems) + ". Without it the byte/time caps and address checks of "
            f"pipeline/fetch.py cannot be applied: install img2dataset=={WRITTEN_FOR} (pip install -c constraints.txt -e .) "
            "or update the replacement to the new signature."
        )


check_fetch_target(getattr(i2d_downloader, _I2D_FETCH, None), Downloader.download_shard)
_original_fetch = getattr(i2d_downloader, _I2D_FETCH)
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
