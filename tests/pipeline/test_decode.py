"""A corrupt image is a recorded decode_error in every process, including one where
ultralytics (the detector) has been imported: it patches PIL's Image.open to retry
unknown files with a HEIF plugin that is not installed, raising ModuleNotFoundError.

An image whose header size the resolution filter rejects is never decoded, whatever
the source: it ends as `resolution` (same scores as when decoded), not `decode_error`."""

from __future__ import annotations

import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from demo.loopback_server import LoopbackServer
from filter_dev import hostile
from pipeline.decode import DecodeError, prepare_image
from pipeline.sample import Sample
from pipeline.sources import plan_units
from pipeline.step_chain import build_chain
from pipeline.units import run_unit
from tests.pipeline.conftest import workflow, write_jsonl


@pytest.mark.parametrize("name", ["corrupt.jpg", "page.jpg", "empty.jpg"])
def test_corrupt_bytes_fail_as_decode_error_after_ultralytics_import(name):
    import ultralytics.utils.patches  # noqa: F401  what `import ultralytics` does to PIL

    payloads = hostile.hostile_payloads()
    if name not in payloads:
        pytest.fail(f"hostile payload {name} missing: {sorted(payloads)}")
    with pytest.raises(DecodeError) as err:
        prepare_image(payloads[name][1], 256, 90, 10**8)
    assert err.value.reason == "decode_error"


# --- the resolution filter decides from the header, before any pixel is decoded ---

def _png(width: int, height: int, corrupt: bool) -> bytes:
    """A PNG of that size; `corrupt`: its header is intact, its pixel data is garbage."""
    rng = np.random.default_rng(width * height)
    ok, buf = cv2.imencode(".png", rng.integers(0, 255, (height, width, 3), np.uint8))
    data = buf.tobytes()
    return data[:60] + b"\0" * 64 if corrupt else data  # 60 bytes: signature, IHDR and a little more


HEADER_ONLY_FILES = {  # name -> (bytes, size); the resolution filter below rejects the first three by size
    "tiny_corrupt.png": (_png(20, 20, corrupt=True), (20, 20)),
    "wide_corrupt.png": (_png(800, 100, corrupt=True), (800, 100)),
    "tiny.png": (_png(20, 20, corrupt=False), (20, 20)),
    "big_corrupt.png": (_png(300, 300, corrupt=True), (300, 300)),
}
RESOLUTION = {"min_side": 64, "max_aspect_ratio": 3.0}


def _files(tmp: Path) -> Path:
    """A folder holding HEADER_ONLY_FILES and one real photo."""
    folder = tmp / "files"
    folder.mkdir()
    for name, (data, _) in HEADER_ONLY_FILES.items():
        (folder / name).write_bytes(data)
    (folder / "astronaut.png").write_bytes(astronaut_path().read_bytes())
    return folder


def _source(kind: str, folder: Path, server: LoopbackServer | None) -> dict:
    """The same files as a folder, a URL list or a WebDataset shard."""
    files = sorted(folder.iterdir())
    if kind == "folder":
        return {"type": "folder", "path": str(folder)}
    if kind == "url_list":
        urls = write_jsonl(folder.parent / "urls.jsonl", [{"url": server.url(f.name)} for f in files])
        return {"type": "url_list", "path": str(urls)}
    tar = folder.parent / "in.tar"
    with tarfile.open(tar, "w") as t:
        for f in files:
            t.add(f, arcname=f.name)
    return {"type": "webdataset", "path": str(tar)}


def astronaut_path() -> Path:
    from filter_dev.photos import skimage_photos

    return next(p for p in skimage_photos() if p.name == "astronaut.png")


def _run(source: dict, resolution: dict = RESOLUTION, **overrides) -> list[Sample]:
    cfg = workflow([source], filters={"resolution": resolution, "blur": {"threshold": 0}}, **overrides)
    (unit,) = plan_units(cfg)
    samples, _ = run_unit(unit, cfg, build_chain(cfg))
    return samples


def _by_name(samples: list[Sample]) -> dict[str, Sample]:
    """File name -> sample (a shard's samples are named by their key)."""
    where = [s.source.get("key") or s.source.get("url") or s.source.get("path") for s in samples]
    return {Path(w).name.removesuffix(".png") + ".png": s for w, s in zip(where, samples)}


@pytest.mark.parametrize("kind", ["folder", "url_list", "webdataset"])
def test_a_size_the_resolution_filter_rejects_is_never_decoded(kind, tmp_path):
    folder = _files(tmp_path)
    with LoopbackServer(folder) as server:
        source = _source(kind, folder, server)
        gated = _by_name(_run(source))
        decoded = _by_name(_run(source, score_all=True))  # score_all decodes every image, for the other filters
    assert len(gated) == len(decoded) == len(HEADER_ONLY_FILES) + 1
    assert gated["astronaut.png"].status == "kept"
    # corrupt pixel data after a valid header: rejected by size, so never decoded
    for name, detail in [("tiny_corrupt.png", "min_side"), ("wide_corrupt.png", "max_aspect_ratio"), ("tiny.png", "min_side")]:
        s = gated[name]
        assert (s.status, s.reason, s.detail) == ("rejected", "resolution", detail), (name, s.reason, s.detail)
        w, h = HEADER_ONLY_FILES[name][1]
        assert (s.image.original_width, s.image.original_height) == (w, h) and not s.image.decoded
        assert s.scores == {"resolution_min_side": min(w, h), "resolution_pixels": w * h,
                            "resolution_aspect_ratio": max(w, h) / min(w, h)}
    # a size it keeps is decoded, so the same corruption is a decode error
    assert (gated["big_corrupt.png"].status, gated["big_corrupt.png"].reason) == ("failed", "decode_error")
    # decoded anyway, the corrupt ones fail to decode; the valid one gets the same verdict and scores
    assert {decoded[n].reason for n in ("tiny_corrupt.png", "wide_corrupt.png")} == {"decode_error"}
    same = decoded["tiny.png"]
    assert same.image.decoded and (same.status, same.reason, same.detail) == ("rejected", "resolution", "min_side")
    assert {k: v for k, v in same.scores.items() if k.startswith("resolution_")} == gated["tiny.png"].scores


def test_video_frames_of_a_rejected_size_are_not_converted(tmp_path):
    from demo.inputs import make_video

    video = tmp_path / "clip.mp4"
    make_video(video, [astronaut_path()], seconds_per_photo=1.0, fps=4, size=(320, 240))
    source = {"type": "video", "path": str(video), "every_seconds": 0.5}
    small = _run(source, resolution={"min_side": 256})
    assert len(small) == 2 and {(s.status, s.reason, s.detail) for s in small} == {("rejected", "resolution", "min_side")}
    assert all(not s.image.decoded and s.scores["resolution_min_side"] == 240 for s in small)
    kept = _run(source)
    assert len(kept) == 2 and all(s.status == "kept" and s.image.decoded for s in kept)
