"""--export gives back a URL list that build_dataset.py --input rebuilds from."""

from __future__ import annotations

import json

import pandas as pd
import yaml

from pipeline import build_dataset
from pipeline.report.load import load_build
from tests.report.conftest import filter_report

RETRY = ["timeout", "http_500", "http_404"]


def test_exported_failed_list_reproduces_those_rows(report_build, tmp_path):
    out, manifest, _ = report_build
    ledger = load_build(out).ledger
    failed = ledger[(ledger["status"] == "failed") & ledger["reason"].isin(RETRY)]
    path = tmp_path / "retry.parquet"
    proc = filter_report(out, "--export", path, "--status", "failed", "--reason", ",".join(RETRY))
    assert f"exported {len(failed)} rows" in proc.stdout
    urls = pd.read_parquet(path)
    assert sorted(urls["url"]) == sorted(failed["source"])
    assert {"url", "caption", "license", "rank"} <= set(urls.columns)  # the input's own columns come back

    config = tmp_path / "wf.yaml"
    config.write_text(yaml.safe_dump(manifest["config"]))
    assert build_dataset.main(["--config", str(config), "--input", str(path), "--output", str(tmp_path / "retry"), "--no-progress"]) == 0
    again = load_build(tmp_path / "retry").ledger.set_index("key")
    before = failed.set_index("key")
    assert sorted(again.index) == sorted(before.index)  # same keys: a key is the URL's hash
    for col in ("source", "status", "reason", "caption", "source_extra"):
        assert (again.loc[before.index, col] == before[col]).all(), col
    assert {json.loads(e)["license"] for e in again["source_extra"]} == {"CC0", "CC-BY"}


def test_export_rejected_by_a_filter(report_build, tmp_path):
    out, _, rows = report_build
    ledger = load_build(out).ledger
    blurred = ledger[(ledger["status"] == "rejected") & (ledger["reason"] == "blur")]
    path = tmp_path / "rejudge.jsonl"
    filter_report(out, "--export", path, "--status", "rejected", "--filter", "blur")
    got = pd.read_json(path, lines=True)
    assert sorted(got["url"]) == sorted(blurred["source"])
    by_url = {r["url"]: r for r in rows}
    for _, r in got.iterrows():
        assert (r["caption"], r["license"], r["rank"]) == (by_url[r["url"]]["caption"], by_url[r["url"]]["license"], by_url[r["url"]]["rank"])


def test_export_requests_are_checked(report_build, tmp_path):
    out, _, _ = report_build
    assert "no failed rows have that reason" in filter_report(out, "--export", tmp_path / "x.parquet", "--status", "failed",
                                                              "--reason", "dns_error", check_rc=2).stderr
    assert "unknown format" in filter_report(out, "--export", tmp_path / "x.xlsx", "--status", "failed", check_rc=2).stderr
    assert "add --export" in filter_report(out, "--status", "failed", check_rc=2).stderr
