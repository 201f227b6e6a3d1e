"""Peak resident memory of each build worker on a unit of large photos and hostile bodies.

Serves from a loopback server: 24 MP JPEG photos, endless `200 image/jpeg` bodies, a
Content-Length of 1 TB, and junk bodies one byte under `download.max_bytes` (the worst
case: each is read whole, then fails to decode). Runs real builds (pipeline.runner, Ray
workers, img2dataset's downloader with the default thread count) and reads each Ray
worker's high-water mark (VmHWM in /proc/PID/status) while it runs. One row per worker
and case, next to the bound the settings give:

    bound = worker base + 2 x thread_count x max_bytes   (img2dataset keeps at most 2 x
            threads bodies between download and decode; each is capped)
          + 2 x 3 x max_image_pixels                    (one decode + its resize, at a time)
          + 64 x 3 x image_size^2                       (one filter batch of stored images)

Linux only (/proc). Runs Ray bound to 127.0.0.1; best inside scripts/netns_run.sh:

    scripts/netns_run.sh python bench/worker_memory.py [--max-bytes 33554432 8388608]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import psutil
import ray

from demo.loopback_server import LoopbackServer
from filter_dev.photos import load_rgb, skimage_photos
from pipeline.bench_report import add_readme_option, cpu_model, readme_section
from pipeline.config import DownloadConfig, ImagesConfig, parse_workflow
from pipeline.ray_memory import PeakWatcher
from pipeline.runner import run_build

MB = 2**20
LARGE = (6000, 4000)  # 24 MP, decoded 72 MB


def large_photos(folder: Path, n: int) -> list[Path]:
    srcs = [p for p in skimage_photos() if p.name in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")]
    out = []
    for i in range(n):
        rgb = cv2.resize(load_rgb(srcs[i % len(srcs)]), LARGE, interpolation=cv2.INTER_CUBIC)
        path = folder / f"large{i}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        out.append(path)
    return out


def hostile_routes(junk_sizes: list[int]) -> dict:
    junk = {n: b"\x00" * n for n in junk_sizes}  # shared buffers: the server itself stays small

    def send(req, data: bytes | None, length: int | None):
        req.send_response(200)
        req.send_header("Content-Type", "image/jpeg")
        if length is not None:
            req.send_header("Content-Length", str(length))
        req.end_headers()
        try:
            if data is not None:
                req.wfile.write(data)
                return
            end = time.monotonic() + 60
            while time.monotonic() < end:  # endless, until the client hangs up
                req.wfile.write(b"\xff" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass

    routes = {"/endless.jpg": lambda req: send(req, None, None), "/huge.jpg": lambda req: send(req, None, 10**12)}
    for n, data in junk.items():
        routes[f"/junk{n}.jpg"] = lambda req, data=data: send(req, data, len(data))
    return routes


SEEN: set[int] = set()  # workers of earlier cases (a killed actor can linger a moment)


def run_case(tmp: Path, server, urls: list[str], max_bytes: int, workers: int, threads: int) -> dict[int, int]:
    listing = tmp / f"urls-{max_bytes}.jsonl"
    listing.write_text("".join(json.dumps({"url": u}) + "\n" for u in urls))
    cfg = parse_workflow({
        "name": "worker-memory",
        "sources": [{"type": "url_list", "path": str(listing)}],
        # the loopback server is on 127.0.0.1, which a build refuses by default
        "download": {"max_bytes": max_bytes, "thread_count": threads, "max_seconds": 60, "timeout": 20,
                     "allow_private_networks": True},
        "output": {"shard_size": -(-len(urls) // workers)},
        "filters": {"resolution": {"min_side": 0}, "blur": {"threshold": 0}},
        "ray": {"num_workers": workers},
        "dedup": {"enabled": False},  # the same photos served many times
    })
    out = tmp / f"out-{max_bytes}"
    with PeakWatcher() as watch:
        manifest = run_build(cfg, out, show_progress=False)
    shutil.rmtree(out, ignore_errors=True)
    c = manifest["counts"]
    print(f"  max_bytes {max_bytes // MB} MiB: {c['status']}, {c['reasons'].get('failed', {})}", file=sys.stderr)
    mine = {pid: hwm for pid, hwm in watch.peak.items() if "Worker" in watch.title[pid] and pid not in SEEN}
    SEEN.update(watch.peak)
    return mine


def main() -> None:
    default, images = DownloadConfig(), ImagesConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--max-bytes", type=int, nargs="+", default=[default.max_bytes, 8 * MB])
    p.add_argument("--photos", type=int, default=16, help="large photos per unit")
    p.add_argument("--hostile", type=int, default=48, help="hostile URLs per unit (thirds: endless, 1 TB, junk)")
    p.add_argument("--workers", type=int, default=2)
    add_readme_option(p, __file__)
    args = p.parse_args()
    with readme_section(args.readme, __file__):
        run(args, default, images)


def run(args, default: DownloadConfig, images: ImagesConfig) -> None:
    threads = default.thread_count

    tmp = Path(tempfile.mkdtemp(prefix="bench-mem-"))
    www = tmp / "www"
    www.mkdir()
    photos = large_photos(www, 4)
    photo_mb = photos[0].stat().st_size / MB
    ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False, num_cpus=args.workers)
    rows = []
    with LoopbackServer(www, hostile_routes([b - 1 for b in args.max_bytes])) as server:
        # a baseline: the same workers on small real photos only
        small = []
        for ph in skimage_photos()[:10]:
            shutil.copy(ph, www / ph.name)
            small.append(server.url(ph.name))
        base = run_case(tmp, server, small * 4, default.max_bytes, args.workers, threads)
        base_mb = max(base.values()) / MB
        rows += [("small photos only (baseline)", default.max_bytes, pid, len(small) * 4 // args.workers, hwm, None)
                 for pid, hwm in sorted(base.items())]
        for max_bytes in args.max_bytes:
            urls = []
            for w in range(args.workers):
                for i in range(args.photos):
                    urls.append(server.url(f"large{i % len(photos)}.jpg?w={w}&i={i}"))
                for i in range(args.hostile):
                    kind = ("endless.jpg", "huge.jpg", f"junk{max_bytes - 1}.jpg")[i % 3]
                    urls.append(server.url(f"{kind}?w={w}&i={i}"))
            peaks = run_case(tmp, server, urls, max_bytes, args.workers, threads)
            bound = (base_mb + 2 * threads * max_bytes / MB + 2 * 3 * images.max_image_pixels / MB
                     + 64 * 3 * images.image_size**2 / MB)
            rows += [("large photos + hostile bodies", max_bytes, pid, args.photos + args.hostile, hwm, bound)
                     for pid, hwm in sorted(peaks.items())]
    ray.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nMachine: {cpu_model()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM; "
          f"{args.workers} workers x {threads} threads (the default thread_count); large photos {LARGE[0]}x{LARGE[1]} "
          f"JPEG ({photo_mb:.1f} MB, {LARGE[0] * LARGE[1] * 3 / MB:.0f} MB decoded); hostile thirds: endless body, "
          "Content-Length 1 TB, junk of max_bytes - 1.\n")
    print("| case | max_bytes (MiB) | worker pid | items | peak RSS (MiB) | bound (MiB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for case, mb, pid, items, hwm, bound in rows:
        print(f"| {case} | {mb // MB} | {pid} | {items} | {hwm / MB:.0f} | {'' if bound is None else f'{bound:.0f}'} |")


if __name__ == "__main__":
    main()
