"""One real build (img2dataset downloading from a loopback server, on Ray) over real
photos and every kind of hostile input: each ends as the right ledger row."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
import webdataset as wds

from filter_dev import hostile
from pipeline.ledger import read_ledger
from pipeline.runner import run_build
from tests.pipeline.conftest import workflow, write_jsonl

EXPECTED = {  # url path -> (status, reason)
    "corrupt.jpg": ("failed", "decode_error"),
    "truncated.png": ("failed", "decode_error"),
    "page.jpg": ("failed", "decode_error"),
    "empty.jpg": ("failed", "decode_error"),
    "missing.jpg": ("failed", "http_404"),
    "slow.jpg": ("failed", "timeout"),
    "loop-a": ("failed", "redirect_loop"),
    "bomb.png": ("failed", "too_large"),
    "cmyk.jpg": ("kept", ""),
    "gray16.png": ("kept", ""),
    "animated.gif": ("kept", ""),
    "rgba.png": ("kept", ""),
    "scan-flood.jpg": ("failed", "too_complex"),  # refused from its scan count, before decoding
    "ztxt.png": ("kept", ""),  # PIL refuses its 4 MB text chunk; the pixels are fine
    "photo.psd": ("kept", ""),
    "rotated.jpg": ("kept", ""),
    "gzipped.jpg": ("failed", "decode_error"),
}


@pytest.fixture(scope="module")
def build(served, ray_session, tmp_path_factory):
    server, photos = served
    tmp = tmp_path_factory.mktemp("hostile")
    rows = [{"url": server.url(f"photos/{n}"), "caption": f"a photo: {n}", "license": "BSD", "rank": i} for i, n in enumerate(photos)]
    rows += [{"url": server.url(name), "caption": name} for name in EXPECTED]
    rows += [
        {"url": f"http://127.0.0.1:{hostile.closed_port()}/refused.jpg", "caption": "refused"},
        {"url": "file:///etc/passwd", "caption": "local file"},
        {"url": "ftp://127.0.0.1/x.jpg", "caption": "ftp"},
        {"url": server.url("photos/astronaut.png"), "caption": "listed twice"},
    ]
    urls = write_jsonl(tmp / "urls.jsonl", rows)
    cfg = workflow([{"type": "url_list", "path": str(urls)}])
    manifest = run_build(cfg, tmp / "out", show_progress=False)
    ledger = read_ledger(tmp / "out").to_pandas()
    return manifest, ledger, rows, tmp / "out"


def test_every_input_has_exactly_one_row(build):
    manifest, ledger, rows, _ = build
    assert len(ledger) == len(rows)
    assert ledger["key"].is_unique
    c = manifest["counts"]
    assert c["inputs"] == len(rows)
    assert sum(c["status"].values()) == len(rows)
    assert set(ledger["status"]) <= {"kept", "rejected", "failed"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_input_status_and_reason(build, name):
    _, ledger, _, _ = build
    row = ledger[ledger["source"].str.endswith("/" + name)].iloc[0]
    status, reason = EXPECTED[name]
    assert (row["status"], row["reason"]) == (status, reason), row.to_dict()
    if status == "failed":
        assert row["detail"], "a failure must carry its error message"
        assert row["shard"] is None


def test_refused_port_and_non_http_schemes(build):
    _, ledger, _, _ = build
    by_source = ledger.set_index("source")
    refused = ledger[ledger["source"].str.endswith("/refused.jpg")].iloc[0]
    assert (refused["status"], refused["reason"]) == ("failed", "connection_refused")
    for url in ("file:///etc/passwd", "ftp://127.0.0.1/x.jpg"):
        assert by_source.loc[url, "status"] == "failed"
        assert by_source.loc[url, "reason"] == "unsupported_url_scheme"


def test_an_http_status_is_named_once(build):
    _, ledger, _, _ = build
    row = ledger[ledger["source"].str.endswith("/missing.jpg")].iloc[0]
    assert row["detail"] == f"{row['source']}: the server answered 404 Not Found", row["detail"]


def test_bomb_declared_size_is_reported_without_decoding(build):
    _, ledger, _, _ = build
    row = ledger[ledger["source"].str.endswith("/bomb.png")].iloc[0]
    assert "20000x20000" in row["detail"] and "max_image_pixels" in row["detail"]


def test_real_photos_kept_with_scores_and_sizes(build):
    _, ledger, rows, _ = build
    photos = ledger[ledger["source"].str.contains("/photos/")]
    assert len(photos) == len(hostile.PHOTO_NAMES) + 1  # one listed twice
    assert (photos["status"] == "kept").all(), photos[["source", "status", "reason"]]
    assert (photos[["width", "height"]].max(axis=1) <= 256).all()
    assert (photos["original_width"] >= photos["width"]).all()
    assert photos["blur_laplacian_var"].notna().all() and photos["resolution_min_side"].notna().all()
    dup = photos[photos["source"].str.endswith("astronaut.png")]["key"].tolist()
    assert len(dup) == 2 and dup[1] == dup[0] + "_dup1"


def test_shards_read_back_and_match_ledger(build):
    manifest, ledger, _, out = build
    kept = ledger[ledger["status"] == "kept"].set_index("key")
    seen = {}
    for shard in manifest["shards"]:
        for sample in wds.WebDataset(str(out / shard), shardshuffle=False).decode("rgb"):
            seen[sample["__key__"]] = (shard, sample)
    assert set(seen) == set(kept.index)
    for key, (shard, sample) in seen.items():
        row = kept.loc[key]
        meta = sample["json"]
        assert row["shard"] == shard
        assert sample["jpg"].shape[:2] == (row["height"], row["width"])
        assert meta["source"]["url"] == row["source"]
        assert meta["sizes"]["original_width"] == row["original_width"]
        assert meta["scores"]["blur_laplacian_var"] == pytest.approx(row["blur_laplacian_var"])
        assert sample["txt"] == meta["source"]["caption"]
    # extra URL-list columns are carried into the sample's json, under source.extra
    astro = [s for _, s in seen.values() if s["json"]["source"].get("extra", {}).get("rank") == 0]
    assert astro and astro[0]["json"]["source"]["extra"]["license"] == "BSD"


def test_odd_formats_are_normalised(build):
    _, ledger, _, out = build
    kept = ledger[ledger["status"] == "kept"].set_index("source")
    samples = {}
    for shard in set(kept["shard"]):
        for s in wds.WebDataset(str(out / shard), shardshuffle=False).decode("rgb8"):
            samples[s["json"]["source"]["url"].rsplit("/", 1)[-1]] = s["jpg"]
    rgba = samples["rgba.png"]
    assert rgba[:, : rgba.shape[1] // 2 - 4].min() > 240  # transparent half composited on white
    cmyk = samples["cmyk.jpg"].astype(float)
    ref = samples["astronaut.png"].astype(float)
    assert np.abs(cmyk - ref).mean() < 12  # CMYK converted to the right colours
    assert samples["gray16.png"].ndim == 3 and samples["gray16.png"].shape[2] == 3
    assert samples["animated.gif"].shape[:2] == (256, 256)
    assert np.abs(samples["photo.psd"].astype(float) - samples["chelsea.png"]).mean() < 6


def test_exif_orientation_is_applied_before_anything_sees_the_pixels(build):
    _, ledger, _, out = build
    row = ledger[ledger["source"].str.endswith("/rotated.jpg")].iloc[0]
    assert (row["original_width"], row["original_height"], row["width"], row["height"]) == (640, 427, 256, 171)
    (sample,) = [s for s in wds.WebDataset(str(out / row["shard"]), shardshuffle=False).decode("rgb8")
                 if s["__key__"] == row["key"]]
    upright = cv2.resize(hostile.photo("rocket.jpg"), (256, 171), interpolation=cv2.INTER_AREA)
    assert np.abs(sample["jpg"].astype(float) - upright).mean() < 8  # upright, not just the right shape


def test_misleading_reasons_name_the_real_problem(build):
    _, ledger, _, _ = build
    assert "gzip" in ledger[ledger["source"].str.endswith("/gzipped.jpg")].iloc[0]["detail"]
    assert "600 scans" in ledger[ledger["source"].str.endswith("/scan-flood.jpg")].iloc[0]["detail"]


def test_manifest_records_config_versions_reasons_timings(build):
    manifest, ledger, _, out = build
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["counts"] == manifest["counts"]
    assert manifest["config"]["download"]["timeout"] == 1.5
    assert manifest["versions"]["img2dataset"] and manifest["versions"]["ray"]
    failed = ledger[ledger["status"] == "failed"]["reason"].value_counts().to_dict()
    assert manifest["counts"]["reasons"]["failed"] == failed
    assert manifest["timings"]["total_s"] > 0
    steps = manifest["steps"]
    assert steps["load"]["busy_s"] > 0 and steps["load"]["images"] > 0
    assert steps["resolution"]["pool"] == "cpu" and steps["resolution"]["images"] > 0
    assert steps["blur"]["images"] <= steps["resolution"]["images"]  # cheapest first, rejects leave
    assert all(v["idle_s"] >= 0 for v in steps.values())
    assert manifest["pool"]["model_actors"] == 0  # no model step enabled: no model pool
    schema = pq.read_schema(next((out / "ledger").glob("*.parquet")))
    for col in ("key", "source", "status", "reason", "shard", "blur_laplacian_var", "resolution_aspect_ratio"):
        assert col in schema.names


def test_filter_report_prints_the_ledger_counts(build):
    import subprocess
    import sys
    from pathlib import Path

    manifest, _, rows, out = build
    exe = Path(sys.executable).parent / "filter-report"
    proc = subprocess.run([str(exe), str(out)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert f"{len(rows)} inputs" in proc.stdout
    lines = {ln.split()[0]: ln.split() for ln in proc.stdout.splitlines() if ln.strip()}
    assert int(lines["kept"][1]) == manifest["counts"]["status"]["kept"]
    assert int(lines["failed"][1]) == manifest["counts"]["status"]["failed"]
    assert int(lines["decode_error"][1]) == 5 and int(lines["http_404"][1]) == 1
    bad = subprocess.run([str(exe), str(out / "shards")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "no ledger" in bad.stderr
