"""Bad input files and bad workflow fields fail before any work, with clear messages;
every supported URL-list format reads the same rows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipeline.config import ConfigError, load_workflow, parse_workflow
from pipeline.runner import OutputError, run_build
from pipeline.sources import SourceError, plan_units, read_url_list, url_problem
from tests.pipeline.conftest import workflow

ROOT = Path(__file__).resolve().parents[2]
ROWS = pd.DataFrame({"url": ["http://127.0.0.1:1/a.jpg", "https://127.0.0.1:1/b.png"], "caption": ["a cat", "a dog"], "lang": ["en", "fr"]})


@pytest.mark.parametrize("fmt", ["parquet", "csv", "tsv", "jsonl"])
def test_url_list_formats_read_the_same(tmp_path, fmt):
    path = tmp_path / f"urls.{fmt}"
    {"parquet": lambda: ROWS.to_parquet(path), "csv": lambda: ROWS.to_csv(path, index=False),
     "tsv": lambda: ROWS.to_csv(path, sep="\t", index=False),
     "jsonl": lambda: ROWS.to_json(path, orient="records", lines=True)}[fmt]()
    rows = read_url_list(path)
    assert [r["url"] for r in rows] == ROWS["url"].tolist()
    assert [r["caption"] for r in rows] == ["a cat", "a dog"]
    assert [r["extra"] for r in rows] == [{"lang": "en"}, {"lang": "fr"}]


def test_url_list_without_url_column(tmp_path):
    path = tmp_path / "urls.csv"
    ROWS.rename(columns={"url": "image_link"}).to_csv(path, index=False)
    with pytest.raises(SourceError, match=r"has no 'url' column \(columns: image_link, caption, lang\).*rename"):
        read_url_list(path)


def test_empty_url_list(tmp_path):
    path = tmp_path / "urls.csv"
    path.write_text("url,caption\n")
    with pytest.raises(SourceError, match="has no rows"):
        read_url_list(path)


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(SourceError, match="unknown format '.txt'"):
        read_url_list(tmp_path / "urls.txt")
    with pytest.raises(SourceError, match="does not exist"):
        read_url_list(tmp_path / "nope.parquet")


def test_url_problems():
    assert url_problem("http://x/a.jpg") is None and url_problem("HTTPS://x/a.jpg") is None
    assert url_problem("file:///etc/passwd").startswith("unsupported_url_scheme")
    assert url_problem("ftp://host/x").startswith("unsupported_url_scheme")
    assert url_problem("/etc/passwd").startswith("unsupported_url_scheme")
    assert url_problem(None).startswith("missing_url") and url_problem("  ").startswith("missing_url")


def test_unknown_config_field_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: [{type: url_list, path: x.csv}]\noutput: {shard_sise: 10}\n")
    with pytest.raises(ConfigError, match=r"output\.shard_sise: Extra inputs are not permitted"):
        load_workflow(bad)


@pytest.mark.parametrize(
    "data, field",
    [
        ({"sources": [{"type": "url_list", "path": "x"}], "output": {"shard_size": 0}}, "output.shard_size"),
        ({"sources": [{"type": "url_list", "path": "x"}], "filters": {"blur": {"threshold": "high"}}}, "filters.blur.threshold"),
        ({"sources": [{"type": "webcam", "path": "x"}]}, "sources.0"),
        ({"sources": []}, "sources"),
        ({"sources": [{"type": "video", "path": "v.mp4", "every_seconds": None}]}, "sources.0.video"),
    ],
)
def test_bad_config_values_are_named(data, field):
    with pytest.raises(ConfigError) as err:
        parse_workflow(data, "wf.yaml")
    assert f"  {field}" in str(err.value) and "wf.yaml" in str(err.value)


def test_every_bundled_workflow_validates():
    for path in sorted((ROOT / "workflows").glob("*.yaml")):
        if "sources:" in path.read_text():
            load_workflow(path)


def test_keys_are_stable_and_units_sized(tmp_path):
    path = tmp_path / "urls.jsonl"
    path.write_text("".join(f'{{"url": "http://127.0.0.1:1/{i}.jpg"}}\n' for i in range(12)))
    cfg = workflow([{"type": "url_list", "path": str(path)}], output={"shard_size": 5})
    a, b = plan_units(cfg), plan_units(cfg)
    assert [len(u.items) for u in a] == [5, 5, 2]
    assert [it.key for u in a for it in u.items] == [it.key for u in b for it in u.items]


def test_output_not_empty_without_resume(tmp_path):
    urls = tmp_path / "urls.jsonl"
    urls.write_text('{"url": "ftp://x/y.jpg"}\n')
    out = tmp_path / "out"
    out.mkdir()
    (out / "something").write_text("x")
    with pytest.raises(OutputError, match="not empty; pass --resume"):
        run_build(workflow([{"type": "url_list", "path": str(urls)}]), out, show_progress=False)


def test_cli_reports_bad_input_clearly(tmp_path):
    bad = tmp_path / "urls.csv"
    bad.write_text("link\nhttp://x/y.jpg\n")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "pipeline" / "build_dataset.py"), "--config", str(ROOT / "workflows" / "demo.yaml"),
         "--input", str(bad), "--output", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "has no 'url' column" in proc.stderr and "Traceback" not in proc.stderr


def test_binary_url_columns_and_a_csv_bom(tmp_path):
    pd.DataFrame({"url": [b"http://x/a.jpg", b"http://x/caf\xe9.jpg"], "caption": [b"a cat", b"b"]}).to_parquet(tmp_path / "u.parquet")
    ok, bad = read_url_list(tmp_path / "u.parquet")
    assert (ok["url"], ok["caption"], ok["error"]) == ("http://x/a.jpg", "a cat", None)
    assert bad["error"].startswith("invalid_url: 'http://x/caf\\\\xe9.jpg' (row 1 of u.parquet)")
    (tmp_path / "u.csv").write_bytes(b"\xef\xbb\xbfurl,caption\nhttp://x/a.jpg,a\n")
    (row,) = read_url_list(tmp_path / "u.csv")
    assert (row["url"], row["where"]) == ("http://x/a.jpg", "line 2 of u.csv")


def test_malformed_urls_are_rows_not_crashes():
    for url in ("http://[::1/x.jpg", "http://[abc]/x.jpg", "http://a\uff03b.example/x", "http://h:99999/x", "http:///x"):
        assert url_problem(url, "line 3").startswith("invalid_url: "), url
    assert url_problem(None, "line 3 of u.jsonl") == "missing_url: line 3 of u.jsonl has an empty url"
