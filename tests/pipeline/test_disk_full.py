"""The output disk fills up mid-build (a real 1 MB tmpfs mounted in the test's own
mount namespace): the build stops with an error naming the folder, no partial shard
is taken for done, and `--resume` once space is freed completes it with the same keys
as a build that never ran out of space."""

from __future__ import annotations

import subprocess

import pytest
import webdataset as wds

from pipeline.build_dataset import main as build_main
from pipeline.ledger import read_ledger
from tests.pipeline.conftest import write_jsonl

N_PHOTO_ROWS = 24


def _mount_tmpfs(path, size: str) -> None:
    path.mkdir(exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, (
        f"mounting a tmpfs failed ({proc.stderr.strip()}): run the tests through `make test` "
        "(scripts/netns_run.sh gives them a private mount namespace as root)")


def _keys(out):
    return sorted(s["__key__"] for tar in sorted((out / "shards").glob("*.tar"))
                  for s in wds.WebDataset(str(tar), shardshuffle=False))


@pytest.fixture
def disk(tmp_path):
    d = tmp_path / "disk"
    _mount_tmpfs(d, "400k")
    yield d
    subprocess.run(["umount", "-l", str(d)], check=False)


def _workflow(tmp_path, served):
    import yaml

    server, photos = served
    rows = [{"url": server.url(f"photos/{photos[i % len(photos)]}"), "caption": f"item {i}"} for i in range(N_PHOTO_ROWS)]
    urls = write_jsonl(tmp_path / "urls.jsonl", rows)
    wf = tmp_path / "wf.yaml"
    wf.write_text(yaml.safe_dump({"name": "disk-full", "sources": [{"type": "url_list", "path": str(urls)}],
                                  # the test server is on 127.0.0.1, which a build refuses by default
                                  "images": {"image_size": 256, "encode_quality": 95}, "download": {"timeout": 5,
                                               "allow_private_networks": True},
                                  "output": {"shard_size": 2}, "filters": {"resolution": {"min_side": 64}},
                                  "ray": {"num_workers": 1},
                                  "dedup": {"enabled": False}}))  # the inputs reuse photos
    return wf


def test_disk_full_stops_cleanly_and_resume_completes(served, ray_session, disk, tmp_path, capsys):
    wf = _workflow(tmp_path, served)
    out = disk / "out"
    rc = build_main(["--config", str(wf), "--output", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert f"output folder {out}" in err and "No space left on device" in err and "--resume" in err
    done = sorted(p.stem for p in (out / "ledger").glob("*.parquet"))
    assert 0 < len(done) < N_PHOTO_ROWS // 2, "the disk must fill mid-build"
    assert not list(out.glob("*/*.tmp")), "partial files are removed, never taken for done"
    assert {p.stem for p in (out / "shards").glob("*.tar")} <= set(done)
    assert not (out / "manifest.json").exists()

    subprocess.run(["mount", "-o", "remount,size=50m", str(disk)], check=True)  # space freed
    assert build_main(["--config", str(wf), "--output", str(out), "--no-progress", "--resume"]) == 0
    assert build_main(["--config", str(wf), "--output", str(tmp_path / "clean"), "--no-progress"]) == 0
    ledger = read_ledger(out).to_pandas()
    assert len(ledger) == N_PHOTO_ROWS and (ledger["status"] == "kept").all()
    assert _keys(out) == _keys(tmp_path / "clean")
