"""Reduced JPEG decoding: what decoding big JPEGs at 1/2-1/8 scale saves, and what it costs
in fidelity, against the full decode + resize the pipeline did before (issue 25).

    python bench/decode_scaling.py [--repeats 3] [--readme]

Real photos (scikit-image's, filter_dev/decode_reference.py) re-encoded as JPEG q92 at a
2048 and a 4000 px long side, stored at 512 and 1024. One thread (cv2.setNumThreads(1)),
the two decoders alternated photo by photo, best of `--repeats`. "encode" is the stored
JPEG (q95) that every kept image costs once, for comparison with the decode.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from filter_dev.decode_reference import PHOTOS, big_jpeg, full_decode
from filter_dev.photos import skimage_photos
from pipeline.bench_report import add_readme_option, machine, readme_section
from pipeline.decode import _decode_pixels, encode_jpeg
from pipeline.image_header import read_header


def reduced_decode(data: bytes, max_side: int) -> np.ndarray:
    return _decode_pixels(data, read_header(data, 10**9), max_side)


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def row(files: list[bytes], max_side: int, repeats: int) -> dict:
    full_s = reduced_s = encode_s = 0.0
    mads = []
    for data in files:  # alternated per photo, so load drifts hit both alike
        full_s += best_time(lambda: full_decode(data, max_side), repeats)
        reduced_s += best_time(lambda: reduced_decode(data, max_side), repeats)
        small = reduced_decode(data, max_side)
        encode_s += best_time(lambda: encode_jpeg(small, 95), repeats)
        mads.append(np.abs(small.astype(np.float64) - full_decode(data, max_side)).mean())
    n = len(files)
    return {"full": n / full_s, "reduced": n / reduced_s, "encode": n / encode_s,
            "mad_mean": float(np.mean(mads)), "mad_max": float(np.max(mads))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    add_readme_option(ap, __file__)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    paths = {p.name: p for p in skimage_photos()}
    with readme_section(args.readme, __file__):
        print(f"machine: {machine()}; one thread; {len(PHOTOS)} photos; best of {args.repeats}\n")
        print("| original long side | stored long side | full decode + resize img/s | reduced decode + resize img/s "
              "| speed-up | encode q95 img/s | MAD grey levels mean / max |")
        print("|---|---|---|---|---|---|---|")
        for long_side in (2048, 4000):
            files = [big_jpeg(paths[n], long_side) for n in PHOTOS]
            for max_side in (512, 1024):
                r = row(files, max_side, args.repeats)
                print(f"| {long_side} | {max_side} | {r['full']:.1f} | {r['reduced']:.1f} | {r['reduced'] / r['full']:.2f}x "
                      f"| {r['encode']:.1f} | {r['mad_mean']:.2f} / {r['mad_max']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
