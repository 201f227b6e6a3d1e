"""Video sources: frames every N seconds and at keyframes, keyed by time; a truncated
or unreadable video ends as a failed row, keeping the frames read before the break."""

from __future__ import annotations

from pathlib import Path

import pytest
import webdataset as wds

from demo.inputs import make_video
from filter_dev.photos import skimage_photos
from pipeline.keys import frame_key
from pipeline.ledger import read_ledger
from pipeline.sources import plan_units
from pipeline.step_chain import build_chain
from pipeline.units import process_unit
from tests.pipeline.conftest import workflow

PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png"]


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    photos = [p for p in skimage_photos() if p.name in PHOTOS]
    duration = make_video(path, photos, seconds_per_photo=2.0, fps=10, gop=10)
    assert duration == pytest.approx(6.0)
    return path


def _run(tmp_path, source: dict):
    cfg = workflow([source], filters={"blur": {"enabled": False}})
    (unit,) = plan_units(cfg)
    out = tmp_path / "out"
    (out / "shards").mkdir(parents=True)
    (out / "ledger").mkdir()
    process_unit(unit, cfg, build_chain(cfg), out)
    return read_ledger(out).to_pandas(), out


def test_frames_every_n_seconds(tmp_path, video):
    ledger, out = _run(tmp_path, {"type": "video", "path": str(video), "every_seconds": 1.5})
    assert ledger["video_time"].tolist() == pytest.approx([0.0, 1.5, 3.0, 4.5])
    assert (ledger["status"] == "kept").all()
    assert ledger["key"].tolist() == [frame_key(str(video), t) for t in (0.0, 1.5, 3.0, 4.5)]
    samples = list(wds.WebDataset(str(out / "shards" / "00000.tar"), shardshuffle=False).decode("rgb8"))
    assert [s["json"]["source"]["video_time"] for s in samples] == pytest.approx([0.0, 1.5, 3.0, 4.5])
    assert samples[0]["jpg"].shape == (192, 256, 3)  # 320x240 frames, stored at max side 256


def test_keyframes_only(tmp_path, video):
    ledger, _ = _run(tmp_path, {"type": "video", "path": str(video), "every_seconds": None, "keyframes": True})
    assert ledger["video_time"].tolist() == pytest.approx([0, 1, 2, 3, 4, 5])  # gop 10 at 10 fps


def test_truncated_video_keeps_frames_and_records_failure(tmp_path, video):
    data = video.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    ledger, _ = _run(tmp_path, {"type": "video", "path": str(cut), "every_seconds": 0.5})
    failed = ledger[ledger["status"] == "failed"]
    assert len(failed) == 1 and failed.iloc[0]["reason"] == "video_truncated", failed.to_dict("records")
    assert failed.iloc[0]["key"].endswith("_error")
    kept = ledger[ledger["status"] == "kept"]
    assert 1 <= len(kept) < 12 and kept["video_time"].max() < 6.0


def test_video_over_http(tmp_path, video):
    from demo.loopback_server import LoopbackServer

    with LoopbackServer(video.parent) as server:
        ledger, _ = _run(tmp_path, {"type": "video", "path": server.url(video.name), "every_seconds": 2.0})
        assert ledger["video_time"].tolist() == pytest.approx([0.0, 2.0, 4.0])
        assert (ledger["status"] == "kept").all() and ledger["source"].iloc[0].startswith("http://127.0.0.1")
        ledger, _ = _run(tmp_path / "b", {"type": "video", "path": server.url("missing.mp4"), "every_seconds": 2.0})
        assert ledger[["status", "reason"]].values.tolist() == [["failed", "http_404"]]  # fetched by pipeline.fetch


def test_garbage_and_missing_video_fail_cleanly(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x01not a video" * 100)
    ledger, _ = _run(tmp_path, {"type": "video", "path": str(junk), "every_seconds": 1.0})
    assert ledger[["status", "reason"]].values.tolist() == [["failed", "video_open_error"]]
    ledger, _ = _run(tmp_path / "b", {"type": "video", "path": str(tmp_path / "nope.mp4"), "every_seconds": 1.0})
    assert ledger[["status", "reason"]].values.tolist() == [["failed", "missing_file"]]
