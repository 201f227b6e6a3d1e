"""Streaming training data: shards (or an ImageNet folder) -> per-rank, per-worker sample
streams -> shuffle buffer -> per-bucket batches -> decode, with an exact data position.

Split. Every (rank, worker) pair is a "slot". With at least as many shards as slots,
epoch e deals a seeded permutation of the shards round-robin to the slots: disjoint
samples, each seen once per epoch. With fewer shards than slots, splitting by shard would
leave slots (and so ranks) with nothing, so each slot instead resamples shards with
replacement (a warning says so). Folders are split the same way, by file.

Position. Each worker's stream is infinite (epoch after epoch) and depends only on
(seed, slot), and the DataLoader takes batches from its workers round-robin, so
"batches consumed" is the whole data position: on resume after n batches, loader
worker i continues stream w = (i + n) % W, skipping its first ceil((n - w) / W) raw
batches before decoding them. Bucketing reads the json's stored
size and decoding happens after batching, so skipping costs only reading bytes.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import warnings
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from pipeline import shard_paths
from train.buckets import BucketBatcher, assign_bucket

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


class DataError(ValueError):
    """Training data that cannot be used; the message names the setting and the fix."""


# ---------------------------------------------------------------- what to read


def expand_shards(spec: str | list[str], setting: str) -> list[str]:
    """Brace patterns, globs and `pipe:` commands -> a non-empty list of shard URLs."""
    return shard_paths.expand_shards(spec, setting, DataError)


def is_folder_layout(spec: str | list[str]) -> bool:
    return isinstance(spec, str) and os.path.isdir(spec)


def list_class_folder(root: str, setting: str) -> tuple[list[tuple[str, int, str]], list[str]]:
    """ImageNet layout root/<class>/*.JPEG -> ([(path, class index, caption)], class folder names sorted).

    The caption (used when a T2I stage trains on the folder: generative pretraining) is
    "a photo of a NAME", NAME from `root/classnames.txt` or ImageNet's `LOC_synset_mapping.txt`
    ("n01440764 tench, Tinca tinca" -> "tench") when present, else the folder name."""
    classes = sorted(d.name for d in Path(root).iterdir() if d.is_dir())
    names = class_names(Path(root), classes)
    files = [(str(p), i, f"a photo of a {names[i]}") for i, c in enumerate(classes)
             for p in sorted((Path(root) / c).iterdir()) if p.suffix.lower() in IMAGE_EXTS]
    if not files:
        raise DataError(f"{setting}: folder {root} holds no images in class sub-folders (expected {root}/<class>/*.JPEG)")
    return files, classes


def class_names(root: Path, folders: list[str]) -> list[str]:
    """Readable class names, one per class folder (see list_class_folder)."""
    for candidate in (root / "classnames.txt", root.parent / "LOC_synset_mapping.txt", root / "LOC_synset_mapping.txt"):
        if candidate.is_file():
            table = {}
            for line in candidate.read_text().splitlines():
                folder, _, name = line.strip().partition(" ")
                if name:
                    table[folder] = name.split(",")[0].strip()
            return [table.get(f, f.replace("_", " ")) for f in folders]
    return [f.replace("_", " ") for f in folders]


# ---------------------------------------------------------------- records, per slot


def _slot_items(items: list, slot: int, slots: int, seed: int, epoch: int | None) -> list:
    """This slot's share of `items` for one epoch (see the module docstring). epoch None:
    a single pass in order (validation): split when possible, else all of it on slot 0."""
    if epoch is None:
        return items[slot::slots] if len(items) >= slots else (items if slot == 0 else [])
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(items)))
    rng.shuffle(order)
    if len(items) >= slots:
        return [items[j] for pos, j in enumerate(order) if pos % slots == slot]
    pick = random.Random(f"{seed}/{epoch}/{slot}")
    return [items[pick.randrange(len(items))]]


class Counters:
    """Skipped samples by reason, reported with each batch so the main process can sum
    them: `bad` (unreadable) and `too_small` (would need upscaling to cover its bucket)."""

    def __init__(self):
        self.bad = 0
        self.too_small = 0

    def handler(self, exn: Exception) -> bool:  # webdataset: True = skip and continue
        self.bad += 1
        warnings.warn(f"skipping unreadable shard data: {exn!r}", stacklevel=2)
        return True


def shard_records(urls: list[str], slot, slots, seed, epoch, counters: Counters) -> Iterator[dict]:
    mine = _slot_items(urls, slot, slots, seed, epoch)
    yield from wds.tarfile_to_samples(handler=counters.handler)(iter({"url": u} for u in mine))


def folder_records(files: list[tuple[str, int, str]], slot, slots, seed, epoch, counters: Counters) -> Iterator[dict]:
    for path, cls, caption in _slot_items(files, slot, slots, seed, epoch):
        yield {"__key__": path, "path": path, "cls": cls, "txt": caption}


def upscale_needed(size: tuple[int, int], bucket: tuple[int, int]) -> float:
    """The factor `cover_crop` would enlarge an image of `size` (h, w) by to cover `bucket`."""
    return max(bucket[0] / size[0], bucket[1] / size[1])


def survey_upscale(source: list, kind: str, bucket_fn: Callable, max_upscale: float, limit: int = 256) -> tuple[int, int]:
    """(samples read, samples too small) over the first `limit` samples, headers and json only:
    lets a stage refuse at start to train on data it would mostly skip."""
    counters = Counters()
    recs = shard_records(source, 0, 1, 0, None, counters) if kind == "shards" else folder_records(source, 0, 1, 0, None, counters)
    seen = small = 0
    for rec in recs:
        size = image_size(rec)
        if size is not None:
            seen += 1
            small += upscale_needed(size, bucket_fn(*size)) > max_upscale
        if seen >= limit:
            break
    return seen, small


def image_size(rec: dict) -> tuple[int, int] | None:
    """(height, width) from the json's stored size, else from the image header; None if unreadable."""
    try:
        if "json" in rec:
            sizes = json.loads(rec["json"]).get("sizes", {})
            if sizes.get("width") and sizes.get("height"):
                return int(sizes["height"]), int(sizes["width"])
        with Image.open(io.BytesIO(rec["jpg"]) if "jpg" in rec else rec["path"]) as im:  # header only
            return im.height, im.width
    except Exception:  # noqa: BLE001 - counted and skipped by the caller
        return None


# ---------------------------------------------------------------- decode


def load_rgb(rec: dict) -> Image.Image:
    data = rec["jpg"] if "jpg" in rec else Path(rec["path"]).read_bytes()
    im = Image.open(io.BytesIO(data))
    im.load()
    return im.convert("RGB")


def to_uint8(im: Image.Image) -> torch.Tensor:
    """PIL RGB -> uint8 tensor (3, H, W): what loader workers send (a quarter of float32's shared memory)."""
    return torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1)


def pixels_on(pixels: torch.Tensor, device) -> torch.Tensor:
    """A batch's pixels on `device` as floats in [-1, 1]: uint8 (the loader's) is copied, then
    normalised there; floats are taken as already normalised."""
    pixels = pixels.to(device, non_blocking=True)
    return pixels.float().div(127.5).sub(1.0) if pixels.dtype == torch.uint8 else pixels


def to_tensor(im: Image.Image) -> torch.Tensor:
    """PIL RGB -> float tensor (3, H, W) in [-1, 1]."""
    return pixels_on(to_uint8(im), "cpu")


def cover_crop(im: Image.Image, h: int, w: int, rng: random.Random | None = None) -> Image.Image:
    """Resize to cover (h, w) with the aspect kept, then crop (centre, or random with rng)."""
    scale = max(h / im.height, w / im.width)
    rh, rw = max(h, round(im.height * scale)), max(w, round(im.width * scale))
    im = im.resize((rw, rh), Image.BICUBIC)
    y = rng.randint(0, rh - h) if rng else (rh - h) // 2
    x = rng.randint(0, rw - w) if rng else (rw - w) // 2
    return im.crop((x, y, x + w, y + h))


def random_resized_crop(im: Image.Image, size: int, rng: random.Random, min_scale: float) -> Image.Image:
    """RandomResizedCrop + horizontal flip with an explicit RNG (so resume is exact)."""
    W, H = im.size
    for _ in range(10):
        area = W * H * rng.uniform(min_scale, 1.0)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w, h = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < w <= W and 0 < h <= H:
            x, y = rng.randint(0, W - w), rng.randint(0, H - h)
            im = im.resize((size, size), Image.BICUBIC, box=(x, y, x + w, y + h))
            break
    else:
        im = cover_crop(im, size, size)
    return im.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else im


def make_decoder(task: str, train: bool, min_crop_scale: float = 0.35) -> Callable:
    """A function (bucket, records, rng) -> batch dict, pixels uint8 (`pixels_on` normalises them on the
    device); samples that fail to decode are dropped and counted."""

    def decode(bucket, recs, rng):
        h, w = bucket
        pixels, keys, labels, txts, bad = [], [], [], [], 0
        for rec in recs:
            try:
                im = load_rgb(rec)
                if task == "classify":
                    label = int(rec["cls"]) if not isinstance(rec["cls"], bytes) else int(rec["cls"].decode().strip())
                    im = random_resized_crop(im, h, rng, min_crop_scale) if train else cover_crop(im, h, w)
                else:
                    txt = rec.get("txt", b"")
                    txt = txt.decode("utf-8") if isinstance(txt, bytes) else str(txt)
                    im = cover_crop(im, h, w, rng if train else None)
            except Exception:  # noqa: BLE001 - a bad sample is skipped and counted, never a dead run
                bad += 1
                continue
            pixels.append(to_uint8(im))
            keys.append(rec["__key__"])
            labels.append(label) if task == "classify" else txts.append(txt)
        batch = {"keys": keys, "bucket": bucket, "bad": bad, "size": len(keys)}
        if keys:
            batch["pixels"] = torch.stack(pixels)
            if task == "classify":
                batch["label"] = torch.tensor(labels)
            else:
                batch["txt"] = txts
        return batch

    return decode


# ---------------------------------------------------------------- the stream


class SampleStream(IterableDataset):
    """Batches for one rank. `start_batch`: batches this rank already consumed (resume)."""

    def __init__(self, source: list, kind: str, bucket_fn: Callable, decode: Callable, batch_size: int, *,
                 seed: int, rank: int = 0, world: int = 1, shuffle_buffer: int = 1000, start_batch: int = 0,
                 infinite: bool = True, max_upscale: float | None = None):
        self.source, self.kind, self.bucket_fn, self.decode = source, kind, bucket_fn, decode
        self.batch_size, self.seed, self.rank, self.world = batch_size, seed, rank, world
        self.shuffle_buffer, self.start_batch, self.infinite = shuffle_buffer, start_batch, infinite
        self.max_upscale = max_upscale  # None: any size (classification crops resize anyway)

    def __iter__(self):
        info = get_worker_info()
        W = info.num_workers if info else 1
        # The DataLoader asks its workers round-robin from worker 0, so after n batches
        # loader worker 0 must continue the stream of worker n % W: rotate the roles.
        w = ((info.id if info else 0) + self.start_batch) % W
        slot, slots = self.rank * W + w, self.world * W
        if self.infinite and len(self.source) < slots and w == 0 and self.rank == 0:
            warnings.warn(f"{len(self.source)} shards for {slots} rank x worker slots: resampling shards per slot "
                          "(samples may repeat within an epoch); write more, smaller shards to split them exactly", stacklevel=2)
        skip = max(0, math.ceil((self.start_batch - w) / W))
        counters = Counters()
        batcher = BucketBatcher(self.batch_size, flush=not self.infinite)
        for i, (bucket, recs) in enumerate(batcher(self._bucketed(slot, slots, counters))):
            if i < skip:
                continue
            batch = self.decode(bucket, recs, random.Random(f"{self.seed}/{slot}/{i}"))
            batch["bad"] += counters.bad
            batch["too_small"] = counters.too_small
            counters.bad = counters.too_small = 0
            yield batch
        if counters.bad or counters.too_small:  # skips after the last batch of a finite stream still count
            yield {"keys": [], "bucket": None, "bad": counters.bad, "too_small": counters.too_small, "size": 0}

    def _bucketed(self, slot, slots, counters) -> Iterator[tuple[tuple[int, int], dict]]:
        read = folder_records if self.kind == "folder" else shard_records
        for epoch in count() if self.infinite else (None,):
            recs = read(self.source, slot, slots, self.seed, epoch, counters)
            if self.infinite:
                recs = wds.filters._shuffle(recs, self.shuffle_buffer, min(100, self.shuffle_buffer),
                                            rng=random.Random(f"{self.seed}/{epoch}/{slot}/shuffle"))
            if self.kind == "latents":  # precomputed: the bucket is stored, too-small samples were left out
                from train.latents import record_bucket

                for rec in recs:
                    bucket = record_bucket(rec)
                    if bucket is None:
                        counters.bad += 1
                    else:
                        yield bucket, rec
                continue
            for rec in recs:
                size = image_size(rec)
                if size is None:
                    counters.bad += 1
                    continue
                bucket = self.bucket_fn(*size)
                if self.max_upscale is not None and upscale_needed(size, bucket) > self.max_upscale:
                    counters.too_small += 1  # never trained on an enlarged image
                    continue
                yield bucket, rec


def resolve_source(spec, setting: str) -> tuple[list, str, list[str] | None]:
    """(items, kind, class names) for a folder or a shard spec."""
    if is_folder_layout(spec):
        files, classes = list_class_folder(spec, setting)
        return files, "folder", classes
    return expand_shards(spec, setting), "shards", None


def make_loader(source: list, kind: str, *, task: str, train: bool, batch_size: int, bucket_table, seed: int,
                rank: int, world: int, num_workers: int, shuffle_buffer: int = 1000, start_batch: int = 0,
                min_crop_scale: float = 0.35, max_upscale: float | None = None, prefetch: int = 4) -> DataLoader:
    """A DataLoader of ready batches (the dataset batches; batch_size=None here). kind "latents":
    train/precompute.py's shards (train/latents.py), batches of stored latents and text tokens."""
    if not train:
        num_workers = 0  # finite, in order: every validation sample once
    if kind == "latents":
        from train.latents import decode_latents as decode
    else:
        decode = make_decoder(task, train, min_crop_scale)
    ds = SampleStream(source, kind, lambda h, w: assign_bucket(h, w, bucket_table),
                      decode, batch_size, seed=seed, rank=rank, world=world,
                      shuffle_buffer=shuffle_buffer, start_batch=start_batch, infinite=train, max_upscale=max_upscale)
    # Its own generator: by default every iter() draws the workers' base seed from the
    # global torch RNG, which the training step (drop path) also draws from, so a resumed
    # run (one more iter()) would go on with another drop-path stream.
    # pin_memory on CUDA: the step's host-to-device copies are then asynchronous.
    return DataLoader(ds, batch_size=None, num_workers=num_workers, persistent_workers=False,
                      prefetch_factor=prefetch if num_workers else None, pin_memory=torch.cuda.is_available(),
                      generator=torch.Generator().manual_seed(seed * 7919 + rank))
