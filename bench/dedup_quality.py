"""How well the duplicate pass finds copies, and how long it takes.

    python bench/dedup_quality.py [--max-distance 8] [--hashes 1000000] [--opencv-data DIR] [--readme]

Quality, on the hashes the build itself computes (pipeline/image_hashes.py on the image
as stored: long side <= 512, JPEG q90): for each real photo, copies made the way the web
makes them (resized, recompressed, cropped, colour-shifted, watermarked with the held-out
watermark styles of filter_dev/synth/watermarks.py), and whether each lands within
`max_distance` bits of its original (recall). Then every pair of distinct photos, and
near-identical but distinct shots (stereo pairs, consecutive video frames, a burst of
calibration shots), and the share of them the pass would merge (false duplicates).
Two photo sources: scikit-image's bundled photos, and OpenCV's sample photos (Debian's
opencv-doc, filter_dev/heldout_photos.py), which nothing in the pass was tuned on.

Time: `find_groups` + `choose` of pipeline/dedup.py (the pass's grouping, as one process
runs it) on N synthetic 64-bit hashes with 1 % planted near copies (1-4 bits flipped).
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import sys
import time

import numpy as np
from PIL import Image

from filter_dev.heldout_photos import CLEAN, OPENCV_DATA, stored
from filter_dev.photos import load_rgb, skimage_photos
from filter_dev.synth.watermarks import add_watermark
from pipeline.bench_report import add_readme_option, machine, readme_section
from pipeline.dedup import choose, find_groups
from pipeline.image_hashes import perceptual_hash

# scikit-image files that are not distinct photos of their own: the same pixels in grey
# (a real duplicate), and synthetic charts/patterns
SKIMAGE_SKIP = {"chessboard_GRAY.png", "color.png", "microaneurysms.png", "logo.png", "brick.png", "grass.png", "gravel.png",
                "rough-wall.png", "checker_bilevel.png"}
# near-identical but distinct shots: (name, name, what); pairs inside one group are not
# counted among the distinct photos
OPENCV_SHOTS = [("aloeL.jpg", "aloeR.jpg", "stereo pair"), ("basketball1.png", "basketball2.png", "consecutive video frames"),
                ("rubberwhale1.png", "rubberwhale2.png", "consecutive video frames"), ("aero1.jpg", "aero3.jpg", "same scene, moved camera"),
                ("leuvenA.jpg", "leuvenB.jpg", "same street, moved camera"), ("left01.jpg", "left02.jpg", "calibration burst"),
                ("left02.jpg", "left03.jpg", "calibration burst"), ("left03.jpg", "left04.jpg", "calibration burst")]
SKIMAGE_SHOTS = [("motorcycle_left.png", "motorcycle_right.png", "stereo pair")]


def shot_group(name: str) -> str:
    """Photos of one scene share a group: the calibration burst, each stereo pair, each frame pair."""
    for a, b, _ in OPENCV_SHOTS + SKIMAGE_SHOTS:
        if name in (a, b):
            return "left" if name.startswith("left0") else a
    return name


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def crop(rgb: np.ndarray, frac: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    dy, dx = round(h * frac), round(w * frac)
    return rgb[dy:h - dy, dx:w - dx]


def resize(rgb: np.ndarray, scale: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    return np.asarray(Image.fromarray(rgb).resize((max(8, round(w * scale)), max(8, round(h * scale))), Image.Resampling.BILINEAR))


def copies(rgb: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """The kinds of copy measured, each from the full-size original."""
    rng = np.random.default_rng(seed)
    gamma = (255 * (rgb / 255.0) ** 0.8).astype(np.uint8)
    return {
        "resized to 1/2": resize(rgb, 0.5),
        "resized to 1/4": resize(rgb, 0.25),
        "recompressed, JPEG q30": jpeg(rgb, 30),
        "cropped 2 % per side": crop(rgb, 0.02),
        "cropped 5 % per side": crop(rgb, 0.05),
        "colour-shifted (+18, +4, -14)": np.clip(rgb.astype(int) + [18, 4, -14], 0, 255).astype(np.uint8),
        "brightened (gamma 0.8)": gamma,
        "watermarked (held-out styles)": add_watermark(rgb, rng, "heldout"),
    }


def bits(a: str, b: str) -> int:
    return int(np.bitwise_count(np.uint64(int(a, 16) ^ int(b, 16))))


def load_sources(opencv_dir: str) -> dict[str, dict[str, np.ndarray]]:
    sk = {p.name: load_rgb(p) for p in skimage_photos() if p.name not in SKIMAGE_SKIP}
    out = {"scikit-image": sk}
    if os.path.isdir(opencv_dir):
        names = sorted(set(CLEAN) | {n for pair in OPENCV_SHOTS for n in pair[:2]})
        out["OpenCV samples (held out)"] = {n: np.asarray(Image.open(os.path.join(opencv_dir, n)).convert("RGB"))
                                            for n in names if os.path.isfile(os.path.join(opencv_dir, n))}
    else:
        print(f"note: {opencv_dir} missing (apt-get install opencv-doc): OpenCV rows left out", file=sys.stderr)
    return out


def quality(sources: dict, max_distance: int) -> None:
    print(f"Near-duplicate recall at max_distance {max_distance} (of 64 bits), pHash of the stored image (long side 512, JPEG q90)\n")
    print("| copy | source | photos | found | recall | median bits | max bits |")
    print("|---|---|---:|---:|---:|---:|---:|")
    hashes = {src: {n: perceptual_hash(stored(im)) for n, im in photos.items()} for src, photos in sources.items()}
    rows: dict[tuple[str, str], list[int]] = {}
    for src, photos in sources.items():
        for i, (name, im) in enumerate(sorted(photos.items())):
            for kind, copy in copies(im, i).items():
                rows.setdefault((kind, src), []).append(bits(hashes[src][name], perceptual_hash(stored(copy))))
    for (kind, src), d in rows.items():
        d = np.array(d)
        found = int((d <= max_distance).sum())
        print(f"| {kind} | {src} | {len(d)} | {found} | {found / len(d):.2f} | {np.median(d):.0f} | {d.max()} |")

    print(f"\nFalse duplicates: pairs of distinct photos within {max_distance} bits\n")
    print("| pairs | source | pairs | merged | rate | closest pair (bits) |")
    print("|---|---|---:|---:|---:|---|")
    for src, h in hashes.items():
        d = [(bits(h[a], h[b]), a, b) for a, b in itertools.combinations(sorted(h), 2) if shot_group(a) != shot_group(b)]
        merged = sum(x[0] <= max_distance for x in d)
        c = min(d)
        print(f"| all distinct photos | {src} | {len(d)} | {merged} | {merged / len(d):.4f} | {c[1]} / {c[2]} ({c[0]}) |")
    print("\nNear-identical but distinct shots (a merge here is a false duplicate)\n")
    print("| shot A | shot B | what | bits | merged |")
    print("|---|---|---|---:|---|")
    for src, pairs in (("scikit-image", SKIMAGE_SHOTS), ("OpenCV samples (held out)", OPENCV_SHOTS)):
        h = hashes.get(src, {})
        for a, b, what in pairs:
            if a in h and b in h:
                d = bits(h[a], h[b])
                print(f"| {a} | {b} | {what} | {d} | {'yes' if d <= max_distance else 'no'} |")


def timing(n: int, max_distance: int) -> None:
    rng = np.random.default_rng(0)
    h = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    order = rng.permutation(n)
    planted, src = order[: n // 100], rng.choice(order[n // 100:], n // 100)  # originals are never copies themselves
    flips = np.zeros(len(planted), np.uint64)
    for k in range(4):  # 1-4 distinct bits flipped per planted copy
        bit = rng.integers(0, 64, len(planted)).astype(np.uint64)
        flips |= np.where(rng.random(len(planted)) < (1.0 if k == 0 else 0.6), np.uint64(1) << bit, np.uint64(0))
    h[planted] = h[src] ^ flips
    rows = {"key": [f"{i:08d}" for i in range(n)], "pixel_hash": [f"{i:032x}" for i in range(n)],
            "phash": [f"{int(x):016x}" for x in h], "pixels": rng.integers(1, 10**6, n)}
    t0 = time.perf_counter()
    labels = find_groups(rows, max_distance, near=True)
    removed = choose(rows, labels)
    dt = time.perf_counter() - t0
    together = float(np.mean(labels[planted] == labels[src]))
    print(f"\nDedup pass time (grouping + choice, one process): {n:,} synthetic hashes, {len(planted):,} planted near copies\n")
    print("| hashes | seconds | hashes/s | planted copies grouped with their original | removed |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| {n:,} | {dt:.1f} | {n / dt:,.0f} | {together:.4f} | {len(removed):,} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-distance", type=int, default=8, help="the build's dedup.max_distance (default 8)")
    ap.add_argument("--hashes", type=int, default=1_000_000, help="synthetic hashes for the time (default 1M)")
    ap.add_argument("--opencv-data", default=OPENCV_DATA, help="OpenCV's samples/data folder")
    add_readme_option(ap, __file__)
    args = ap.parse_args(argv)
    with readme_section(args.readme, __file__):
        print(f"Machine: {machine()}; load average {os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d')}\n")
        quality(load_sources(args.opencv_data), args.max_distance)
        timing(args.hashes, args.max_distance)
    return 0


if __name__ == "__main__":
    sys.exit(main())
