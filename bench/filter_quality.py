"""Quality of the blur, text, watermark and NSFW filters on labelled real photos.

    python bench/filter_quality.py            # full run (a few minutes on 2 CPU cores; text is the slow one)
    python bench/filter_quality.py --quick    # fewer samples

Labelled sets, all built from the real photos that ship with the dependencies
(filters/photos.py), at the pipeline's stored size (long side <= 512):

- blur: positives = sharp photos Gaussian-blurred (sigma 2.5 and 4 px at the filter's
  256 px analysis size) or motion-blurred (15 px line kernel), plus clock_motion.png
  (real motion blur); negatives = the sharp photos and random crops of them.
- text: positives = page.png, text.png and photos with rendered text (meme captions,
  poster titles, paragraphs, one subtitle line; filters.watermark_synth.add_text_overlay); negatives = the
  photos, random crops of them, and bus.jpg (incidental signage is not "text-heavy").
- watermark: HELD-OUT photos only (filters.photos.WATERMARK_SPLIT["heldout"], never seen
  in training): random views, half with a watermark in a HELD-OUT style (fonts, texts and
  layouts the model never saw); a second row uses the training styles.
- nsfw: false-positive rate on safe photos (every photo plus random crops/flips).

Prints one markdown table; AUC uses sklearn's roc_auc_score, precision/recall are at each
filter's default threshold (a sample counts as "positive" when the filter rejects it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from filters.photos import CLEAN_PHOTOS, PHOTOS, WATERMARK_SPLIT, load_photo  # noqa: E402
from filters.watermark_synth import add_text_overlay, add_watermark  # noqa: E402
from filters.watermark_train import jpeg, random_view  # noqa: E402


def pr_auc(y: np.ndarray, score: np.ndarray, rejected: np.ndarray) -> dict:
    from sklearn.metrics import roc_auc_score

    tp = int((rejected & (y == 1)).sum())
    fp = int((rejected & (y == 0)).sum())
    fn = int((~rejected & (y == 1)).sum())
    return {"auc": roc_auc_score(y, score), "precision": tp / max(1, tp + fp), "recall": tp / max(1, tp + fn),
            "pos": int(y.sum()), "neg": int((y == 0).sum())}


def views(names, rng, n_per):
    return [random_view(load_photo(n), rng, (320, 512)) for n in names for _ in range(n_per)]


def bench_blur(rng, quick):
    from filters.blur import BlurFilter

    f = BlurFilter()
    sharp = [load_photo(n, 512) for n in CLEAN_PHOTOS] + views(CLEAN_PHOTOS, rng, 1 if quick else 3)
    pos = [load_photo("clock_motion", 512)]
    for im in sharp:
        s256 = min(im.shape[:2]) / 256  # blur sizes are given at the filter's analysis size
        kind = rng.integers(3)
        if kind == 0:
            pos.append(cv2.GaussianBlur(im, (0, 0), 2.5 * s256))
        elif kind == 1:
            pos.append(cv2.GaussianBlur(im, (0, 0), 4.0 * s256))
        else:
            k = max(3, int(15 * s256) | 1)
            kern = np.zeros((k, k), np.float32)
            kern[k // 2, :] = 1.0 / k
            rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
            kern = cv2.warpAffine(kern, rot, (k, k))
            pos.append(cv2.filter2D(im, -1, kern / kern.sum()))
    ims = sharp + pos
    y = np.array([0] * len(sharp) + [1] * len(pos))
    s = f.score(ims, [{} for _ in ims])
    return pr_auc(y, -s["laplacian_var"], ~f.keep(s)), f"Laplacian var < {f.threshold:g}"


def bench_text(rng, quick):
    from filters.text import TextFilter

    f = TextFilter()
    photos = [load_photo(n, 512) for n in CLEAN_PHOTOS]
    neg = photos + views(CLEAN_PHOTOS, rng, 0 if quick else 1) + [load_photo("bus", 512)]
    pos = [load_photo("page", 512), load_photo("text", 512)]
    for k in range(1 if quick else 2):
        pos += [add_text_overlay(im, rng) for im in photos]
    ims = neg + pos
    y = np.array([0] * len(neg) + [1] * len(pos))
    s = f.score(ims, [{} for _ in ims])
    a = s["area_frac"]
    print(f"text area_frac: negatives max {a[y == 0].max():.4f} (bus {a[len(neg) - 1]:.4f}); "
          f"positives min {a[y == 1].min():.4f}, median {np.median(a[y == 1]):.3f}", file=sys.stderr)
    return pr_auc(y, a, ~f.keep(s)), f"text area > {f.threshold:g}"


def watermark_set(rng, style, n_pairs):
    names = WATERMARK_SPLIT["heldout"]
    ims, y = [], []
    for i in range(n_pairs):
        v = random_view(load_photo(names[i % len(names)]), rng, (320, 512))
        ims += [jpeg(v, rng), jpeg(add_watermark(v, rng, style), rng)]
        y += [0, 1]
    return ims, np.array(y)


def bench_watermark(rng, quick, f=None):
    from filters.watermark import WatermarkFilter

    f = f or WatermarkFilter()
    rows = {}
    for style in ("heldout", "train"):
        ims, y = watermark_set(rng, style, 60 if quick else 200)
        s = f.score(ims, [{} for _ in ims])
        rows[style] = pr_auc(y, s["prob"], ~f.keep(s))
    return rows, f"P(watermark) >= {f.threshold:g}"


def bench_nsfw(rng, quick):
    from filters.nsfw import NsfwFilter

    f = NsfwFilter()
    names = [n for n in PHOTOS]
    ims = [load_photo(n, 512) for n in names] + views(names, rng, 3 if quick else 10)
    s = f.score(ims, [{} for _ in ims])
    rejected = ~f.keep(s)
    return {"fp_rate": rejected.mean(), "neg": len(ims), "max": float(s["prob"].max()),
            "p99": float(np.percentile(s["prob"], 99))}, f"P(nsfw) >= {f.threshold:g}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", nargs="+", choices=["blur", "text", "watermark", "nsfw"], default=["blur", "text", "watermark", "nsfw"])
    args = ap.parse_args(argv)
    rows = []
    for name in args.only:
        rng = np.random.default_rng([args.seed, ["blur", "text", "watermark", "nsfw"].index(name)])
        t = time.time()
        if name == "blur":
            m, rule = bench_blur(rng, args.quick)
            rows.append(("blur", "sharp vs Gaussian/motion-blurred photos + clock_motion", m, rule))
        elif name == "text":
            m, rule = bench_text(rng, args.quick)
            rows.append(("text", "page/text.png + rendered-text photos vs photos (+bus)", m, rule))
        elif name == "watermark":
            ms, rule = bench_watermark(rng, args.quick)
            rows.append(("watermark", "held-out photos, HELD-OUT styles", ms["heldout"], rule))
            rows.append(("watermark", "held-out photos, training styles", ms["train"], rule))
        else:
            m, rule = bench_nsfw(rng, args.quick)
            rows.append(("nsfw", "safe photos + crops (false positives)", m, rule))
        print(f"[{name}: {time.time() - t:.0f}s]", file=sys.stderr, flush=True)
    print("| filter | labelled set | pos | neg | AUC | precision | recall | rejects when |")
    print("|---|---|---|---|---|---|---|---|")
    for name, desc, m, rule in rows:
        if "fp_rate" in m:
            print(f"| {name} | {desc} | 0 | {m['neg']} | - | false-positive rate {100 * m['fp_rate']:.1f}% "
                  f"(max P {m['max']:.3f}, p99 {m['p99']:.3f}) | - | {rule} |")
        else:
            print(f"| {name} | {desc} | {m['pos']} | {m['neg']} | {m['auc']:.3f} | {m['precision']:.3f} | {m['recall']:.3f} | {rule} |")


if __name__ == "__main__":
    main()
