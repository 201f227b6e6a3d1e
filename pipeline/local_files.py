"""Folder units: read each file, decode it once (or only its header, when its size is
rejected anyway), keep the stored image."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline.config import DownloadConfig
from pipeline.decode import DecodeError, ImageDecoder
from pipeline.sample import Sample
from pipeline.sources import InputItem


def load_file_unit(items: list[InputItem], cfg: DownloadConfig, decoder: ImageDecoder, on_sample: Callable[[Sample], None]) -> list[Sample]:
    samples = []
    for i, it in enumerate(items):
        s = Sample(it.key, i, it.source_fields("file"))
        samples.append(s)
        try:
            data = Path(it.location).read_bytes()
            s.image = decoder.from_bytes(data)
            on_sample(s)
        except DecodeError as err:
            s.fail(str(err))
        except OSError as err:
            s.fail(f"read_error: {err}")
    return samples
