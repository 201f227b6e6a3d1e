"""The model pool on Ray: model steps run in their own actor (not in the CPU
workers), a sample that makes a model step raise or kills the actor fails alone
(the batch is retried in halves), a step that fails on everything stops the build
with nothing half-written, per-step figures reach the manifest, and a real model
filter scores in the pool."""

from __future__ import annotations

import os
import re

import pytest

from pipeline.ledger import read_ledger
from pipeline.runner import run_build
from pipeline.step_guard import BrokenStepError
from tests.pipeline.conftest import photo_folder, workflow

# 16 photos, one model batch; rocket.jpg is the only one 640 px wide: the poison
PHOTOS = ["astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "chessboard_RGB.png",
          "clock_motion.png", "coffee.png", "coins.png", "color.png", "grass.png", "hubble_deep_field.jpg",
          "ihc.png", "motorcycle_left.png", "phantom.png", "rocket.jpg"]
POISON = "rocket.jpg"


@pytest.fixture(scope="module")
def built(ray_session, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pool")
    folder = photo_folder(tmp / "images", PHOTOS)
    cfg = workflow(
        [{"type": "folder", "path": str(folder)}],
        output={"shard_size": 100},
        filters={"blur": {"enabled": False}, "watermark": {"enabled": True, "device": "cpu"},
                 "explode": {"enabled": True, "on_original_width": 640},
                 "oom": {"enabled": True, "max_batch": 4}},  # out of memory above 4 images
        annotate={"probe": {"enabled": True}},
        ray={"model_actors": 1, "model_batch_size": 16}
    )
    manifest = run_build(cfg, tmp / "out", show_progress=False)
    return manifest, read_ledger(tmp / "out").to_pandas()


def _by_name(ledger) -> dict:
    return {os.path.basename(u): row for u, row in zip(ledger["source"], ledger.itertuples())}


def test_a_sample_that_makes_a_model_step_raise_fails_alone(built):
    manifest, ledger = built
    assert len(ledger) == len(PHOTOS) and ledger["key"].is_unique
    rows = _by_name(ledger)
    assert (rows[POISON].status, rows[POISON].reason) == ("failed", "filter_error")
    assert rows[POISON].detail == "explode: RuntimeError: exploded on an image 640 px wide"
    others = [rows[n] for n in PHOTOS if n != POISON]
    assert all(r.status != "failed" for r in others)  # it shared the batch of 16 with all of them
    assert manifest["counts"]["status"]["failed"] == 1
    assert manifest["counts"]["status"]["kept"] == sum(r.status == "kept" for r in others) >= 12


def test_model_steps_ran_in_the_model_actor(built, tmp_path):
    import webdataset as wds

    manifest, ledger = built
    shard = ledger[ledger["status"] == "kept"]["shard"].iloc[0]
    out = manifest["output"]
    samples = list(wds.WebDataset(f"{out}/{shard}", shardshuffle=False).decode())
    pids = {s["json"]["annotations"]["probe"]["pid"] for s in samples}
    assert len(samples) == (ledger["status"] == "kept").sum() and len(pids) == 1  # one model actor ran them all
    assert pids.isdisjoint({os.getpid()})
    assert all(s["json"]["scores"]["watermark_prob"] >= 0 for s in samples)  # a real model scored in the pool
    # watermark runs before explode: the poison keeps the score it got before the crash
    assert ledger["watermark_prob"].notna().sum() == len(PHOTOS)


def test_manifest_has_per_step_busy_idle_and_pool_shape(built):
    manifest, _ = built
    steps = manifest["steps"]
    assert {"load", "resolution", "watermark", "explode", "probe", "write"} <= set(steps)
    assert steps["watermark"]["pool"] == "model" and steps["resolution"]["pool"] == "cpu"
    assert steps["watermark"]["images"] == steps["explode"]["images"] == len(PHOTOS)
    assert steps["probe"]["images"] == manifest["counts"]["status"]["kept"]
    assert steps["watermark"]["busy_s"] > 0 and steps["watermark"]["images_per_s"] > 0
    assert all(v["idle_s"] >= 0 for v in steps.values())
    # the 15 left after explode: 15 and 7 ran out of memory, 4 held and stays the batch size
    assert steps["oom"]["oom_batch_size"] == 4 and "oom_batch_size" not in steps["watermark"]
    assert manifest["pool"]["model_actors"] == 1 and manifest["pool"]["cpu_workers"] >= 1
    # what each model step ran on, read from its loaded models in the actor (issue 26, item 1)
    runs_on = steps["watermark"]["runs_on"]
    assert {"model": "WatermarkNet", "device": "cpu", "dtype": "float32", "provider": "torch"} in runs_on
    sessions = [e for e in runs_on if e["provider"] == "CPUExecutionProvider"]  # its text check's PP-OCR det and rec
    assert len(sessions) == 2 and all(e["threads"] == {"intra_op": 1, "inter_op": 1} for e in sessions)  # the actor's 1 CPU
    assert steps["probe"]["runs_on"] == []  # no model


def test_a_sample_that_kills_the_model_actor_fails_alone(ray_session, tmp_path):
    folder = photo_folder(tmp_path / "images", ["chelsea.png", "coffee.png"])  # one batch of 2; coffee is 600 px wide
    cfg = workflow([{"type": "folder", "path": str(folder)}], output={"shard_size": 100},
                   filters={"blur": {"enabled": False}, "kill_actor": {"enabled": True, "on_original_width": 600}},
                   annotate={"probe": {"enabled": True}}, ray={"model_actors": 1, "model_batch_size": 2})
    run_build(cfg, tmp_path / "out", show_progress=False)
    rows = _by_name(read_ledger(tmp_path / "out").to_pandas())
    assert (rows["coffee.png"].status, rows["coffee.png"].reason) == ("failed", "model_pool_error")
    assert "died twice" in rows["coffee.png"].detail
    assert rows["chelsea.png"].status == "kept"  # sent again alone, on the restarted actor


def test_a_sticky_cuda_error_restarts_the_actor(ray_session, tmp_path):
    """The first batch breaks the actor's CUDA context (every later call in that process
    would fail): the actor is replaced and the batch runs again on the fresh one. (A sample
    that breaks it every time is a sample that kills the actor: see the test above.)"""
    folder = photo_folder(tmp_path / "images", ["astronaut.png", "chelsea.png"])
    cfg = workflow([{"type": "folder", "path": str(folder)}], output={"shard_size": 100},
                   filters={"blur": {"enabled": False},
                            "sticky_cuda": {"enabled": True, "once_marker": str(tmp_path / "broke_once")}},
                   ray={"model_actors": 1, "model_batch_size": 2})
    manifest = run_build(cfg, tmp_path / "out", show_progress=False)
    ledger = read_ledger(tmp_path / "out").to_pandas()
    assert list(ledger["status"]) == ["kept", "kept"]  # swallowed per batch, both failed as filter_error
    assert manifest["pool"]["model_actor_restarts"] == 1
    (note,) = manifest["pool"]["device_errors"]
    assert re.fullmatch(r"sticky_cuda: RuntimeError: CUDA error: an illegal memory access was encountered "
                        r"\(pid \d+: the model actor was restarted\)", note)


def test_a_step_that_always_raises_stops_the_build(ray_session, tmp_path):
    folder = photo_folder(tmp_path / "images", ["astronaut.png", "chelsea.png", "coffee.png"])
    # 3 batches (the default limit) over 2 actors: counted per actor, neither would reach 3
    cfg = workflow([{"type": "folder", "path": str(folder)}], output={"shard_size": 100},
                   filters={"blur": {"enabled": False}, "broken": {"enabled": True}},
                   ray={"model_actors": 2, "num_cpus_per_model_actor": 0.5, "model_batch_size": 1})
    with pytest.raises(BrokenStepError, match="step 'broken' failed on every sample of 3 batches in a row"):
        run_build(cfg, tmp_path / "out", show_progress=False)
    out = tmp_path / "out"
    assert not list((out / "ledger").iterdir()) and not list((out / "shards").iterdir())  # the unit is not done
