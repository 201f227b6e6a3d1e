"""Existing WebDataset shards as a source (re-captioning a dataset you have): every
sample is a ledger row; a sample without an image, an image that does not decode and
a truncated shard are failed rows; `--input` takes a brace pattern."""

from __future__ import annotations

import json

import cv2
import pytest
import webdataset as wds

from pipeline.build_dataset import main as build_main
from pipeline.ledger import read_ledger
from tests.pipeline.hostile import photo

GOOD = ["astronaut.png", "coffee.png", "chelsea.png"]


def _jpeg(name: str) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(photo(name), cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def _write_shard(path, samples):
    with open(path, "wb") as fh:
        sink = wds.TarWriter(fh)
        for s in samples:
            sink.write(s)
        sink.close()


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    d = tmp_path_factory.mktemp("wds")
    first = [{"__key__": f"{i:09d}", "jpg": _jpeg(n), "txt": f"alt text {n}",
              "json": json.dumps({"url": f"http://example.com/{n}"}).encode()} for i, n in enumerate(GOOD)]
    first.append({"__key__": "000000003", "txt": "caption with no image"})
    first.append({"__key__": "000000004", "jpg": b"\xff\xd8\xff\xe0 not really a jpeg", "txt": "corrupt"})
    _write_shard(d / "00000.tar", first)
    # the second shard is cut in the middle of its second image: a truncated download
    _write_shard(d / "full.tar", [{"__key__": "000000000", "jpg": _jpeg("rocket.jpg"), "txt": "rocket"},
                                  {"__key__": "000000001", "jpg": _jpeg("astronaut.png"), "txt": "astronaut"}])
    data = (d / "full.tar").read_bytes()
    (d / "00001.tar").write_bytes(data[: len(data) - 30_000])
    (d / "full.tar").unlink()
    return d


def test_shards_in_new_shards_out_with_a_row_per_sample(shards, ray_session, tmp_path, capsys):
    import yaml

    wf = tmp_path / "wf.yaml"
    wf.write_text(yaml.safe_dump({"name": "recaption", "sources": [{"type": "url_list", "path": "unused.jsonl"}],
                                  "images": {"image_size": 256}, "filters": {"resolution": {"min_side": 64}}}))
    out = tmp_path / "out"
    rc = build_main(["--config", str(wf), "--input", f"{shards}/{{00000..00001}}.tar", "--output", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    ledger = read_ledger(out).to_pandas()
    assert ledger["key"].is_unique
    rows = {(r.status, r.reason) for r in ledger.itertuples()}
    assert ("failed", "missing_image") in rows and ("failed", "decode_error") in rows
    assert ("failed", "shard_truncated") in rows
    kept = ledger[ledger["status"] == "kept"]
    assert len(kept) == len(GOOD) + 1  # the truncated shard's first sample survives
    assert len(ledger) == 5 + 1 + 1  # five samples, the readable one of the cut shard, its error row

    samples = list(wds.WebDataset(f"{out}/shards/{{00000..00001}}.tar", shardshuffle=False).decode("rgb8"))
    by_key = {s["json"]["source"]["key"]: s for s in samples if s["json"]["source"]["path"].endswith("00000.tar")}
    assert by_key["000000001"]["txt"] == "alt text coffee.png"
    assert by_key["000000001"]["json"]["source"]["url"] == "http://example.com/coffee.png"
    assert max(by_key["000000001"]["jpg"].shape[:2]) == 256  # stored at the workflow's size


def test_missing_shards_fail_before_any_work(shards, tmp_path, capsys):
    wf = tmp_path / "wf.yaml"
    wf.write_text(f"name: x\nsources: [{{type: webdataset, path: '{shards}/{{00000..00009}}.tar'}}]\n")
    rc = build_main(["--config", str(wf), "--output", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "8 of 10 shard files from" in err and "do not exist" in err and "00002.tar" in err
