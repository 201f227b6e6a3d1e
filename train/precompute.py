"""Encode a T2I stage's training shards once: VAE posterior (mean, std) and text tokens per
sample, so the trainer's step runs no frozen encoder (`stages.N.data.latents: DIR`).

    python train/precompute.py --config workflows/train.yaml --stage 2 [--out DIR] [--batch-size B]
    accelerate launch --num_processes 8 train/precompute.py --config ... --stage 2   # one process per GPU

Each sample gets its bucket exactly as the trainer assigns it (the stored size in its json,
the stage's bucket table), is centre-cropped to it (the trainer's validation crop: one
fixed crop per image, where online training draws a random one per epoch) and encoded in
batches of one bucket, under the config's mixed precision. Samples the trainer would skip
(too small for their bucket, unreadable) are left out and counted. The unit of work and of
resume is a source shard: process r of R takes shards r, r + R, ...; a shard's output is
written to a temporary name and renamed when whole, and a rerun skips the shards already
there. The format and the manifest are in train/latents.py.

Processes, not Ray: DESIGN.md keeps Ray in pipeline/, and train/ already launches on one or
many GPUs and nodes with accelerate; a one-pass job split by shard, resumed by shard, needs
no scheduler beyond that.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import torch

from train.buckets import BucketBatcher, assign_bucket, bucket_table
from train.config import ConfigError, load_config, stage_config
from train.cuda_check import GPUUnusable, train_on_cpu
from train.data import (
    Counters,
    DataError,
    image_size,
    make_decoder,
    pixels_on,
    resolve_source,
    shard_records,
    upscale_needed,
)
from train.encoders import ModelLoadError, TextEncoder, load_vae, vae_factor
from train.latents import EMPTY_CAPTION, MANIFEST, check_unique_names, encode_sample, identity, mismatches, shard_name
from train.monitor import log, setup_logging
from train.stage import StartError, check_source_sizes


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="training workflow YAML")
    p.add_argument("--stage", type=int, required=True, help="a t2i stage of the config")
    p.add_argument("--out", help="output folder (default: the stage's data.latents)")
    p.add_argument("--batch-size", type=int, help="images per encoder batch (default: the stage's batch_size)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return precompute(load_config(args.config), args.stage, args.out, args.batch_size)
    except (ConfigError, DataError, ModelLoadError, StartError, GPUUnusable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def precompute(cfg, stage: int, out: str | None, batch_size: int | None) -> int:
    from accelerate import Accelerator

    import ascan

    sc = stage_config(cfg, stage)
    if sc.task != "t2i":
        raise ConfigError(f"stage {stage} is a {sc.task} stage; precomputed latents are for t2i stages")
    out = out or sc.data.latents
    if out is None:
        raise ConfigError(f"stages.{stage}.data.latents is not set: set it to the output folder, or pass --out DIR")
    out = Path(out)
    src, kind, _ = resolve_source(sc.data.train, f"stages.{stage}.data.train")
    if kind != "shards":
        raise DataError(f"stages.{stage}.data.train is a folder; precompute reads shards (build them with the pipeline)")
    if sc.data.val_holdout_shards:
        src = src[: -sc.data.val_holdout_shards]  # the trainer's training shards only
    check_unique_names(src, f"stages.{stage}.data.train")

    acc = Accelerator(mixed_precision=cfg.accelerate.mixed_precision, cpu=train_on_cpu(cfg.accelerate.device))
    out.mkdir(parents=True, exist_ok=True)
    setup_logging(out, acc.is_main_process)
    device = acc.device
    vae = load_vae(cfg.vae, device)
    text = TextEncoder(cfg.text_encoder, device)
    unet_cfg = ascan.get_config(cfg.models.unet.name, **cfg.models.unet.overrides)
    multiple = vae_factor(vae) * unet_cfg.downsample_factor  # as T2ITask.pixel_multiple, without building the UNet
    table = bucket_table(sc.resolution, multiple) if sc.buckets else [(sc.resolution, sc.resolution)]
    ident = identity(cfg, sc, table)

    # Every process checks (so a refusal stops them all, none waits for the others); the main one writes.
    check_manifest(out, ident)
    check_source_sizes(src, kind, table, sc, stage)
    if acc.is_main_process:
        write_json(out / MANIFEST, {**ident, "source": src, "format": "train/latents.py", "shards": {}})
        if not (out / EMPTY_CAPTION).is_file():
            save_empty_caption(text, acc, out / EMPTY_CAPTION)
    acc.wait_for_everyone()

    mine = src[acc.process_index:: acc.num_processes]
    todo = [u for u in mine if not (out / shard_name(u)).is_file()]
    log.info("precompute stage %d: %d shards, %d on this process, %d already done, %d to encode, batch %d, %s",
             stage, len(src), len(mine), len(mine) - len(todo), len(todo), batch_size or sc.batch_size, device)
    t0, images = time.time(), 0
    for url in todo:
        counts = encode_shard(url, out, vae, text, table, sc, batch_size or sc.batch_size, acc)
        images += counts["samples"]
        log.info("%s: %s (%.1f images/s)", shard_name(url), json.dumps(counts), images / max(time.time() - t0, 1e-9))
    acc.wait_for_everyone()
    if acc.is_main_process:
        finish_manifest(out, src)
    acc.end_training()
    return 0


def check_manifest(out: Path, ident: dict) -> None:
    """A rerun must have been started with the same models and settings: no mixed latents."""
    path = out / MANIFEST
    if path.is_file():
        diff = mismatches(json.loads(path.read_text()), ident)
        if diff:
            raise StartError(f"{out} holds latents computed with other settings:\n  " + "\n  ".join(diff) +
                             "\nwrite to another folder (--out) or delete this one")


def finish_manifest(out: Path, src: list[str]) -> None:
    """Per-shard counts (from each shard's stats file) and totals into the manifest."""
    manifest = json.loads((out / MANIFEST).read_text())
    shards, total = {}, Counter()
    for url in src:
        stats = out / (shard_name(url) + ".json")
        if (out / shard_name(url)).is_file() and stats.is_file():
            shards[shard_name(url)] = json.loads(stats.read_text())
            total.update(shards[shard_name(url)])
    manifest.update(shards=shards, totals=dict(total), complete=len(shards) == len(src))
    write_json(out / MANIFEST, manifest)
    log.info("manifest: %d of %d shards, %s", len(shards), len(src), json.dumps(dict(total)))


@torch.no_grad()
def save_empty_caption(text, acc, path: Path) -> None:
    from safetensors.torch import save_file

    with acc.autocast():
        tokens, mask = text([""])
    tmp = path.with_suffix(".tmp")
    save_file({"tokens": tokens.float().cpu().contiguous(), "mask": mask.to(torch.uint8).cpu().contiguous()}, str(tmp))
    os.replace(tmp, path)


@torch.no_grad()
def encode_shard(url: str, out: Path, vae, text, table, sc, batch_size: int, acc) -> dict:
    """One source shard -> out/<name> (written as <name>.tmp, renamed when whole) + <name>.json."""
    import webdataset as wds

    counters, counts = Counters(), Counter(samples=0, too_small=0, bad=0)

    def bucketed():
        for rec in shard_records([url], 0, 1, 0, None, counters):
            size = image_size(rec)
            if size is None:
                counters.bad += 1
                continue
            bucket = assign_bucket(*size, table)
            if upscale_needed(size, bucket) > sc.max_upscale:
                counts["too_small"] += 1  # the trainer would skip it
                continue
            yield bucket, rec

    decode = make_decoder("t2i", train=False)  # centre crop to the bucket
    name = shard_name(url)
    tmp = out / f"{name}.tmp"
    with wds.TarWriter(str(tmp)) as sink:
        for bucket, recs in BucketBatcher(batch_size, flush=True)(bucketed()):
            batch = decode(bucket, recs, None)
            counts["bad"] += batch["bad"]
            if not batch["size"]:
                continue
            with acc.autocast():
                posterior = vae.encode(pixels_on(batch["pixels"], acc.device)).latent_dist
                tokens, mask = text(batch["txt"])
            for i, key in enumerate(batch["keys"]):
                sink.write(encode_sample(key, posterior.mean[i].float(), posterior.std[i].float(), tokens[i], mask[i],
                                         bucket, batch["txt"][i]))
            counts["samples"] += batch["size"]
    counts["bad"] += counters.bad
    write_json(out / f"{name}.json", dict(counts))
    os.replace(tmp, out / name)  # the tar last: it marks the shard done
    return dict(counts)


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
