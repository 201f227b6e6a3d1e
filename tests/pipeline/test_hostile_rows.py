"""Hostile URL-list rows (issue 27, second round), in one real build beside good photos:
text that UTF-8 writers refuse, malformed URLs, unreadable JSONL lines and user columns
named like the pipeline's own fields each end as exactly one row; the photos are kept."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pipeline.ledger import read_ledger
from pipeline.output_layout import LEDGER_DIR, SHARD_DIR, TMP_SUFFIX
from pipeline.report.export import export
from pipeline.runner import run_build
from pipeline.sources import read_url_list
from tests.pipeline.conftest import workflow

BAD_URLS = ["http://[::1/x.jpg", "http://[abc]/x.jpg", "http://a\uff03b.example/x.jpg", "http://h.example:99999/x.jpg"]


def _line(rec: dict) -> bytes:
    return json.dumps(rec).encode() + b"\n"  # ensure_ascii: a lone surrogate is written as \udce9, valid JSON


@pytest.fixture(scope="module")
def build(served, ray_session, tmp_path_factory):
    server, photos = served
    tmp = tmp_path_factory.mktemp("hostile-rows")
    url = server.url
    lines = [b"\xef\xbb\xbf" + _line({"url": url(f"photos/{photos[0]}"), "caption": "after a BOM"})]
    lines += [_line({"url": url(f"photos/{n}"), "caption": f"a photo: {n}"}) for n in photos[1:4]]
    lines += [
        _line({"url": url(f"photos/{photos[4]}"), "caption": "caf\udce9 json"}),  # scraped alt text with a lone surrogate
        b'{"url": "' + url(f"photos/{photos[5]}").encode() + b'", "caption": "caf\xe9 latin-1", "note\xff": "x\xfe"}\n',
        # user columns named like the sample's own fields, and an integer above 2^64
        _line({"url": url("cmyk.jpg"), "caption": "columns", "kind": "video", "path": "/etc/x", "video_time": "soon",
               "big": 2**70}),
        _line({"url": url("photos/astronaut.png") + "?x=\udce9", "caption": "surrogate in the url"}),
        *[_line({"url": u, "caption": "malformed"}) for u in BAD_URLS],
        _line({"caption": "no url"}),
        b'{"url": "' + url("gray16.png").encode() + b'", "caption": "trailing comma",}\n',
        b'["not", "an", "object"]\n',
        b'{"url": "' + url("rgba.png").encode() + b'", "capt',  # cut short: the last line has no end
    ]
    path = tmp / "urls.jsonl"
    path.write_bytes(b"".join(lines))
    cfg = workflow([{"type": "url_list", "path": str(path)}])
    manifest = run_build(cfg, tmp / "out", show_progress=False)
    return cfg, manifest, read_ledger(tmp / "out").to_pandas(), tmp / "out", len(lines)


def _row(ledger, **match):
    hits = ledger
    for col, value in match.items():
        hits = hits[hits[col].astype(str).str.contains(value, regex=False)]
    assert len(hits) == 1, (match, ledger[["source", "status", "reason", "detail"]].to_string())
    return hits.iloc[0]


def test_one_row_per_line_and_the_photos_kept(build):
    _, manifest, ledger, _, n_lines = build
    assert len(ledger) == n_lines and ledger["key"].is_unique
    assert manifest["counts"]["inputs"] == n_lines
    assert (ledger[ledger["source"].str.contains("/photos/", na=False)
                   & ~ledger["source"].str.contains("?x=", regex=False, na=False)]["status"] == "kept").all()
    assert (ledger["status"] == "kept").sum() == 7  # six photos and the CMYK JPEG with odd columns


def test_bad_text_is_escaped_and_recorded(build):
    _, _, ledger, _, _ = build
    row = _row(ledger, caption="caf\\xe9 json")
    assert row["status"] == "kept" and "escaped" in row["detail"] and "caption" in row["detail"]
    row = _row(ledger, caption="caf\\xe9 latin-1")
    assert row["status"] == "kept" and "extra" in row["detail"]
    assert json.loads(row["source_extra"]) == {"note\\xff": "x\\xfe"}


def test_malformed_and_unreadable_rows_name_themselves(build):
    _, _, ledger, _, _ = build
    failed = ledger[ledger["status"] == "failed"]
    for u in BAD_URLS:
        row = _row(failed, detail=repr(u))
        assert row["reason"] == "invalid_url", row.to_dict()
    assert _row(failed, source="?x=")["reason"] == "invalid_url"
    assert _row(failed, reason="missing_url")["detail"].startswith("line 13 of urls.jsonl")
    invalid = failed[failed["reason"] == "invalid_row"]
    assert sorted(d.split(" of ")[0] for d in invalid["detail"]) == ["line 14", "line 15", "line 16"]
    assert invalid["detail"].str.contains("not valid JSON").sum() == 2


def test_user_columns_never_override_the_samples_fields(build, tmp_path):
    _, manifest, ledger, out, _ = build
    row = _row(ledger, caption="columns")
    assert (row["status"], row["kind"]) == ("kept", "url") and pd.isna(row["video_time"])
    assert json.loads(row["source_extra"]) == {"kind": "video", "path": "/etc/x", "video_time": "soon", "big": 2**70}
    (warning,) = [w for w in manifest["warnings"] if "share names" in w]
    assert "kind, path, video_time" in warning
    got = export(ledger, tmp_path / "kept.jsonl", "kept", [], [])
    assert got["rows"] == 7
    (back,) = [r for r in read_url_list(tmp_path / "kept.jsonl") if r["caption"] == "columns"]  # as --input reads it
    other_rows_columns = {k: v for k, v in back["extra"].items() if v is not None}  # the list's union of columns
    assert other_rows_columns == {"kind": "video", "path": "/etc/x", "video_time": "soon", "big": 2**70}


def test_resume_of_a_folder_a_crash_left_behind(build):
    """The first round's crash left a stale shard .tmp and no ledger for the unit."""
    cfg, _, before, out, _ = build
    (out / LEDGER_DIR / "00000.parquet").unlink()
    (out / SHARD_DIR / "00000.tar").rename(out / SHARD_DIR / f"00000.tar{TMP_SUFFIX}")
    run_build(cfg, out, resume=True, show_progress=False)
    after = read_ledger(out).to_pandas()
    cols = ["key", "status", "reason"]
    assert after.sort_values("key")[cols].values.tolist() == before.sort_values("key")[cols].values.tolist()
    assert not list(out.glob(f"*/*{TMP_SUFFIX}"))
