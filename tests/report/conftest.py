"""One real build for the report tests, made once per session: img2dataset downloads
real photos (scikit-image's, some blurred or shrunk so every filter rejects some near
its threshold) and failing URLs from a loopback server, on Ray, with real filters
(resolution, blur and the watermark model), score_all on."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from demo.loopback_server import LoopbackServer
from filter_dev.hostile import closed_port
from filter_dev.photos import load_rgb, skimage_photos
from pipeline.runner import run_build
from tests.pipeline.conftest import workflow, write_jsonl

FILTERS = {"resolution": {"min_side": 100}, "blur": {"threshold": 0.35}, "watermark": {"enabled": True, "threshold": 0.5}}
BLUR_SIGMAS = (0.8, 1.2, 1.8, 2.5, 6.0)  # around the blur threshold, from just sharp enough to very blurred


def _server_error(req):
    req.send_response(500)
    req.send_header("Content-Length", "0")
    req.end_headers()


def _slow(req):
    import time

    time.sleep(4.0)  # the test workflow's timeout is 1.5 s
    req.send_response(200)
    req.send_header("Content-Length", "0")
    req.end_headers()


@pytest.fixture(scope="session")
def photo_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("report-www")
    names = []
    for p in skimage_photos():
        shutil.copy(p, root / p.name)
        names.append(p.name)
    for name in ("astronaut.png", "coffee.png", "rocket.jpg", "chelsea.png", "motorcycle_left.png"):
        rgb = load_rgb(root / name)
        for sigma in BLUR_SIGMAS:
            out = f"{Path(name).stem}_blur{sigma}.jpg"
            cv2.imwrite(str(root / out), cv2.cvtColor(cv2.GaussianBlur(rgb, (0, 0), sigma), cv2.COLOR_RGB2BGR))
            names.append(out)
    for name, size in (("coffee.png", (90, 60)), ("chelsea.png", (160, 120)), ("rocket.jpg", (180, 150))):
        out = f"{Path(name).stem}_small{size[0]}.jpg"
        cv2.imwrite(str(root / out), cv2.cvtColor(cv2.resize(load_rgb(root / name), size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR))
        names.append(out)
    with LoopbackServer(root, {"/error500.jpg": _server_error, "/slow.jpg": _slow}) as server:
        yield server, names


def url_rows(server, names) -> list[dict]:
    rows = [{"url": server.url(n), "caption": f"a photo of {Path(n).stem.replace('_', ' ')}", "license": "BSD-3", "rank": i}
            for i, n in enumerate(names)]
    rows += [
        {"url": server.url("missing_a.jpg"), "caption": "gone", "license": "CC0", "rank": 900},
        {"url": server.url("missing_b.jpg"), "caption": "gone too", "license": "CC0", "rank": 901},
        {"url": server.url("error500.jpg"), "caption": "server error", "license": "CC-BY", "rank": 902},
        {"url": server.url("slow.jpg"), "caption": "too slow", "license": "CC-BY", "rank": 903},
        {"url": f"http://127.0.0.1:{closed_port()}/refused.jpg", "caption": "refused", "license": "CC0", "rank": 904},
    ]
    return rows


def build(sources_rows: list[dict], out: Path, filters=None, score_all=True) -> dict:
    urls = write_jsonl(out.with_suffix(".jsonl"), sources_rows)
    cfg = workflow([{"type": "url_list", "path": str(urls)}], filters=filters or FILTERS, score_all=score_all,
                   output={"shard_size": 8}, dedup={"enabled": True})  # as a default build
    return run_build(cfg, out, show_progress=False)


@pytest.fixture(scope="session")
def report_build(photo_server, ray_session, tmp_path_factory):
    """(output folder, manifest, input rows) of the session's real build."""
    server, names = photo_server
    tmp = tmp_path_factory.mktemp("report-build")
    rows = url_rows(server, names)
    manifest = build(rows, tmp / "out")
    return tmp / "out", manifest, rows


@pytest.fixture
def build_copy(report_build, tmp_path):
    """A private copy of the session build, for tests that damage or edit it."""
    out, _, _ = report_build
    dst = tmp_path / "copy"
    shutil.copytree(out, dst)
    return dst


def filter_report(*args, check_rc: int | None = 0, subprocess_run: bool = False) -> subprocess.CompletedProcess:
    """Run `filter-report ARGS`: in this process (its main(), fast), or as the installed
    command a user runs (subprocess_run=True)."""
    args = [str(a) for a in args]
    if subprocess_run:
        exe = Path(sys.executable).parent / "filter-report"
        proc = subprocess.run([str(exe), *args], check=False, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "COLUMNS": "200"})
    else:
        import contextlib
        import io

        from pipeline.report import main

        out, err = io.StringIO(), io.StringIO()
        old = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = "200"
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = main(args)
        finally:
            if old is None:
                os.environ.pop("COLUMNS")
            else:
                os.environ["COLUMNS"] = old
        proc = subprocess.CompletedProcess(args, rc, out.getvalue(), err.getvalue())
    if check_rc is not None:
        assert proc.returncode == check_rc, (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


def fullest_shards(out: Path) -> list[Path]:
    """The build's shards, most samples first (the duplicate pass leaves some nearly empty)."""
    import tarfile

    def members(p: Path) -> int:
        with tarfile.open(p) as tar:
            return len(tar.getmembers())

    return sorted((out / "shards").glob("*.tar"), key=lambda p: (-members(p), p.name))


def rewrite_tar(path: Path, edit) -> None:
    """Rewrite a shard: `edit(samples)` gets and returns [(key, {ext: bytes})] in order."""
    import tarfile

    samples: list[tuple[str, dict]] = []
    with tarfile.open(path) as tar:
        for m in tar:
            key, _, ext = m.name.partition(".")
            if samples and samples[-1][0] == key:
                samples[-1][1][ext] = tar.extractfile(m).read()
            else:
                samples.append((key, {ext: tar.extractfile(m).read()}))
    samples = edit(samples)
    import webdataset as wds

    with open(path, "wb") as fh:
        sink = wds.TarWriter(fh)
        for key, parts in samples:
            sink.write({"__key__": key, **parts})
        sink.close()


ANNOTATION_MODELS = {"objects": "yolo11n.pt", "caption": "florence-community/Florence-2-base", "ocr": "easyocr-en"}


def annotate_copy(out: Path) -> dict[str, dict]:
    """Give a copy of the build what the annotators will add (DESIGN.md shapes): each kept
    sample's json.annotations and fused txt, the ledger's caption_words/object_count/
    ocr_words, the manifest's per-step timings. Returns key -> annotations written."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    written: dict[str, dict] = {}

    def edit(samples):
        out_samples = []
        for i, (key, parts) in enumerate(samples):
            meta = json.loads(parts["json"])
            alt = meta["source"].get("caption", "")
            ann = {
                "objects": {"model": ANNOTATION_MODELS["objects"],
                            "items": [{"label": "cat" if i % 2 else "person", "confidence": 0.91, "box": [0.1, 0.2, 0.6, 0.9]}]},
                "caption": {"model": ANNOTATION_MODELS["caption"], "text": f"model caption number {i}"},
                "ocr": {"model": ANNOTATION_MODELS["ocr"], "lines": [{"text": f"SIGN{i}", "confidence": 0.93, "box": [0.0, 0.0, 0.2, 0.1]}]},
            }
            fused = f"{alt}. model caption number {i}. objects: {ann['objects']['items'][0]['label']}. text: SIGN{i}"
            ann["fused"] = {"template": "{alt}. {caption}. objects: {objects}. text: {ocr}", "parts": ["alt", "caption", "objects", "ocr"], "text": fused}
            meta["annotations"] = ann
            written[key] = ann
            out_samples.append((key, {**parts, "txt": fused.encode(), "json": json.dumps(meta).encode()}))
        return out_samples

    rewrite_tar(out / "shards" / "00000.tar", edit)
    for f in sorted((out / "ledger").glob("*.parquet")):
        t = pq.read_table(f)
        keys, status = t.column("key").to_pylist(), t.column("status").to_pylist()
        def col(fn, keys=keys, status=status):
            return pa.array([fn(k) if st == "kept" and k in written else None for k, st in zip(keys, status)], pa.int32())
        for name, fn in (("caption_words", lambda k: len(written[k]["fused"]["text"].split())),
                         ("object_count", lambda k: len(written[k]["objects"]["items"])), ("ocr_words", lambda k: 1)):
            if name in t.column_names:  # the writer has the columns (null without annotators)
                t = t.set_column(t.column_names.index(name), name, col(fn))
            else:
                t = t.append_column(name, col(fn))
        pq.write_table(t, f)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["steps"] = {name: {"busy_s": 2.0 + i, "idle_s": 0.5, "images": 50 - i, "images_per_s": (50 - i) / (2.0 + i)}
                          for i, name in enumerate(["download", "resolution", "blur", "watermark", "objects", "caption", "ocr", "write"])}
    (out / "manifest.json").write_text(json.dumps(manifest))
    return written
