"""Images/s of the dataset build's CPU path against plain img2dataset, same source.

Serves real photos from a loopback HTTP server under N distinct URLs: scikit-image's
(`--photos skimage`, at most 1411 px) or Debian's desktop-background JPEGs of 1500-4000 px
(`--photos large`, the sizes a T2I dataset is built from; `make watermark-photos`
installs them), then downloads them (resized to each --image-sizes, written as
WebDataset shards) with:
  1. plain img2dataset, multiprocessing distributor (its default),
  2. plain img2dataset, Ray distributor,
  3. this pipeline: img2dataset's downloader in Ray actors + resolution + blur filters
     + shard and ledger writing (pipeline.runner.run_build).
Ray is started before the timed runs (on a cluster it is already up). Each row is the
best of --repeats runs, alternating the contenders so load drifts hit all alike.

    python bench/pipeline_throughput.py [--n 1500] [--repeats 2] [--photos large --image-sizes 512 1024]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import ray

from demo.loopback_server import LoopbackServer, copy_to_folder
from filter_dev.photos import large_debian_jpegs, skimage_photos
from pipeline.bench_report import add_readme_option, cpu_model, readme_section
from pipeline.config import parse_workflow
from pipeline.runner import run_build

I2D_MP = "img2dataset (multiprocessing)"


def plain_img2dataset(urls: Path, out: Path, args, size: int, distributor: str) -> int:
    from img2dataset import download  # here, not at the top: `import pipeline` above sets its offline default first

    with contextlib.redirect_stdout(sys.stderr):  # its progress prints would land in the README's table
        download(
            url_list=str(urls), input_format="jsonl", url_col="url", caption_col="caption", output_format="webdataset",
            output_folder=str(out), processes_count=args.workers, thread_count=args.threads, image_size=size,
            resize_mode="keep_ratio_largest", resize_only_if_bigger=True, number_sample_per_shard=args.shard_size,
            distributor=distributor, timeout=10, retries=0, enable_wandb=False, disallowed_header_directives=[],
        )
    stats = [json.loads(p.read_text()) for p in out.glob("*_stats.json")]
    return sum(s["successes"] for s in stats)


def this_pipeline(urls: Path, out: Path, args, size: int) -> int:
    cfg = parse_workflow({
        "name": "bench",
        "sources": [{"type": "url_list", "path": str(urls)}],
        # the loopback server is on 127.0.0.1, which a build refuses by default
        "images": {"image_size": size}, "download": {"thread_count": args.threads, "timeout": 10,
                     "allow_private_networks": True},
        "output": {"shard_size": args.shard_size},
        "filters": {"resolution": {"min_side": 0, "max_aspect_ratio": 100}, "blur": {"threshold": 0}},
        "ray": {"num_workers": args.workers},
        "dedup": {"enabled": False},  # the same photos served many times; img2dataset has no such pass
    })
    manifest = run_build(cfg, out, show_progress=False)
    return manifest["counts"]["status"]["kept"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1500, help="URLs per run")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--image-sizes", type=int, nargs="+", default=None, help="stored max sides (default: 256; 512 1024 with --photos large)")
    p.add_argument("--photos", choices=("skimage", "large"), default="skimage")
    p.add_argument("--shard-size", type=int, default=250)
    add_readme_option(p, __file__)
    args = p.parse_args()
    with readme_section(args.readme, __file__, None if args.photos == "skimage" else args.photos):
        run(args)


PHOTO_SETS = {
    "skimage": ("scikit-image, PNG/JPEG up to 1411 px",
                lambda: [ph for ph in skimage_photos() if ph.suffix in (".jpg", ".png")]),
    "large": ("Debian desktop backgrounds, JPEG, long side 1500-4000 px", large_debian_jpegs),
}


def run(args) -> None:
    sizes = args.image_sizes or ([512, 1024] if args.photos == "large" else [256])
    what, load = PHOTO_SETS[args.photos]
    photos = load()
    tmp = Path(tempfile.mkdtemp(prefix="bench-pipe-"))
    www = copy_to_folder(photos, tmp / "www")
    ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False)
    best: dict[tuple[int, str], float] = {}
    counts: dict[tuple[int, str], int] = {}
    with LoopbackServer(www) as server:
        urls = tmp / "urls.jsonl"
        with open(urls, "w") as fh:
            for i in range(args.n):  # distinct URLs (a query string) over the same real photos
                fh.write(json.dumps({"url": server.url(f"{photos[i % len(photos)].name}?i={i}"), "caption": f"photo {i}"}) + "\n")
        runs = {
            I2D_MP: lambda out, size: plain_img2dataset(urls, out, args, size, "multiprocessing"),
            "img2dataset (ray distributor)": lambda out, size: plain_img2dataset(urls, out, args, size, "ray"),
            "this pipeline (download + resolution + blur + shards + ledger)": lambda out, size: this_pipeline(urls, out, args, size),
        }
        for r in range(args.repeats):
            for size in sizes:
                for name, fn in runs.items():
                    out = tmp / f"out-{r}-{size}-{len(best)}-{abs(hash(name))}"
                    t0 = time.perf_counter()
                    counts[size, name] = fn(out, size)
                    dt = time.perf_counter() - t0
                    best[size, name] = min(best.get((size, name), float("inf")), dt)
                    shutil.rmtree(out, ignore_errors=True)
                    print(f"  run {r + 1}, {size} px: {name}: {counts[size, name]} images in {dt:.1f} s", file=sys.stderr)
    ray.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nMachine: {cpu_model()}, {os.cpu_count()} cores; {args.n} URLs of {len(photos)} real photos "
          f"({what}) from a loopback server; {args.workers} workers x {args.threads} threads; best of {args.repeats}, "
          "contenders alternating.\n")
    print("| stored max side | contender | images stored | seconds | images/s | ratio vs img2dataset |")
    print("|---:|---|---:|---:|---:|---:|")
    for (size, name), dt in best.items():
        base = args.n / best[size, I2D_MP]
        print(f"| {size} | {name} | {counts[size, name]} | {dt:.1f} | {args.n / dt:.1f} | {args.n / dt / base:.2f} |")


if __name__ == "__main__":
    main()
