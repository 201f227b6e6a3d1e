"""Duplicates across a whole build: the same real photo under several URLs, and resized,
recompressed and colour-shifted copies, spread over units; the build keeps one of each
(the largest original, then the smallest key), every copy is a `duplicate` ledger row
naming the key it copies and is gone from the shards, and the pass is idempotent: run
again, or finished after being killed between a shard and its ledger, it ends the same."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from PIL import Image

from demo.loopback_server import LoopbackServer
from filter_dev.photos import load_rgb, skimage_photos
from pipeline.dedup import PAIRS_FILE, REASON, main, rewrite_unit, run_dedup
from pipeline.ledger import read_ledger
from pipeline.report.rules import build_rules
from pipeline.report.whatif import DUPLICATE, what_if
from pipeline.runner import run_build
from tests.pipeline.conftest import workflow, write_jsonl


def _jpeg(rgb: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _copies(folder) -> dict[str, str]:
    """file name -> the original it copies (itself for the originals)."""
    photos = {p.name: p for p in skimage_photos()}
    cat, astronaut = load_rgb(photos["chelsea.png"]), load_rgb(photos["astronaut.png"])
    for name in ("chelsea.png", "astronaut.png", "coffee.png", "rocket.jpg"):
        shutil.copy(photos[name], folder / name)
    shutil.copy(photos["chelsea.png"], folder / "cat_mirror_site.png")  # the same file under another URL
    small = np.asarray(Image.fromarray(cat).resize((cat.shape[1] // 2, cat.shape[0] // 2), Image.Resampling.BILINEAR))
    (folder / "cat_thumb.jpg").write_bytes(_jpeg(small, 60))
    (folder / "astronaut_q35.jpg").write_bytes(_jpeg(astronaut, 35))
    warm = np.clip(astronaut.astype(int) + [18, 4, -14], 0, 255).astype(np.uint8)
    (folder / "astronaut_warm.png").write_bytes(_png(warm))
    return {"chelsea.png": "chelsea.png", "cat_mirror_site.png": "chelsea.png", "cat_thumb.jpg": "chelsea.png",
            "astronaut.png": "astronaut.png", "astronaut_q35.jpg": "astronaut.png", "astronaut_warm.png": "astronaut.png",
            "coffee.png": "coffee.png", "rocket.jpg": "rocket.jpg"}


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


def _by_name(out) -> pd.DataFrame:
    t = read_ledger(out).to_pandas()
    return t.set_index(t["source"].str.rsplit("/", n=1).str[-1]).sort_index()


def _shard_keys(out) -> list[str]:
    return sorted(s["__key__"] for tar in sorted((out / "shards").glob("*.tar")) for s in wds.WebDataset(str(tar), shardshuffle=False))


@pytest.fixture(scope="module")
def built(ray_session, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dedup")
    (tmp / "www").mkdir()
    copies = _copies(tmp / "www")
    order = ["cat_thumb.jpg", "astronaut_q35.jpg", "chelsea.png", "coffee.png", "astronaut_warm.png",
             "cat_mirror_site.png", "rocket.jpg", "astronaut.png"]  # originals and copies in different units
    with LoopbackServer(tmp / "www") as server:
        urls = write_jsonl(tmp / "urls.jsonl", [{"url": server.url(n), "caption": n} for n in order])
        cfg = workflow([{"type": "url_list", "path": str(urls)}], output={"shard_size": 3}, filters={"blur": {"enabled": False}},
                       dedup={"enabled": True})
        manifest = run_build(cfg, tmp / "out", show_progress=False)
    return manifest, tmp / "out", copies


def test_one_of_each_photo_is_kept_and_every_copy_is_accounted_for(built):
    manifest, out, copies = built
    ledger = _by_name(out)
    assert len(ledger) == len(copies) and set(ledger["status"]) == {"kept", "rejected"}
    key = ledger["key"].to_dict()
    pixels = (ledger["original_width"] * ledger["original_height"]).to_dict()
    groups: dict[str, list[str]] = {}
    for name, original in copies.items():
        groups.setdefault(original, []).append(name)
    # the representative: the most original pixels, then the smallest key (the keys hash the URLs, whose port varies)
    rep = {o: min(names, key=lambda n: (-pixels[n], key[n])) for o, names in groups.items()}
    assert rep["chelsea.png"] != "cat_thumb.jpg"  # the half-size copy never wins
    kept = sorted(ledger.index[ledger["status"] == "kept"])
    assert kept == sorted(rep.values()), ledger[["status", "reason", "detail"]]
    for name, original in copies.items():
        if name in kept:
            continue
        row = ledger.loc[name]
        assert (row["status"], row["reason"]) == ("rejected", "duplicate")
        assert row["detail"] == key[rep[original]], name
        assert row["shard"] is None
    assert _shard_keys(out) == sorted(key[n] for n in kept)
    assert ledger["phash"].str.fullmatch("[0-9a-f]{16}").all() and ledger["pixel_hash"].str.len().eq(32).all()
    c = manifest["counts"]
    assert c["inputs"] == 8 and c["status"] == {"kept": 4, "rejected": 4, "failed": 0} and c["reasons"]["rejected"] == {"duplicate": 4}
    assert manifest["dedup"]["removed"] == 4 and manifest["dedup"]["exact"] == 1
    pairs = pd.read_parquet(out / PAIRS_FILE).set_index("key")
    mirror = key["cat_mirror_site.png"] if rep["chelsea.png"] == "chelsea.png" else key["chelsea.png"]
    assert pairs.loc[mirror, "kind"] == "exact" and pairs.loc[mirror, "distance"] == 0
    assert (pairs["distance"] <= manifest["dedup"]["max_distance"]).all()
    # filter-report's what-if leaves the removed copies removed
    w = what_if(read_ledger(out).to_pandas(), build_rules(manifest["config"]), manifest["config"]["dedup"])
    rows = {(r["status"], r["reason"]): r["low"] for r in w["rows"]}
    assert rows[("kept", "")] == 4 and rows[("rejected", REASON)] == 4 and REASON == DUPLICATE


def test_the_pass_is_idempotent_and_finishes_a_killed_pass(built, tmp_path):
    _, out, _ = built
    before, shards = _by_name(out), _shard_keys(out)
    assert run_dedup(out)["removed"] == 4  # run again: the same rows, nothing else changes
    pd.testing.assert_frame_equal(_by_name(out), before)
    assert _shard_keys(out) == shards

    # a pass killed after rewriting a shard, before its ledger: the unit's ledger is still the old one
    fresh = tmp_path / "killed"
    shutil.copytree(out, fresh)
    ledger = read_ledger(fresh).to_pandas()
    dup = ledger[ledger["reason"] == "duplicate"].iloc[0]
    unit = next(p.stem for p in (fresh / "ledger").glob("*.parquet") if dup["key"] in pd.read_parquet(p)["key"].tolist())
    path = fresh / "ledger" / f"{unit}.parquet"
    schema = pq.read_schema(path)
    t = pd.read_parquet(path)
    t.loc[t["key"] == dup["key"], ["status", "reason", "detail", "shard"]] = ["kept", "", "", f"shards/{unit}.tar"]
    pq.write_table(pa.Table.from_pandas(t, schema=schema, preserve_index=False), path)
    assert main([str(fresh)]) == 0  # the command a user runs, on the Ray already up
    pd.testing.assert_frame_equal(_by_name(fresh).drop(columns="source"), before.drop(columns="source"))
    assert json.loads((fresh / "manifest.json").read_text())["counts"]["status"]["kept"] == 4

    # and a unit rewritten twice stays the same
    rewrite_unit(str(fresh), unit, {dup["key"]: dup["detail"]})
    pd.testing.assert_frame_equal(_by_name(fresh).drop(columns="source"), before.drop(columns="source"))
