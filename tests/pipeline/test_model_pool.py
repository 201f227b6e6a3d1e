"""The model pool on Ray: model steps run in their own actor (not in the CPU
workers), a crashing model batch fails only its own samples, per-step figures
reach the manifest, and a real model filter scores in the pool."""

from __future__ import annotations

import os

import pytest

from pipeline.ledger import read_ledger
from pipeline.runner import run_build
from tests.pipeline.conftest import photo_folder, workflow

PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg", "motorcycle_left.png", "rocket.jpg"]


@pytest.fixture(scope="module")
def built(ray_session, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pool")
    folder = photo_folder(tmp / "images", PHOTOS)
    cfg = workflow(
        [{"type": "folder", "path": str(folder)}],
        output={"shard_size": 100},
        filters={"blur": {"enabled": False}, "watermark": {"enabled": True, "device": "cpu"},
                 "explode": {"enabled": True, "on_original_width": 640}},  # rocket.jpg is 640 px wide
        annotate={"probe": {"enabled": True}},
        ray={"model_actors": 1, "model_batch_size": 2},
    )
    manifest = run_build(cfg, tmp / "out", show_progress=False)
    return manifest, read_ledger(tmp / "out").to_pandas()


def test_crashing_model_batch_fails_only_its_batch(built):
    manifest, ledger = built
    assert len(ledger) == len(PHOTOS) and ledger["key"].is_unique
    by_path = {os.path.basename(u): row for u, row in zip(ledger["source"], ledger.itertuples())}
    # files arrive in name order, two per model batch: motorcycle_left shares rocket's batch
    for name in ("motorcycle_left.png", "rocket.jpg"):
        assert (by_path[name].status, by_path[name].reason) == ("failed", "filter_error")
        assert "explode" in by_path[name].detail and "640 px" in by_path[name].detail
    others = [by_path[n] for n in PHOTOS[:4]]
    assert all(r.status == "kept" for r in others)
    assert manifest["counts"]["status"] == {"kept": 4, "rejected": 0, "failed": 2}


def test_model_steps_ran_in_the_model_actor(built, tmp_path):
    import webdataset as wds

    manifest, ledger = built
    shard = ledger[ledger["status"] == "kept"]["shard"].iloc[0]
    out = manifest["output"]
    samples = list(wds.WebDataset(f"{out}/{shard}", shardshuffle=False).decode())
    pids = {s["json"]["annotations"]["probe"]["pid"] for s in samples}
    assert len(samples) == 4 and len(pids) == 1  # one model actor ran them all
    assert pids.isdisjoint({os.getpid()})
    assert all(s["json"]["scores"]["watermark_prob"] >= 0 for s in samples)  # a real model scored in the pool
    # watermark runs before explode: the failed batch keeps the score it got before the crash
    assert ledger["watermark_prob"].notna().sum() == len(PHOTOS)


def test_manifest_has_per_step_busy_idle_and_pool_shape(built):
    manifest, _ = built
    steps = manifest["steps"]
    assert {"load", "resolution", "watermark", "explode", "probe", "write"} <= set(steps)
    assert steps["watermark"]["pool"] == "model" and steps["resolution"]["pool"] == "cpu"
    assert steps["watermark"]["images"] == len(PHOTOS) and steps["probe"]["images"] == 4
    assert steps["watermark"]["busy_s"] > 0 and steps["watermark"]["images_per_s"] > 0
    assert all(v["idle_s"] >= 0 for v in steps.values())
    assert manifest["pool"]["model_actors"] == 1 and manifest["pool"]["cpu_workers"] >= 1
