"""URL units: img2dataset's Downloader fetches them (its thread pool, shard reading,
X-Robots-Tag check) through our capped fetch, decodes them with our resizer and keeps
them in memory (pipeline/img2dataset_glue.py); each arrives here as a Sample with its
decoded image, or as a failed one with the reason."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
from img2dataset.downloader import Downloader

from pipeline.config import DownloadConfig
from pipeline.decode import ImageDecoder
from pipeline.fetch import policy_for
from pipeline.img2dataset_glue import Img2DatasetResizer, memory_writer_class
from pipeline.sample import Sample
from pipeline.sources import InputItem
from pipeline.verdict import Status


def download_unit(items: list[InputItem], cfg: DownloadConfig, decoder: ImageDecoder, on_sample: Callable[[Sample], None]) -> list[Sample]:
    samples = [
        Sample(it.key, i, it.source_fields("url"))
        for i, it in enumerate(items)
    ]
    for s, it in zip(samples, items):
        if it.error:
            s.fail(it.error)
    todo = [(s, it) for s, it in zip(samples, items) if not it.error]
    if not todo:
        return samples

    resizer = Img2DatasetResizer(decoder)
    by_key = {s.key: s for s, _ in todo}
    with tempfile.TemporaryDirectory(prefix="unit-dl-") as tmp:
        shard_file = Path(tmp) / "input.feather"
        table = pa.table({"url": [it.location for _, it in todo], "sample_key": [it.key for _, it in todo]})
        with pa.OSFile(str(shard_file), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table)
        downloader = Downloader(
            sample_writer_class=memory_writer_class(by_key, resizer, on_sample),
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
        if s.status == Status.PENDING and s.image is None:  # the downloader lost it: still one ledger row
            s.fail("internal_error: img2dataset returned no result for this URL")
    return samples
