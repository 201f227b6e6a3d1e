"""Existing WebDataset shards as a source (re-captioning a dataset you have): every
sample is a ledger row; a sample without an image, an image that does not decode and
a truncated shard are failed rows; `--input` takes a brace pattern."""

from __future__ import annotations

import io
import json
import os
import tarfile

import cv2
import pytest
import webdataset as wds

from filter_dev.hostile import photo
from pipeline.build_dataset import main as build_main
from pipeline.keys import source_key
from pipeline.ledger import read_ledger

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


@pytest.mark.parametrize("name", ["x.tar.gz", "X.TGZ", "x.tar.xz"])
def test_input_with_a_compressed_tar_is_a_shard(name, tmp_path, capsys):
    """--input takes compressed shards as the webdataset source takes them, not as a URL list."""
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: x\nsources: [{type: url_list, path: unused.jsonl}]\n")
    rc = build_main(["--config", str(wf), "--input", str(tmp_path / name), "--output", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "shard file" in err and name in err, err


def test_missing_shards_fail_before_any_work(shards, tmp_path, capsys):
    wf = tmp_path / "wf.yaml"
    wf.write_text(f"name: x\nsources: [{{type: webdataset, path: '{shards}/{{00000..00009}}.tar'}}]\n")
    rc = build_main(["--config", str(wf), "--output", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "8 of 10 shard files from" in err and "do not exist" in err and "00002.tar" in err


def _hostile_shard(path) -> tuple[dict[str, tuple[str, str]], list[int]]:
    """A tar built member by member: good photos beside every kind of awkward member.
    Returns {sample key: (status, reason)} expected and the offset of each header."""
    photo_a, photo_b = _jpeg("coffee.png"), _jpeg("chelsea.png")
    headers: list[int] = []
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        def add(name, data=None, **kw):
            info = tarfile.TarInfo(name)
            for k, v in kw.items():
                setattr(info, k, v)
            if data is not None:
                info.size = len(data)
            headers.append(tar.offset)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)

        add("good.jpg", photo_a)
        add("good.txt", b"a good photo")
        add("other.jpg", photo_b)
        add(b"caf\xe9.jpg".decode("utf-8", "surrogateescape"), photo_a)  # a name that is not UTF-8
        add("__meta__.jpg", photo_b)  # webdataset skips `__` keys; here it is a sample like any other
        add("hard.jpg", type=tarfile.LNKTYPE, linkname="other.jpg")  # GNU tar's repeated file
        add("sub/soft.jpg", type=tarfile.SYMTYPE, linkname="../good.jpg")
        add("escape.jpg", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        add("later.jpg", type=tarfile.SYMTYPE, linkname="zzz.jpg")
        add("dev.jpg", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
        add("fifo.jpg", type=tarfile.FIFOTYPE)
        add("big.jpg", os.urandom(MAX_BYTES + 1))  # over download.max_bytes: never read
        add("dup.jpg", photo_a)
        add("dup.jpg", photo_b)  # the same member twice in a row
        add("README", b"no extension")
        add("zzz.jpg", photo_b)
        headers.append(tar.offset)  # where the end-of-archive blocks start
    expected = {
        "good": ("kept", ""), "other": ("kept", ""), b"caf\xe9".decode("utf-8", "surrogateescape"): ("kept", ""), "__meta__": ("kept", ""),
        "hard": ("kept", ""), "sub/soft": ("kept", ""), "escape": ("failed", "link_outside"),
        "later": ("failed", "link_unresolved"), "dev": ("failed", "unsupported_member"),
        "fifo": ("failed", "unsupported_member"), "big": ("failed", "too_large"),
        "dup": ("failed", "duplicate_member"), "README": ("failed", "not_a_sample"), "zzz": ("kept", ""),
    }
    return expected, headers


MAX_BYTES = 400_000  # above the test photos' JPEGs


def test_every_member_of_a_hostile_shard_is_one_row(ray_session, tmp_path, capsys):
    import yaml

    d = tmp_path / "in"
    d.mkdir()
    expected, headers = _hostile_shard(d / "00000.tar")
    data = (d / "00000.tar").read_bytes()
    (d / "00001.tar").write_bytes(data[:headers[-1]])  # cut at a member boundary: no end-of-archive blocks
    (d / "00002.tar").write_bytes(data[:headers[-2] + 100])  # cut inside zzz.jpg's header

    wf = tmp_path / "wf.yaml"
    wf.write_text(yaml.safe_dump({"name": "hostile", "sources": [{"type": "url_list", "path": "unused.jsonl"}],
                                  "images": {"image_size": 128}, "download": {"max_bytes": MAX_BYTES},
                                  "filters": {"resolution": {"min_side": 64}, "blur": {"enabled": False}},
                                  "dedup": {"enabled": False}}))
    out = tmp_path / "out"
    rc = build_main(["--config", str(wf), "--input", f"{d}/{{00000..00002}}.tar", "--output", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    ledger = read_ledger(out).to_pandas()
    assert ledger["key"].is_unique
    assert (ledger["status"] == "kept").sum() == 7 + 7 + 6  # photos and links to them; not zzz where cut in its header
    by_key = {r.key: (r.status, r.reason) for r in ledger.itertuples()}
    for shard, cut in [("00000.tar", None), ("00001.tar", "member boundary"), ("00002.tar", "inside a member header")]:
        path = f"{d}/{shard}"
        want = {source_key(f"{path}#{k}"): v for k, v in expected.items() if not (shard == "00002.tar" and k == "zzz")}
        got = {k: by_key[k] for k in want if k in by_key}
        assert got == want, (shard, ledger[["status", "reason", "detail"]].to_string())
        rows = ledger[ledger["source"] == path]
        assert len(rows) == len(want) + (cut is not None)  # kept + rejected + failed = samples (+ the cut)
        if cut:
            (detail,) = rows[rows["reason"] == "shard_truncated"]["detail"]
            assert cut in detail, detail
    stored = wds.WebDataset(f"{out}/shards/00000.tar", shardshuffle=False)
    assert "caf\\xe9" in {json.loads(s["json"])["source"]["key"] for s in stored}  # the name, escaped
