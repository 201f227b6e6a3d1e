"""Train the default watermark model (WatermarkNet) on CPU, reproducibly.

    python -m filter_dev.watermark_train                      # the committed default (see defaults below)
    python -m filter_dev.watermark_train --out /tmp/wm.safetensors --train-pairs 64 --steps 5   # smoke run
    python -m filter_dev.watermark_train --init WEIGHTS --miss-layouts --coat-fraction 0.15 --lr 1e-3 --steps N ...
                                                              # fine-tune WEIGHTS (same architecture; bench/README.md)

1. Data (filter_dev/watermark_data.py): augmented views of the TRAINING photos
   (filter_dev.photos.WATERMARK_SPLIT["train"]: 12 bundled photos and 36 photos and textures
   from Debian's background packages, `make watermark-photos`), some with ordinary scene
   text drawn in (a hard negative), plus synthetic dead-leaves images; each view gives a
   PAIR: the clean view and the same view with a synthetic watermark in a TRAINING style
   (filter_dev/synth/watermarks.py), each then JPEG-compressed and squashed to the model's
   input size. Pairs force the model to learn the overlay, not the photo.
2. Train WatermarkNet (filters/watermark_net.py) with AdamW + one-cycle LR: BCE on the
   image label plus BCE on per-cell labels (which 32x32-px cells of the input the mark
   visibly changed, from the clean/marked difference), batches of whole pairs.
3. Evaluate on HELD-OUT photos with (a) held-out watermark styles (fonts, texts and layouts
   never seen in training) and (b) training styles; report ROC-AUC and precision/recall at
   the default threshold.
4. Write fp16 safetensors + a .json (config, metrics, the command's arguments; for a
   fine-tune also `init_from`: the starting weights' sha256 and their own .json's recipe).

The data do not depend on worker scheduling and torch is seeded, so a re-run gives the
same weights (CPU).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from filter_dev.photos import BUNDLED_TRAIN_PHOTOS, DEBIAN_PACKAGES, DEBIAN_PHOTOS, PHOTOS, WATERMARK_SPLIT, missing_debian_photos
from filter_dev.quality_metrics import binary_metrics
from filter_dev.watermark_data import PairSpec, make_set
from filters.watermark import DEFAULT_WATERMARK_THRESHOLD, DEFAULT_WEIGHTS
from filters.watermark_net import WatermarkNet, WatermarkNetConfig, load_watermark_net, normalize_uint8, save_watermark_net


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
    m = binary_metrics(y, p, p >= threshold)
    return {**{k: round(v, 4) if isinstance(v, float) else v for k, v in m.items()}, "threshold": threshold}


def training_photos(bundled_only: bool) -> tuple[str, ...]:
    if bundled_only:
        return BUNDLED_TRAIN_PHOTOS
    missing = missing_debian_photos(WATERMARK_SPLIT["train"])
    if missing:
        raise SystemExit(f"training photos missing: install Debian's {' '.join(missing)} (`make watermark-photos`), "
                         "or pass --bundled-photos-only (12 photos: a weaker model)")
    return WATERMARK_SPLIT["train"]


def init_record(path: str) -> dict:
    """What a fine-tune started from: the weights' sha256 and the recipe in their .json
    (train_args, metrics, and their own init_from, if any), so the chain can be retraced."""
    with open(path, "rb") as f:
        rec = {"file": os.path.basename(path), "sha256": hashlib.sha256(f.read()).hexdigest()}
    meta_path = os.path.splitext(path)[0] + ".json"
    if os.path.isfile(meta_path):
        meta = json.load(open(meta_path))
        rec.update({k: meta[k] for k in ("train_args", "metrics", "train_seconds", "train_images", "init_from") if k in meta})
    return rec


def train(args) -> dict:
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    init = None
    if args.init:  # fine-tune: the architecture is the file's, --widths/--depths/--pool/--input-size are ignored
        init = init_record(args.init)  # read first: --out may overwrite the file it starts from
        model = load_watermark_net(args.init)
        args.input_size, args.widths, args.depths, args.pool = (model.cfg.input_size, list(model.cfg.widths),
                                                                list(model.cfg.depths), model.cfg.pool)
    else:
        model = WatermarkNet(WatermarkNetConfig(input_size=args.input_size, widths=tuple(args.widths), depths=tuple(args.depths),
                                                pool=args.pool))
    t0 = time.time()
    train_spec = PairSpec(args.seed, training_photos(args.bundled_photos_only), "train", "train", args.input_size, model.stride,
                          args.miss_layouts, args.coat_fraction)
    x, y, cells = make_set(train_spec, args.train_pairs, args.workers)
    evals = {name: make_set(PairSpec(args.seed, WATERMARK_SPLIT["heldout"], "heldout", style, args.input_size, model.stride),
                            args.eval_pairs, args.workers)[:2]
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
             "train_photos": {n: (DEBIAN_PHOTOS[n][0] if n in DEBIAN_PHOTOS else PHOTOS[n][0]) for n in train_spec.photos},
             "params": int(sum(p.numel() for p in model.parameters()))}
    if init:
        extra["init_from"] = init
    save_watermark_net(model, args.out, extra)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB)", flush=True)
    return extra


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=DEFAULT_WEIGHTS, help="output .safetensors (a .json goes beside it)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", default=None, help="start from these WatermarkNet weights (a fine-tune) instead of random ones")
    p.add_argument("--bundled-photos-only", action="store_true",
                   help=f"train on the 12 photos bundled in Python packages only (no Debian {', '.join(DEBIAN_PACKAGES)})")
    p.add_argument("--train-pairs", type=int, default=12000, help="clean/watermarked pairs from the training photos")
    p.add_argument("--miss-layouts", action="store_true",
                   help="training marks also in the layouts of the held-out benches' misses (filter_dev/synth/watermarks.py MISS_LAYOUTS)")
    p.add_argument("--coat-fraction", type=float, default=0.0,
                   help="training views given a patch of stripes or spots (an animal's coat, a hard negative); 0 = none")
    p.add_argument("--eval-pairs", type=int, default=200, help="pairs per held-out evaluation set")
    p.add_argument("--steps", type=int, default=6000)
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
