"""Throughput of each filter in images/s, at batch sizes 1 and 16, on 512 px images.

    python bench/filter_throughput.py                 # CPU (and CUDA too when present)
    python bench/filter_throughput.py --device cpu --batch-sizes 1 16 --seconds 20
    python bench/filter_throughput.py --device cpu --threads 1 --only text text_craft --batch-sizes 8

Images: the real photos of filter_dev/photos.py resized so the long side is 512 (aspect
kept), like the pipeline's stored images. Each (filter, batch size) runs one
warm-up batch, then batches for at least `--seconds` (and at least 2 batches); model load
time is reported separately (it is paid once per worker).
"""

from __future__ import annotations

import argparse
import time

from filter_dev.photos import CLEAN_PHOTOS, load_photo
from pipeline.bench_report import add_readme_option, cpu_model, readme_section


def builders(device, threads=0):
    from filters.blur import BlurFilter
    from filters.nsfw import NsfwFilter
    from filters.text import TextFilter
    from filters.watermark import WatermarkFilter

    return {
        "blur": lambda: BlurFilter.ready(),
        "watermark": lambda: WatermarkFilter.ready(device=device),
        "nsfw": lambda: NsfwFilter.ready(device=device),
        "text": lambda: TextFilter.ready(device=device, num_threads=threads),  # PP-OCR det (default)
        "text_craft": lambda: TextFilter.ready(detector="craft", device=device),
    }


def measure(f, images, batch_size, seconds):
    n = len(images)

    def batch(k):
        return [images[(k * batch_size + j) % n] for j in range(batch_size)]

    f.score(batch(0), [{} for _ in range(batch_size)])  # warm-up
    done, k, t0 = 0, 1, time.perf_counter()
    while True:
        f.score(batch(k), [{} for _ in range(batch_size)])
        done += batch_size
        k += 1
        el = time.perf_counter() - t0
        if el >= seconds and k >= 3:
            return done / el


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--seconds", type=float, default=15.0, help="minimum timed seconds per cell")
    ap.add_argument("--only", nargs="+", default=["blur", "watermark", "nsfw", "text", "text_craft"])
    ap.add_argument("--threads", type=int, default=0, help="torch and ONNX Runtime threads (0 = their defaults)")
    add_readme_option(ap, __file__)
    args = ap.parse_args(argv)
    with readme_section(args.readme, __file__):
        run(args)


def run(args) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    images = [load_photo(n, 512) for n in CLEAN_PHOTOS]
    dev = "cuda" if (args.device == "auto" and torch.cuda.is_available()) else ("cpu" if args.device == "auto" else args.device)
    where = (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device here") if dev.startswith("cuda") \
        else f"{cpu_model()}, {torch.get_num_threads()} torch threads"
    print(f"device: {dev} ({where}); images: {len(images)} real photos, long side 512\n")
    print("| filter | load s | " + " | ".join(f"batch {b} img/s" for b in args.batch_sizes) + " |")
    print("|---|---|" + "---|" * len(args.batch_sizes))
    not_run = []
    for name, build in builders(dev, args.threads).items():
        if name not in args.only:
            continue
        t = time.perf_counter()
        try:
            f = build()
        except RuntimeError as err:  # e.g. an ONNX filter asked for CUDA without onnxruntime-gpu: say so, run the rest
            print(f"| {name} | not run: {str(err).splitlines()[0][:160]} |" + " - |" * len(args.batch_sizes), flush=True)
            not_run.append(name)
            continue
        load = time.perf_counter() - t
        ips = [measure(f, images, b, args.seconds) for b in args.batch_sizes]
        print(f"| {name} | {load:.2f} | " + " | ".join(f"{x:.1f}" for x in ips) + " |", flush=True)
    if not_run:
        raise SystemExit(f"not run on {dev}: {', '.join(not_run)}")


if __name__ == "__main__":
    main()
