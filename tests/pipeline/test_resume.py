"""kill -9 at an arbitrary moment, then --resume: the same samples as an
uninterrupted run, none duplicated, none missing, no partial file taken for whole."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
import webdataset as wds
import yaml

from filter_dev import hostile
from pipeline.config import load_workflow
from pipeline.ledger import read_ledger
from pipeline.ray_memory import kill_ray_leftovers
from pipeline.report.cli import main as report_main
from pipeline.report.images import near_threshold
from pipeline.report.load import load_build
from pipeline.report.rules import build_rules
from pipeline.runner import OutputError, run_build
from tests.pipeline.conftest import photo_folder, workflow, write_jsonl

ROOT = Path(__file__).resolve().parents[2]
N_URLS, SHARD = 48, 2


def _workflow_file(tmp: Path, urls: Path) -> Path:
    wf = {
        "name": "resume-test",
        "sources": [{"type": "url_list", "path": str(urls)}],
        # the test server listens on 127.0.0.1, which a build refuses by default
        "images": {"image_size": 128}, "download": {"timeout": 5, "thread_count": 4, "allow_private_networks": True},
        "output": {"shard_size": SHARD},
        "filters": {"resolution": {"min_side": 64}},
        "annotate": {"probe": {"enabled": True}},  # a model step: the model pool runs beside the workers
        "ray": {"model_actors": 1, "model_batch_size": 2},
    }
    path = tmp / "wf.yaml"
    path.write_text(yaml.safe_dump(wf))
    return path


def _kept_keys(out: Path) -> list[str]:
    keys = []
    for tar in sorted((out / "shards").glob("*.tar")):
        keys += [s["__key__"] for s in wds.WebDataset(str(tar), shardshuffle=False)]
    return keys


@pytest.fixture(scope="module")
def urls(served, tmp_path_factory):
    server, photos = served
    tmp = tmp_path_factory.mktemp("resume")
    rows = [{"url": server.url(f"delay/{photos[i % len(photos)]}"), "caption": f"item {i}"} for i in range(N_URLS)]
    return write_jsonl(tmp / "urls.jsonl", rows)


def test_kill_minus_9_then_resume_matches_uninterrupted_run(urls, ray_session, tmp_path):
    wf = _workflow_file(tmp_path, urls)
    out = tmp_path / "killed"
    ray_tmp = tempfile.mkdtemp(prefix="rk-", dir="/tmp")
    env = {**os.environ, "RAY_TMPDIR": ray_tmp}
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, str(ROOT / "pipeline" / "build_dataset.py"), "--config", str(wf), "--output", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(list((out / "ledger").glob("*.parquet"))) < 4:
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        kill_ray_leftovers(ray_tmp)
    done_before = len(list((out / "ledger").glob("*.parquet")))
    assert 4 <= done_before < N_URLS // SHARD, "the kill must land mid-run"
    assert not (out / "manifest.json").exists()
    # a partial file as a kill mid-write leaves it; resume must not take it for a shard
    (out / "shards" / "00023.tar.999.tmp").write_bytes(b"partial")

    cfg = load_workflow(wf)
    manifest = run_build(cfg, out, resume=True, show_progress=False)
    assert manifest["units"]["done_before_this_run"] == done_before
    assert not list(out.glob("*/*.tmp"))

    reference = run_build(cfg, tmp_path / "clean", show_progress=False)
    ledger = read_ledger(out).to_pandas()
    clean = read_ledger(tmp_path / "clean").to_pandas()
    assert len(ledger) == N_URLS and ledger["key"].is_unique
    assert sorted(ledger["key"]) == sorted(clean["key"])
    kept = _kept_keys(out)
    assert len(kept) == len(set(kept)), "a sample was written twice"
    assert sorted(kept) == sorted(_kept_keys(tmp_path / "clean"))
    assert sorted(kept) == sorted(ledger[ledger["status"] == "kept"]["key"])
    assert manifest["counts"] == reference["counts"]


def test_resume_refuses_a_different_config(ray_session, tmp_path):
    wf = _workflow_file(tmp_path, write_jsonl(tmp_path / "urls.jsonl", [{"url": "ftp://127.0.0.1/x.jpg"}]))
    cfg = load_workflow(wf)
    run_build(cfg, tmp_path / "out", show_progress=False)
    cfg.filters.blur.threshold += 1
    with pytest.raises(OutputError, match="different workflow or inputs.*filters"):
        run_build(cfg, tmp_path / "out", resume=True, show_progress=False)


def _as_written_before_the_rename(out: Path) -> None:
    """Rewrite every finished unit the way builds did before the ledger column `url`
    (which also held paths) became `source`: in the ledger and in the rejects' json."""
    for f in (out / "ledger").glob("*.parquet"):
        t = pq.read_table(f)
        pq.write_table(t.rename_columns(["url" if c == "source" else c for c in t.column_names]), f)
    for tar_path in (out / "rejects").glob("*.tar"):
        with tarfile.open(tar_path) as tar:
            members = [(m, tar.extractfile(m).read()) for m in tar if m.isfile()]
        with tarfile.open(tar_path, "w") as tar:
            for m, data in members:
                if m.name.endswith(".json"):
                    meta = json.loads(data)
                    meta["url"] = meta.pop("source")
                    data = json.dumps(meta).encode()
                m.size = len(data)
                tar.addfile(m, io.BytesIO(data))


def test_resume_and_filter_report_read_an_output_folder_written_before_the_rename(ray_session, tmp_path, capsys):
    folder = photo_folder(tmp_path / "photos", hostile.PHOTO_NAMES)
    for i in range(3):  # too small for the resolution filter: rejected rows with thumbnails
        cv2.imwrite(str(folder / f"small{i}.png"), np.full((40 + i, 50, 3), 60 * i, np.uint8))
    # score_all: rejected images are decoded too, so the resolution rejects have thumbnails
    cfg = workflow([{"type": "folder", "path": str(folder)}], output={"shard_size": 3}, score_all=True)
    out = tmp_path / "out"
    reference = run_build(cfg, out, show_progress=False)
    _as_written_before_the_rename(out)
    assert "url" in pq.read_schema(next((out / "ledger").glob("*.parquet"))).names
    last = sorted((out / "ledger").glob("*.parquet"))[-1]
    last.unlink()  # a unit the old run did not finish: --resume redoes it with today's writer
    (out / "manifest.json").unlink()

    manifest = run_build(cfg, out, resume=True, show_progress=False)
    assert manifest["units"]["processed_now"] == 1 and manifest["counts"] == reference["counts"]
    ledger = read_ledger(out).to_pandas()
    assert "url" not in ledger.columns and ledger["source"].notna().all()
    assert sorted(Path(s).name for s in ledger["source"]) == sorted(p.name for p in folder.iterdir())
    report = load_build(out)
    assert report.finished and report.ledger.set_index("key")["source"].to_dict() == ledger.set_index("key")["source"].to_dict()
    grids = {g["filter"]: g for g in near_threshold(out, report.ledger, build_rules(report.config))}
    rejected = grids["resolution"]["rejected"]
    assert len(rejected) == 3 and all(Path(im["source"]).name.startswith("small") for im in rejected)
    assert report_main([str(out)]) == 0
    assert f"{len(ledger)} inputs" in capsys.readouterr().out
