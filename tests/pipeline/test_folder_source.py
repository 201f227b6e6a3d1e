"""Local image folders flow through the same decode, filter and write path."""

from __future__ import annotations

import shutil

import webdataset as wds

from filter_dev import hostile
from filter_dev.photos import skimage_photos
from pipeline.ledger import read_ledger
from pipeline.sources import plan_units
from pipeline.step_chain import build_chain
from pipeline.units import process_unit
from tests.pipeline.conftest import workflow


def test_folder_with_photos_and_broken_files(tmp_path):
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    for p in skimage_photos():
        if p.name in ("astronaut.png", "coffee.png"):
            shutil.copy(p, folder / p.name)
    shutil.copy(next(p for p in skimage_photos() if p.name == "rocket.jpg"), folder / "sub" / "rocket.jpg")
    payloads = hostile.hostile_payloads()
    (folder / "broken.jpg").write_bytes(payloads["corrupt.jpg"][1])
    (folder / "bomb.png").write_bytes(payloads["bomb.png"][1])
    (folder / "notes.txt").write_text("not an image: skipped by extension")

    cfg = workflow([{"type": "folder", "path": str(folder)}], output={"shard_size": 10})
    (unit,) = plan_units(cfg)
    assert unit.kind == "file" and len(unit.items) == 5
    out = tmp_path / "out"
    (out / "shards").mkdir(parents=True)
    (out / "ledger").mkdir()
    process_unit(unit, cfg, build_chain(cfg), out)

    ledger = read_ledger(out).to_pandas().set_index("source")
    status = {k.rsplit("/", 1)[-1]: (r["status"], r["reason"]) for k, r in ledger.iterrows()}
    assert status == {
        "astronaut.png": ("kept", ""), "coffee.png": ("kept", ""), "rocket.jpg": ("kept", ""),
        "broken.jpg": ("failed", "decode_error"), "bomb.png": ("failed", "too_large"),
    }
    samples = list(wds.WebDataset(str(out / "shards" / "00000.tar"), shardshuffle=False).decode("rgb8"))
    assert sorted(s["json"]["source"]["path"].rsplit("/", 1)[-1] for s in samples) == ["astronaut.png", "coffee.png", "rocket.jpg"]
    assert all(max(s["jpg"].shape[:2]) <= 256 for s in samples)
