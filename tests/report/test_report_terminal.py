"""The terminal report's numbers against the ledger of a real build, on finished,
unfinished and non-build folders, and with annotation data."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from pipeline.report.load import load_build
from steps.registry import get_step
from tests.report.conftest import FILTERS, annotate_copy, filter_report


def ledger_of(out):
    return pd.concat([pq.read_table(f).to_pandas() for f in sorted((out / "ledger").glob("*.parquet"))], ignore_index=True)


def rows_of(stdout: str) -> dict[str, list[str]]:
    """First word of each table line -> its words (tables are whitespace-separated)."""
    return {ln.split()[0]: ln.split() for ln in stdout.splitlines() if ln.strip()}


def test_counts_and_failures_match_the_ledger(report_build):
    out, _, inputs = report_build
    ledger = ledger_of(out)
    proc = filter_report(out, subprocess_run=True)  # the installed command, as a user runs it
    assert f"{len(inputs)} inputs" in proc.stdout and "finished (8 of 8 units done)" in proc.stdout
    counts = proc.stdout.split("Counts", 1)[1].split("Filters", 1)[0]
    words = rows_of(counts)
    for status in ("kept", "rejected", "failed"):
        assert int(words[status][1]) == (ledger["status"] == status).sum()
    for (status, reason), n in ledger[ledger["status"] != "kept"].groupby(["status", "reason"]).size().items():
        assert int(words[reason][1]) == n, (status, reason)
    # the cheap filters reject some of these photos; the watermark model rejects none of them
    # since it defers text images (page.png) to the text filter, which this build does not run
    assert {"blur", "resolution"} <= set(ledger["reason"])
    assert {"http_404", "http_500", "timeout", "connection_refused"} <= set(ledger["reason"])
    failures = proc.stdout.split("Failures", 1)[1].split("Steps", 1)[0]
    for reason, group in ledger[ledger["status"] == "failed"].groupby("reason"):
        line = rows_of(failures)[reason]
        assert int(line[1]) == len(group) and line[2] in set(group["source"])


def test_filter_statistics_match_the_ledger(report_build):
    out, _, _ = report_build
    ledger = ledger_of(out)
    proc = filter_report(out)
    filters = rows_of(proc.stdout.split("Filters (run order)", 1)[1].split("Scores", 1)[0])
    scores = rows_of(proc.stdout.split("Scores", 1)[1].split("Failures", 1)[0])
    config = json.loads((out / "manifest.json").read_text())["config"]["filters"]
    for name in FILTERS:
        # the filter as a build makes it (models load), deciding on the ledger's scores
        cls = get_step(name)
        real = cls.ready(cls.Config.model_validate(config[name]))
        cols = [f"{name}_{n}" for n in real.score_names]
        scored = ledger[cols].notna().all(axis=1)
        ok = pd.Series(False, index=ledger.index)
        ok[scored] = real.keep({n: ledger.loc[scored, c].to_numpy(dtype=float) for n, c in zip(real.score_names, cols)})
        line = filters[name]
        assert int(line[1]) == scored.sum()  # score_all: every decoded sample was scored
        assert int(line[2]) == (ok & scored).sum()
        assert line[3] == f"{(ok & scored).sum() / scored.sum():.1%}"
        assert int(line[4]) == ((ledger["status"] == "rejected") & (ledger["reason"] == name)).sum()
    blur = ledger["blur_sharpness"].dropna().to_numpy()
    line = scores["blur_sharpness"]
    assert line[1] == "threshold=0.35"
    assert [float(x) for x in line[2:7]] == [float(f"{q:.4g}") for q in np.percentile(blur, [1, 10, 50, 90, 99])]
    assert scores["resolution_min_side"][1] == "min_side=100"
    # per-step time and images/s from the manifest's worker timings
    steps = rows_of(proc.stdout.split("Steps", 1)[1])
    assert int(steps["blur"][3]) == len(blur) and float(steps["blur"][4]) > 0


def test_not_a_build_folder_is_a_clear_error(report_build, tmp_path):
    out, _, _ = report_build
    proc = filter_report(out / "shards", check_rc=2, subprocess_run=True)  # the installed command
    assert "not a build_dataset output folder" in proc.stderr and "no ledger/" in proc.stderr and "_state.json" in proc.stderr
    proc = filter_report(tmp_path / "nowhere", check_rc=2)
    assert "does not exist" in proc.stderr


def test_unfinished_build_says_which_units_are_done(build_copy):
    """A killed (or still running) build: no manifest, some ledgers missing, partial files left."""
    (build_copy / "manifest.json").unlink()
    (build_copy / "ledger" / "00007.parquet").unlink()
    (build_copy / "ledger" / "00006.parquet").rename(build_copy / "ledger" / "00006.parquet.1234.tmp")
    build = load_build(build_copy)
    assert not build.finished and build.units_planned == 8 and len(build.units_done) == 6
    proc = filter_report(build_copy)
    assert "NOT finished" in proc.stdout and "6 of 8 units done" in proc.stdout and "in progress: 00006" in proc.stdout
    kept = int(rows_of(proc.stdout.split("Counts", 1)[1])["kept"][1])
    assert kept == (ledger_of(build_copy)["status"] == "kept").sum()  # counts cover the finished units only


def test_annotations_steps_and_caption_lengths(build_copy):
    written = annotate_copy(build_copy)
    proc = filter_report(build_copy)
    steps = rows_of(proc.stdout.split("Steps (manifest steps)", 1)[1].split("Captions and annotations", 1)[0])
    manifest = json.loads((build_copy / "manifest.json").read_text())
    for name, st in manifest["steps"].items():
        assert float(steps[name][1]) == st["busy_s"] and int(steps[name][3]) == st["images"]
    assert "idle s" in proc.stdout
    words = [len(a["fused"]["text"].split()) for a in written.values()]
    line = re.search(r"caption words \(training caption\)\s+(\d+)\s+([\d.]+)", proc.stdout)
    assert line and int(line.group(1)) == len(words) and float(line.group(2)) == round(float(np.mean(words)), 1)
    assert re.search(rf"objects detected\s+{len(written)}\s", proc.stdout)
