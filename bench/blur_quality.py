"""Blur filter quality, per kind of image, on the photos it was tuned on AND on held-out ones.

    python bench/blur_quality.py [--source opencv gcompris] [--angles 12]

Tuning set: the bundled real photos (filter_dev.photos.CLEAN_PHOTOS: scikit-image, scikit-learn,
matplotlib, ultralytics) plus skimage's clock_motion.png (real motion blur). The method's
constants and threshold (filters/blur.py) were chosen on this set only. Held-out sets, one
per `--source` (filter_dev/heldout_photos.py): the 20 clean OpenCV sample photos of
bench/filter_quality.py plus its two real blurred photos (licenseplate_motion.jpg,
text_defocus.jpg), and GCompris's 33 wildlife photos (no real blurred photo); a source
that is not installed is skipped.

Every photo is stored as the pipeline stores it (long side 512, JPEG q90); every degraded
copy is stored again (a camera blurs before it compresses). Kinds (filter_dev/blur_degradations.py):
- keep: clean; fog / dusk / snow (in focus, low contrast); dof (sharp centre ellipse, ~16 %
  of the frame, background blurred sigma 4 px at 256); mild softness (3 px motion blur at a
  random angle, Gaussian sigma 0.8 px, vertical resolution x0.6).
- reject: gauss (sigma 2.5 px at 256, ~5 px at 512), motion 18 px and motion 9 px at 512 at a
  random angle, motion 9 px at every `--angles` angle (the worst angle per photo counts),
  real blurred photos.
AUC: sklearn roc_auc_score of -sharpness, blurred vs every kept kind. Prints one markdown
table per set, the misses by file, the speed, and a machine-readable line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from filter_dev.blur_degradations import dusk, fog, gauss, low_vertical_resolution, motion, motion_px, shallow_dof, snow
from filter_dev.heldout_photos import SOURCES, add_source_options, stored
from filter_dev.photos import CLEAN_PHOTOS, load_photo
from filters.blur import BlurFilter
from pipeline.bench_report import add_readme_option, machine, readme_section

KEEP = ("clean", "fog", "dusk", "snow", "dof", "mild")
REJECT = ("gauss", "motion18", "motion9", "motion9-any-angle", "real")


def labelled(clean: dict[str, np.ndarray], real_blur: dict[str, np.ndarray], rng, angles: int):
    """(image, kind, name) triples; kinds as in the module docstring."""
    items = []
    for n, im in clean.items():
        items += [(im, "clean", n), (stored(fog(im)), "fog", n), (stored(dusk(im)), "dusk", n),
                  (stored(snow(im)), "snow", n), (stored(shallow_dof(im)), "dof", n)]
        a = float(rng.uniform(0, 180))
        items += [(stored(motion_px(im, 3, a)), "mild", f"{n}+motion3@{a:.0f}"),
                  (stored(gauss(im, 0.8 * 256 / min(im.shape[:2]))), "mild", f"{n}+gauss0.8px"),
                  (stored(low_vertical_resolution(im)), "mild", f"{n}+vres0.6")]
        items.append((stored(gauss(im, 2.5)), "gauss", n))
        a, b = rng.uniform(0, 180, 2)
        items += [(stored(motion(im, 9, a)), "motion18", f"{n}@{a:.0f}"), (stored(motion_px(im, 9, b)), "motion9", f"{n}@{b:.0f}")]
        items += [(stored(motion_px(im, 9, a)), "motion9-any-angle", f"{n}@{a:.0f}") for a in np.arange(angles) * 180 / angles]
    items += [(im, "real", n) for n, im in real_blur.items()]
    return items


def evaluate(items, f: BlurFilter):
    from sklearn.metrics import roc_auc_score

    ims, kinds, names = zip(*items)
    t = time.perf_counter()
    s = f.score(list(ims), [{} for _ in ims])["sharpness"]
    ips = len(ims) / (time.perf_counter() - t)
    kinds, rejected = np.array(kinds), s < f.cfg.threshold
    y = np.isin(kinds, REJECT)
    # the any-angle row is scored per photo at its worst (highest-scoring) angle
    rows, misses = [], []
    for k in KEEP + REJECT:
        m = kinds == k
        if not m.any():
            continue
        if k == "motion9-any-angle":
            per_photo = {}
            for n, v in zip(np.array(names)[m], s[m]):
                per_photo.setdefault(n.split("@")[0], []).append(v)
            worst = np.array([max(v) for v in per_photo.values()])
            rows.append((k, "reject", f"{len(per_photo)} photos x {len(next(iter(per_photo.values())))} angles",
                         f"{int((s[m] < f.cfg.threshold).sum())}/{int(m.sum())} (all angles of a photo: {int((worst < f.cfg.threshold).sum())}/{len(worst)})",
                         worst))
        else:
            n_rej = int(rejected[m].sum())
            rows.append((k, "keep" if k in KEEP else "reject", str(int(m.sum())), f"{n_rej}/{int(m.sum())}", s[m]))
        wrong = rejected[m] if k in KEEP else ~rejected[m]
        misses += [f"{k}:{n} ({v:.2f})" for n, v, w in zip(np.array(names)[m], s[m], wrong) if w]
    core = np.isin(kinds, KEEP[:5]) | y
    tp, fp = int((rejected & y).sum()), int((rejected & ~y).sum())
    summary = {"auc": float(roc_auc_score(y, -s)), "auc_without_mild": float(roc_auc_score(y[core], -s[core])),
               "precision": tp / max(1, tp + fp), "recall": tp / max(1, int(y.sum())),
               "clean_rejected": int(rejected[kinds == "clean"].sum()), "clean_n": int((kinds == "clean").sum()),
               "images_per_s": ips}
    return rows, misses, summary


def print_table(title, rows, summary, threshold):
    print(f"### {title}\n")
    print(f"AUC {summary['auc']:.3f} (without the mild-softness kind: {summary['auc_without_mild']:.3f}); "
          f"precision {summary['precision']:.3f}, recall {summary['recall']:.3f} at sharpness < {threshold:g}; "
          f"clean photos rejected {summary['clean_rejected']}/{summary['clean_n']}.\n")
    print("| kind | should be | images | rejected | sharpness min / median / max |")
    print("|---|---|---|---|---|")
    for k, want, n, rej, v in rows:
        print(f"| {k} | {want} | {n} | {rej} | {v.min():.2f} / {np.median(v):.2f} / {v.max():.2f} |")
    print()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_source_options(ap)
    ap.add_argument("--angles", type=int, default=12, help="angles of the any-angle motion blur, 180/N degrees apart")
    ap.add_argument("--seed", type=int, default=0)
    add_readme_option(ap, __file__)
    args = ap.parse_args(argv)
    with readme_section(args.readme, __file__):
        run(args)


def run(args):
    f = BlurFilter.ready()
    sets = [(0, "Tuning set: bundled photos (tuned on these)",
             {n: stored(load_photo(n)) for n in CLEAN_PHOTOS}, {"clock_motion.png": stored(load_photo("clock_motion"))})]
    for src in (SOURCES[s] for s in args.source):
        d = getattr(args, f"{src.name}_data")
        if not os.path.exists(d):
            print(f"(held-out set skipped: --{src.name}-data {d} not found; install Debian's {src.package})\n")
            continue
        sets.append((1 + list(SOURCES).index(src.name), f"Held-out set: {src.title} (never tuned on)",
                     {os.path.basename(n): src.load(d, n) for n in src.clean}, {n: src.load(d, n) for n in src.real_blur}))
    result = {}
    for k, title, clean, real in sets:  # k: the set's seed, the same whichever sources run
        rows, misses, summary = evaluate(labelled(clean, real, np.random.default_rng([args.seed, k]), args.angles), f)
        print_table(title, rows, summary, f.cfg.threshold)
        print(f"Wrong decisions: {', '.join(misses) or 'none'}\n")
        result[title.split(" (")[0]] = {k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()}
    print(f"Speed: {np.mean([r['images_per_s'] for r in result.values()]):.0f} images/s (BlurFilter.score, 512 px)\n")
    print(f"Machine: {machine()}; load average {os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d')}\n")
    print("RESULT " + json.dumps(result), file=sys.stderr)  # machine-readable, not for the README


if __name__ == "__main__":
    main()
