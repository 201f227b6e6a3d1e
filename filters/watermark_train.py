"""Train the default watermark model (WatermarkNet) on CPU, reproducibly.

    python -m filters.watermark_train                      # the committed default (see defaults below)
    python -m filters.watermark_train --out /tmp/wm.safetensors --train-pairs 64 --steps 5   # smoke run

1. Data: random views (crop, rescale, flip; for training also rotations, colour and
   gamma changes, haze, sprinkled dots, 2x2 collages) of the TRAINING photos, plus synthetic
   dead-leaves images (25 %)
   (filters.photos.WATERMARK_SPLIT["train"]); each view gives a PAIR: the clean view and
   the same view with a synthetic watermark in a TRAINING style (filters.watermark_synth:
   train fonts, texts and layouts), each then JPEG-compressed and squashed to the model's
   input size. Pairs force the model to learn the overlay, not the photo.
2. Train WatermarkNet (filters/watermark_net.py) with AdamW + one-cycle LR: BCE on the
   image label plus BCE on per-cell labels (which 32x32-px cells of the input the mark
   visibly changed, from the clean/marked difference), batches of whole pairs.
3. Evaluate on HELD-OUT photos with (a) held-out watermark styles (fonts, texts and layouts
   never seen in training) and (b) training styles; report ROC-AUC and precision/recall at
   the default threshold.
4. Write fp16 safetensors + a .json (config, metrics, the command's arguments).

Every sample i is drawn from numpy's default_rng([seed, split, i]), so the data do not
depend on worker scheduling; torch is seeded, so a re-run gives the same weights (CPU).
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from filters.photos import WATERMARK_SPLIT, load_photo
from filters.watermark import DEFAULT_WATERMARK_THRESHOLD, DEFAULT_WEIGHTS
from filters.watermark_net import WatermarkNet, WatermarkNetConfig, normalize_uint8, save_watermark_net
from filters.watermark_synth import add_watermark, dead_leaves


def random_view(photo: np.ndarray, rng: np.random.Generator, long_side=(320, 640), augment: bool = False) -> np.ndarray:
    """A random crop/rescale/flip of `photo`, long side in `long_side` px (the pipeline
    stores images at max side ~512). `augment` adds what multiplies a dozen photos into
    many different-looking ones: deeper zoom, rotations, colour/gamma changes, greyscale."""
    H, W = photo.shape[:2]
    area = rng.uniform(0.08 if augment else 0.25, 1.0) * H * W
    aspect = np.exp(rng.uniform(np.log(0.6), np.log(1.67)))
    w = int(min(W, round(np.sqrt(area * aspect))))
    h = int(min(H, round(np.sqrt(area / aspect))))
    y0, x0 = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
    view = photo[y0:y0 + h, x0:x0 + w]
    L = rng.uniform(*long_side)
    s = L / max(h, w)
    view = cv2.resize(view, (max(16, round(w * s)), max(16, round(h * s))), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    if rng.random() < 0.5:
        view = view[:, ::-1]
    if not augment:
        return np.ascontiguousarray(view)
    if rng.random() < 0.3:
        view = np.rot90(view, int(rng.integers(1, 4)))
    if rng.random() < 0.2:
        hh, ww = view.shape[:2]
        m = cv2.getRotationMatrix2D((ww / 2, hh / 2), float(rng.uniform(-20, 20)), 1.25)
        view = cv2.warpAffine(np.ascontiguousarray(view), m, (ww, hh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    v = view.astype(np.float32)
    if rng.random() < 0.3:
        v = v[:, :, rng.permutation(3)]
    gray = v.mean(2, keepdims=True)
    v = gray + (v - gray) * (0.0 if rng.random() < 0.15 else rng.uniform(0.5, 1.5))
    v = (v - v.mean()) * rng.uniform(0.7, 1.3) + v.mean() + rng.uniform(-30, 30)
    v = 255.0 * (np.clip(v, 0, 255) / 255.0) ** rng.uniform(0.7, 1.4)
    return np.ascontiguousarray(np.clip(v, 0, 255).astype(np.uint8))


def haze(view: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Haze, fog or glare: blend towards a light colour, uniformly or along a gradient.
    A translucent veil without a shape is not a watermark (without this the model took
    hazy photos for faint marks)."""
    h, w = view.shape[:2]
    c = np.array([rng.uniform(170, 255)] * 3, np.float32) + rng.uniform(-15, 15, 3).astype(np.float32)
    a = rng.uniform(0.1, 0.5)
    if rng.random() < 0.5:
        ramp = np.linspace(0, 1, h if rng.random() < 0.7 else w, dtype=np.float32) ** rng.uniform(0.5, 2)
        ramp = ramp[::-1] if rng.random() < 0.5 else ramp
        alpha = (ramp[:, None] if len(ramp) == h else ramp[None, :]) * a
    else:
        alpha = np.full((1, 1), a, np.float32)
    out = view.astype(np.float32) * (1 - alpha[..., None]) + c * alpha[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def sprinkle(view: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scatter small dots and blobs (boats on a lake, birds, stars, dust): small repeated
    marks that are not lettering."""
    out = view.copy()
    h, w = out.shape[:2]
    for _ in range(int(rng.integers(10, 120))):
        c = tuple(int(v) for v in (rng.integers(0, 256, 3) if rng.random() < 0.3 else [int(rng.integers(0, 256))] * 3))
        center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(1, 5)), int(rng.integers(1, 4)))
        cv2.ellipse(out, center, axes, float(rng.uniform(0, 180)), 0, 360, c, -1, lineType=cv2.LINE_AA)
    return out


def mosaic(views: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """A 2x2 collage of views (split point random), at the first view's size."""
    H, W = views[0].shape[:2]
    cy, cx = int(H * rng.uniform(0.3, 0.7)), int(W * rng.uniform(0.3, 0.7))
    out = np.empty_like(views[0])
    for v, (ys, xs) in zip(views, [(slice(0, cy), slice(0, cx)), (slice(0, cy), slice(cx, W)),
                                   (slice(cy, H), slice(0, cx)), (slice(cy, H), slice(cx, W))]):
        hh, ww = ys.stop - ys.start, xs.stop - xs.start
        out[ys, xs] = cv2.resize(v, (ww, hh), interpolation=cv2.INTER_AREA)
    return out


def jpeg(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.25:
        return image
    ok, buf = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 96))])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]


def cell_labels(clean: np.ndarray, marked: np.ndarray, size: int, stride: int, min_diff: float = 12.0) -> np.ndarray:
    """Which (stride x stride) cells of the size x size input the mark visibly changed:
    the per-pixel colour change (max over channels), squashed to the input size, max-pooled
    per cell, > min_diff grey levels."""
    diff = np.abs(marked.astype(np.int16) - clean.astype(np.int16)).max(2).astype(np.float32)
    diff = cv2.resize(diff, (size, size), interpolation=cv2.INTER_AREA)
    n = size // stride
    return (diff[:n * stride, :n * stride].reshape(n, stride, n, stride).max((1, 3)) > min_diff).astype(np.uint8)


DEAD_LEAVES_FRACTION = 0.25  # share of training views that are synthetic dead-leaves images


def args_dead_leaves(photo_split: str) -> float:
    return DEAD_LEAVES_FRACTION if photo_split == "train" else 0.0


def make_pair(args) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clean, watermarked) at size x size plus the mark's cell labels, for sample `i` of a
    photo/style split."""
    seed, photo_split, style_split, i, size, stride = args
    rng = np.random.default_rng([seed, {"train": 0, "heldout": 1}[photo_split], {"train": 0, "heldout": 1}[style_split], i])
    names = WATERMARK_SPLIT[photo_split]
    augment = photo_split == "train"  # evaluation views stay plain photos
    if augment and rng.random() < args_dead_leaves(photo_split):
        L = rng.uniform(320, 640)
        a = np.exp(rng.uniform(np.log(0.6), np.log(1.67)))
        view = dead_leaves(rng, int(L / max(1, a)) if a > 1 else int(L), int(L) if a > 1 else int(L * a))
    else:
        view = random_view(load_photo(names[rng.integers(len(names))]), rng, augment=augment)
    if augment and rng.random() < 0.3:
        view = haze(view, rng)
    if augment and rng.random() < 0.15:
        view = sprinkle(view, rng)
    if augment and rng.random() < 0.15:
        view = mosaic([view] + [random_view(load_photo(names[rng.integers(len(names))]), rng, augment=True) for _ in range(3)], rng)
    marked = add_watermark(view, rng, style_split)
    if augment and rng.random() < 0.25:  # rotate the marked pair too: vertical marks
        k = 1 if rng.random() < 0.5 else 3
        view, marked = np.ascontiguousarray(np.rot90(view, k)), np.ascontiguousarray(np.rot90(marked, k))
    cells = cell_labels(view, marked, size, stride)
    clean_in, marked_in = (cv2.resize(jpeg(im, rng), (size, size), interpolation=cv2.INTER_AREA) for im in (view, marked))
    return clean_in, marked_in, cells


def make_set(seed, photo_split, style_split, n_pairs, size, workers, stride=32):
    """uint8 images (2n, size, size, 3), labels (2n,): clean 0, watermarked 1, interleaved,
    and cell labels (2n, size/stride, size/stride) (all 0 for clean images)."""
    jobs = [(seed, photo_split, style_split, i, size, stride) for i in range(n_pairs)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            pairs = list(pool.map(make_pair, jobs, chunksize=16))
    else:
        pairs = [make_pair(j) for j in jobs]
    x = np.stack([im for p in pairs for im in p[:2]])
    y = np.tile(np.array([0, 1], dtype=np.float32), n_pairs)
    cells = np.stack([c for p in pairs for c in (np.zeros_like(p[2]), p[2])])
    return x, y, cells


def cpu_has_bf16() -> bool:
    """bf16 autocast pays off on CPUs with AMX or AVX512-BF16 (about 3x here); elsewhere it is slower."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


@torch.inference_mode()
def predict(model, x: np.ndarray, batch_size=64) -> np.ndarray:
    model.eval()
    out = [torch.sigmoid(model(normalize_uint8(torch.from_numpy(x[i:i + batch_size])))) for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy().astype(np.float64)


def metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    from sklearn.metrics import roc_auc_score

    pred = p >= threshold
    tp, fp, fn = int((pred & (y == 1)).sum()), int((pred & (y == 0)).sum()), int((~pred & (y == 1)).sum())
    return {"auc": round(float(roc_auc_score(y, p)), 4), "precision": round(tp / max(1, tp + fp), 4),
            "recall": round(tp / max(1, tp + fn), 4), "n": int(len(y)), "threshold": threshold}


def train(args) -> dict:
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = WatermarkNetConfig(input_size=args.input_size, widths=tuple(args.widths), depths=tuple(args.depths), pool=args.pool)
    model = WatermarkNet(cfg)
    t0 = time.time()
    x, y, cells = make_set(args.seed, "train", "train", args.train_pairs, args.input_size, args.workers, model.stride)
    evals = {name: make_set(args.seed, "heldout", style, args.eval_pairs, args.input_size, args.workers, model.stride)[:2]
             for name, style in (("heldout_photos_heldout_styles", "heldout"), ("heldout_photos_train_styles", "train"))}
    t_data = time.time() - t0
    print(f"data: {len(x)} train images, {sum(len(e[0]) for e in evals.values())} eval images in {t_data:.0f}s; "
          f"{cells[1::2].mean():.2f} of a marked image's cells are marked", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.15)
    gen = torch.Generator().manual_seed(args.seed)
    xt, yt, ct = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(cells).float()
    cell_pos_weight = torch.tensor((1 - cells.mean()) / max(cells.mean(), 1e-3)).clamp(max=20.0)
    n_pairs, pairs_per_batch = len(x) // 2, max(1, args.batch_size // 2)
    # Batches hold whole pairs (clean + watermarked view side by side): every gradient
    # step contrasts the same pixels with and without a mark.
    order = torch.randperm(n_pairs, generator=gen)
    bf16 = args.bf16 == "on" or (args.bf16 == "auto" and cpu_has_bf16())
    model = model.to(memory_format=torch.channels_last)
    print(f"training {sum(p.numel() for p in model.parameters())} parameters, bf16 autocast {'on' if bf16 else 'off'}", flush=True)
    pos, t1, avg = 0, time.time(), [0.0, 0.0]
    for step in range(1, args.steps + 1):
        model.train()
        if pos + pairs_per_batch > len(order):
            order, pos = torch.randperm(n_pairs, generator=gen), 0
        p = order[pos:pos + pairs_per_batch]
        pos += pairs_per_batch
        idx = torch.stack([2 * p, 2 * p + 1], 1).reshape(-1)
        xb = normalize_uint8(xt[idx])
        cb = ct[idx]
        flip = (torch.rand(len(p), generator=gen) < 0.5).repeat_interleave(2)
        xb[flip], cb[flip] = xb[flip].flip(3), cb[flip].flip(2)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logit, cell_logit = model(xb.contiguous(memory_format=torch.channels_last), return_cells=True)
        img_loss = F.binary_cross_entropy_with_logits(logit.float(), yt[idx])
        cell_loss = F.binary_cross_entropy_with_logits(cell_logit.float(), cb, pos_weight=cell_pos_weight)
        loss = img_loss + args.cell_weight * cell_loss
        losses = (img_loss.item(), cell_loss.item())
        avg = [0.98 * a + 0.02 * v for a, v in zip(avg, losses)] if step > 1 else list(losses)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % args.log_every == 0 or step == args.steps:
            el = time.time() - t1
            print(f"step {step}/{args.steps} image loss {avg[0]:.4f} cell loss {avg[1]:.4f} lr {sched.get_last_lr()[0]:.2e} "
                  f"{step / el:.2f} steps/s ({step * args.batch_size / el:.0f} img/s)", flush=True)
    t_train = time.time() - t1

    results = {name: metrics(ye, predict(model, xe), DEFAULT_WATERMARK_THRESHOLD) for name, (xe, ye) in evals.items()}
    for name, m in results.items():
        print(f"{name}: {m}", flush=True)
    extra = {"metrics": results, "train_args": vars(args), "data_seconds": round(t_data, 1),
             "train_seconds": round(t_train, 1), "train_images": int(len(x)),
             "params": int(sum(p.numel() for p in model.parameters()))}
    save_watermark_net(model, args.out, extra)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB)", flush=True)
    return extra


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=DEFAULT_WEIGHTS, help="output .safetensors (a .json goes beside it)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-pairs", type=int, default=6000, help="clean/watermarked pairs from the training photos")
    p.add_argument("--eval-pairs", type=int, default=200, help="pairs per held-out evaluation set")
    p.add_argument("--steps", type=int, default=4500)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--input-size", type=int, default=320)
    p.add_argument("--pool", choices=["global", "cells"], default=WatermarkNetConfig.pool,
                   help="image logit from pooled features (global) or from the cell logits (cells)")
    p.add_argument("--cell-weight", type=float, default=1.0, help="weight of the per-cell (where is the mark) loss")
    p.add_argument("--widths", type=int, nargs="+", default=list(WatermarkNetConfig.widths))
    p.add_argument("--depths", type=int, nargs="+", default=list(WatermarkNetConfig.depths))
    p.add_argument("--bf16", choices=["auto", "on", "off"], default="auto",
                   help="bf16 autocast for training (auto: when the CPU has AMX/AVX512-BF16)")
    p.add_argument("--workers", type=int, default=2, help="processes for data generation")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--log-every", type=int, default=250)
    args = p.parse_args(argv)
    if len(args.widths) != len(args.depths):
        p.error("--widths and --depths need the same length")
    return args


def main(argv=None):
    train(parse_args(argv))


if __name__ == "__main__":
    main()
