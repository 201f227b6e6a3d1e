"""The streaming loader on real pipeline shards: buckets from the json's stored size, one
bucket per batch, disjoint rank splits, an exact data position, decode failures counted."""

from __future__ import annotations

import io
import json
import math

import torch
import webdataset as wds
from PIL import Image

from tests.train.shards import WIDE_NAME
from train.buckets import RATIOS, assign_bucket, bucket_table
from train.data import expand_shards, list_class_folder, make_loader, pixels_on, survey_upscale


def _loader(shards, **kw):
    args = {"task": "t2i", "train": True, "batch_size": 2, "bucket_table": [(64, 64)], "seed": 0, "rank": 0, "world": 1,
            "num_workers": 0, "shuffle_buffer": 8}
    args.update(kw)
    return make_loader(shards, "shards", **args)


def _take(loader, n):
    it = iter(loader)
    return [next(it) for _ in range(n)]


def test_bucket_table_spans_ratios_at_constant_area():
    table = bucket_table(512, 64)
    ratios = [h / w for h, w in table]
    assert min(ratios) <= 0.26 and max(ratios) >= 3.9 and RATIOS[0] == 0.25 and RATIOS[-1] == 4.0
    for h, w in table:
        assert h % 64 == 0 and w % 64 == 0
        assert 0.75 < h * w / 512**2 < 1.3, (h, w)
    assert assign_bucket(100, 300, table)[1] / assign_bucket(100, 300, table)[0] >= 2.5  # 3:1 -> wide
    assert assign_bucket(300, 100, table)[0] / assign_bucket(300, 100, table)[1] >= 2.5  # 1:3 -> tall
    assert assign_bucket(500, 500, table) == (512, 512)


def test_wide_image_lands_in_a_wide_bucket_and_batches_hold_one_bucket(shards):
    urls = expand_shards(str(shards / "*.tar"), "test")
    table = bucket_table(128, 32)
    # the stored size in the json is what buckets read (no decode)
    meta = {s["__key__"]: json.loads(s["json"]) for u in urls for s in wds.WebDataset(u, shardshuffle=False)}
    sizes = {k: m["sizes"] for k, m in meta.items()}
    wide_key = next(k for k, m in meta.items() if m["source"]["url"].endswith(WIDE_NAME))
    assert sizes[wide_key]["original_width"] == 3 * sizes[wide_key]["original_height"]
    batches = _take(_loader(urls, batch_size=1, bucket_table=table), 20)
    for b in batches:
        assert b["pixels"].shape[-2:] == tuple(b["bucket"])  # one size per batch
    buckets_seen = {k: tuple(b["bucket"]) for b in batches for k in b["keys"]}
    h, w = buckets_seen[wide_key]
    assert w / h >= 2.5, (h, w)
    assert len(set(buckets_seen.values())) >= 3  # the photos span several buckets
    # batches of 2: every batch still holds a single bucket, and the sizes match it
    for b in _take(_loader(urls, batch_size=2, bucket_table=table), 12):
        hw = {assign_bucket(sizes[k]["height"], sizes[k]["width"], table) for k in b["keys"]}
        assert hw == {tuple(b["bucket"])}


def test_ranks_see_disjoint_samples_within_an_epoch(shards):
    urls = expand_shards(str(shards / "*.tar"), "test")
    seen = []
    for rank in (0, 1):
        batches = _take(_loader(urls, rank=rank, world=2, batch_size=1), 4)
        seen.append({k for b in batches for k in b["keys"]})
    assert len(seen[0]) == len(seen[1]) == 4 and not seen[0] & seen[1]


def test_data_position_resumes_the_exact_batch_sequence(shards):
    """With 2 loader workers: skipping n batches gives exactly batches n, n+1, ... of the full stream."""
    urls = expand_shards(str(shards / "*.tar"), "test")
    full = [b["keys"] for b in _take(_loader(urls, num_workers=2), 12)]
    for n in (3, 7):
        resumed = [b["keys"] for b in _take(_loader(urls, num_workers=2, start_batch=n), 12 - n)]
        assert resumed == full[n:]
    assert len({tuple(k) for k in full[:6]}) == 6


def test_decode_failures_are_skipped_and_counted(shards, tmp_path):
    good = next(iter(wds.WebDataset(str(shards / "00000.tar"), shardshuffle=False)))
    bad_tar = tmp_path / "bad.tar"
    with wds.TarWriter(str(bad_tar)) as sink:
        buf = io.BytesIO()
        Image.new("RGB", (96, 64), (200, 10, 10)).save(buf, "JPEG")
        meta = json.dumps({"sizes": {"width": 96, "height": 64}}).encode()
        sink.write({"__key__": "ok1", "jpg": buf.getvalue(), "txt": b"red", "json": meta})
        sink.write({"__key__": "corrupt", "jpg": b"\xff\xd8\xff not a jpeg", "txt": b"x", "json": meta})
        sink.write({"__key__": "truncated", "jpg": good["jpg"][: len(good["jpg"]) // 3], "txt": b"y", "json": good["json"]})
        sink.write({"__key__": "ok2", "jpg": buf.getvalue(), "txt": b"red", "json": meta})
    batches = _take(_loader([str(bad_tar)], train=False, batch_size=4), 1)
    assert batches[0]["keys"] == ["ok1", "ok2"] and batches[0]["bad"] == 2
    assert batches[0]["pixels"].dtype == torch.uint8  # normalised on the device (pixels_on)
    assert math.isclose(float(pixels_on(batches[0]["pixels"], "cpu").abs().max()), 1.0, abs_tol=0.2)


def test_images_smaller_than_their_bucket_are_skipped_and_counted(shards):
    """The test shards store 256 px on the long side: a 128 px stage uses them, a 512 px stage
    would have to enlarge every one, so it skips them all (and counts why)."""
    urls = expand_shards(str(shards / "*.tar"), "test")
    fits = _take(_loader(urls, bucket_table=[(128, 128)], max_upscale=1.0), 3)
    assert all(b["size"] == 2 and b["too_small"] == 0 for b in fits)
    counts = survey_upscale(urls, "shards", lambda h, w: (512, 512), max_upscale=1.0)
    assert counts == (13, 13)
    # with a tolerance covering the largest enlargement (the 3:1 panorama's short side), all are used
    assert survey_upscale(urls, "shards", lambda h, w: (512, 512), max_upscale=10.0) == (13, 0)
    mixed = survey_upscale(urls, "shards", lambda h, w: (256, 256), max_upscale=1.0)
    assert 0 < mixed[1] < mixed[0]  # only the photos whose short side is under 256
    loader = _loader(urls, bucket_table=[(256, 256)], max_upscale=1.0, train=False, batch_size=1)
    batches = list(loader)
    assert sum(b["size"] for b in batches) == mixed[0] - mixed[1]
    assert sum(b["too_small"] for b in batches) == mixed[1]


def test_an_imagenet_folder_gives_class_name_captions(tmp_path):
    """Generative pretraining (task t2i on an ImageNet folder): captions from the class names."""
    for folder in ("n01440764", "n02102040"):
        (tmp_path / "train" / folder).mkdir(parents=True)
        Image.new("RGB", (40, 40), (9, 9, 9)).save(tmp_path / "train" / folder / "a.JPEG")
    (tmp_path / "LOC_synset_mapping.txt").write_text("n01440764 tench, Tinca tinca\nn02102040 English springer\n")
    files, classes = list_class_folder(str(tmp_path / "train"), "test")
    assert [c for _, _, c in files] == ["a photo of a tench", "a photo of a English springer"]
    batch = _take(make_loader(files, "folder", task="t2i", train=False, batch_size=2, bucket_table=[(32, 32)], seed=0,
                              rank=0, world=1, num_workers=0), 1)[0]
    assert sorted(batch["txt"]) == ["a photo of a English springer", "a photo of a tench"]
