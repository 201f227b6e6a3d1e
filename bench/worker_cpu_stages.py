"""Where one CPU worker's time goes, stage by stage, on large real photos.

One thread (a worker's download thread does these in turn for each image) fetches each
photo from a loopback HTTP server and runs the build's own functions in order, timing
each with the thread's CPU clock and the wall clock:

  fetch     pipeline.fetch.fetch_bytes (the capped, address-checked fetch)
  header    pipeline.image_header.read_header
  decode    cv2.imdecode, at libjpeg's reduced scale when the header allows it
  resize    to the stored size (INTER_AREA), colour conversion, EXIF turn
  encode    the stored JPEG (images.encode_quality)
  filters   the CPU filters of the default workflow (resolution, blur)
  hashes    the duplicate pass's pixel and perceptual hashes
  write     the unit's shard and ledger (pipeline.writer.write_unit)

The decode and resize rows together are what `ImageDecoder.from_bytes` does after the
header (pipeline/decode.py); they are timed apart here by calling its two halves. A
"full-size decode" row shows what the decode would cost without the reduced scale
(img2dataset's path).

    python bench/worker_cpu_stages.py [--image-sizes 512 1024] [--rounds 3] [--readme]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from demo.loopback_server import LoopbackServer, copy_to_folder
from filter_dev.photos import large_debian_jpegs
from pipeline.bench_report import add_readme_option, cpu_model, readme_section
from pipeline.config import parse_workflow
from pipeline.decode import _JPEG_REDUCED, StoredImage, _jpeg_reduction, _to_rgb8, encode_jpeg, resize_max_side
from pipeline.fetch import fetch_bytes, policy_for
from pipeline.image_hashes import image_hashes
from pipeline.image_header import read_header
from pipeline.output_layout import EMBED_DIR, LEDGER_DIR, REJECTS_DIR, SHARD_DIR
from pipeline.sample import Sample
from pipeline.step_chain import build_chain
from pipeline.step_runner import run_filters
from pipeline.step_stats import StepStats
from pipeline.verdict import Status, Verdict
from pipeline.writer import write_unit

STAGES = ("fetch", "header", "decode", "resize", "encode", "filters", "hashes", "write")


class Clock:
    """Per-stage thread CPU and wall seconds."""

    def __init__(self):
        self.cpu, self.wall = defaultdict(float), defaultdict(float)

    def time(self, stage: str, fn, *a):
        c0, w0 = time.thread_time(), time.perf_counter()
        out = fn(*a)
        self.cpu[stage] += time.thread_time() - c0
        self.wall[stage] += time.perf_counter() - w0
        return out


def _decode(data: bytes, header, max_side: int, reduced: bool) -> np.ndarray:
    r = _jpeg_reduction(header, max_side) if reduced else 1
    flags = cv2.IMREAD_UNCHANGED if r == 1 else _JPEG_REDUCED[r] | cv2.IMREAD_IGNORE_ORIENTATION
    return cv2.imdecode(np.frombuffer(data, np.uint8), flags)


def _resize(img: np.ndarray, header, max_side: int) -> np.ndarray:
    stored_wh = (header.height, header.width) if header.orientation >= 5 else (header.width, header.height)
    return _to_rgb8(resize_max_side(img, max_side, stored_wh), True)


def one_round(urls: list[str], cfg, out: Path, clock: Clock, full: Clock) -> None:
    policy = policy_for(cfg.download)
    chain = build_chain(cfg)
    size, quality = cfg.images.image_size, cfg.images.encode_quality
    samples = []
    for i, url in enumerate(urls):
        data = clock.time("fetch", fetch_bytes, url, policy).getvalue()
        header = clock.time("header", read_header, data, cfg.images.max_image_pixels)
        img = clock.time("decode", _decode, data, header, size, True)
        full.time("decode", _decode, data, header, size, False)  # the same photo at full size, for comparison
        rgb = clock.time("resize", _resize, img, header, size)
        jpg = clock.time("encode", encode_jpeg, rgb, quality)
        s = Sample(f"{i:06d}", i, {"url": url, "kind": "url", "caption": "photo"})
        s.image = StoredImage(rgb, jpg, header.width, header.height)
        v = Verdict()
        clock.time("filters", run_filters, chain.cpu_filters, [rgb], [s.step_meta()], [v], False, StepStats(), chain.guard)
        if v.status == Status.PENDING:
            v.keep()
        s.apply(v)
        s.hashes = clock.time("hashes", image_hashes, rgb)
        s.image.release_pixels()
        samples.append(s)
    clock.time("write", write_unit, out, "00000", samples, chain.score_columns)


def _output(out: Path) -> Path:
    for sub in (SHARD_DIR, LEDGER_DIR, REJECTS_DIR, EMBED_DIR):  # as run_build makes them
        (out / sub).mkdir(parents=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image-sizes", type=int, nargs="+", default=[512, 1024])
    p.add_argument("--rounds", type=int, default=3, help="passes over the photos (the table sums them)")
    add_readme_option(p, __file__)
    args = p.parse_args()
    with readme_section(args.readme, __file__):
        run(args)


def run(args) -> None:
    cv2.setNumThreads(1)  # one worker thread, as measured
    photos = large_debian_jpegs()
    tmp = Path(tempfile.mkdtemp(prefix="bench-stages-"))
    www = copy_to_folder(photos, tmp / "www")
    headers = [read_header(ph.read_bytes(), 10**9) for ph in photos]
    sides = sorted(max(h.width, h.height) for h in headers)
    print(f"Machine: {cpu_model()}, {os.cpu_count()} cores; one thread; {len(photos)} real JPEG photos "
          f"(Debian desktop backgrounds, long side {sides[0]}-{sides[-1]} px, median {sides[len(sides) // 2]}) "
          f"fetched from a loopback server, {args.rounds} rounds; CPU filters resolution + blur; JPEG quality 95.\n")
    with LoopbackServer(www) as server:
        urls = [server.url(ph.name) for ph in photos] * args.rounds
        for size in args.image_sizes:
            cfg = parse_workflow({
                "name": "bench", "sources": [{"type": "url_list", "path": "unused.jsonl"}],
                "images": {"image_size": size}, "download": {"allow_private_networks": True},
                "filters": {"resolution": {"min_side": 0}, "blur": {"threshold": 0}},
                "dedup": {"enabled": True},
            })
            one_round(urls[:2], cfg, _output(tmp / f"warm-{size}"), Clock(), Clock())  # imports, first calls
            clock, full = Clock(), Clock()
            one_round(urls, cfg, _output(tmp / f"out-{size}"), clock, full)
            n = len(urls)
            total = sum(clock.cpu.values())
            print(f"Stored at max side {size}: {n} images, {total / n * 1000:.1f} CPU ms per image "
                  f"= {n / total:.1f} images/s per core.\n")
            print("| stage | CPU ms / image | share of CPU | wall ms / image |")
            print("|---|---:|---:|---:|")
            for st in sorted(STAGES, key=lambda st: -clock.cpu[st]):
                print(f"| {st} | {clock.cpu[st] / n * 1000:.2f} | {clock.cpu[st] / total:.0%} | {clock.wall[st] / n * 1000:.2f} |")
            print(f"| (decode at full size instead, not in the total) | {full.cpu['decode'] / n * 1000:.2f} | "
                  f"{full.cpu['decode'] / total:.0%} | {full.wall['decode'] / n * 1000:.2f} |\n")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
