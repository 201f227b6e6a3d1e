"""What-if from stored scores equals a real re-run with those thresholds."""

from __future__ import annotations

import pytest

from pipeline.report.load import load_build
from pipeline.report.rules import WhatIfError, apply_overrides, build_rules
from pipeline.report.whatif import what_if
from tests.report.conftest import FILTERS, build, filter_report

NEW = {"resolution": {"min_side": 200}, "blur": {"threshold": 0.25}, "watermark": {"enabled": True, "threshold": 0.3}}
NEW_ARGS = ["resolution.min_side=200", "blur=0.25", "watermark=0.3"]
OLD_ARGS = ["resolution.min_side=100", "blur=0.35", "watermark=0.5"]


@pytest.fixture(scope="module")
def rerun(report_build, tmp_path_factory):
    """The same inputs built again with the NEW thresholds, score_all off."""
    _, _, rows = report_build
    out = tmp_path_factory.mktemp("whatif") / "out"
    build(rows, out, filters=NEW, score_all=False)
    return out


def _predict(out, args):
    b = load_build(out)
    w = what_if(b.ledger, apply_overrides(build_rules(b.config), args), b.config.get("dedup"))
    return b.ledger, w


def _counts(ledger):
    return ledger.groupby(["status", "reason"]).size().to_dict()


def test_what_if_equals_a_real_rerun(report_build, rerun):
    out, _, _ = report_build
    ledger, w = _predict(out, NEW_ARGS)
    assert w["unknown"] == 0  # score_all: every row scored by every filter
    truth = load_build(rerun).ledger.set_index("key")
    predicted = ledger.assign(new_status=w["new_status"], new_reason=w["new_reason"]).set_index("key")
    assert (predicted["new_status"] == truth.loc[predicted.index, "status"]).all()
    assert (predicted["new_reason"] == truth.loc[predicted.index, "reason"]).all()
    changed = (predicted["new_status"] != predicted["status"]) | (predicted["new_reason"] != predicted["reason"])
    assert changed.sum() >= 5  # the thresholds really moved samples between reasons
    table = {(r["status"], r["reason"]): r["low"] for r in w["rows"] if r["exact"]}
    for (status, reason), n in _counts(truth.reset_index()).items():
        assert table[(status, reason if status != "kept" else "")] == n
    # and the command line prints the same counts
    proc = filter_report(out, "--what-if", *NEW_ARGS)
    lines = {ln.split()[0]: ln.split() for ln in proc.stdout.splitlines() if ln.strip()}
    assert int(lines["kept"][2]) == (truth["status"] == "kept").sum()
    assert int(lines["blur"][2]) == ((truth["status"] == "rejected") & (truth["reason"] == "blur")).sum()
    assert "exact" in proc.stdout


def test_unscored_samples_give_bounds_that_hold(report_build, rerun):
    """From the score_all-off re-run back to the first thresholds: samples the re-run
    rejected at resolution were never scored by blur or watermark -> bounds."""
    out, _, _ = report_build
    ledger, w = _predict(rerun, OLD_ARGS)
    truth = load_build(out).ledger
    assert w["unknown"] > 0 and "blur" in w["unknown_at"]
    for r in w["rows"]:
        if r["status"] == "kept":
            n = (truth["status"] == "kept").sum()
        elif not r["reason"]:
            n = (truth["status"] == r["status"]).sum()
        else:
            n = ((truth["status"] == r["status"]) & (truth["reason"] == r["reason"])).sum()
        assert r["low"] <= n <= r["high"], r
    known = w["new_status"] != "unknown"
    t = truth.set_index("key").loc[ledger["key"][known]]
    assert (t["status"].to_numpy() == w["new_status"][known]).all()  # exact where scored
    proc = filter_report(rerun, "--what-if", *OLD_ARGS)
    assert f"{w['unknown']} samples were never scored" in proc.stdout and ".." in proc.stdout


def test_what_if_settings_are_checked(report_build):
    out, _, _ = report_build
    b = load_build(out)
    rules = build_rules(b.config)
    for bad, says in [("blurr=3", "is not a filter"), ("nsfw=0.5", "did not run in this build"), ("blur=abc", "valid number"),
                      ("watermark=1.5", "less than or equal to 1"), ("resolution=5", "resolution.min_side"),
                      ("blur.analysis_side=64", "change the scores"), ("blur", "FILTER=VALUE")]:
        with pytest.raises(WhatIfError, match=says.replace(".", r"\.")):
            apply_overrides(rules, [bad])
    proc = filter_report(out, "--what-if", "blurr=3", check_rc=2)
    assert "'blurr' is not a filter" in proc.stderr
    assert FILTERS["blur"]["threshold"] == 0.35  # the build's own thresholds are untouched


def test_semantic_pairs_replay_from_dedup_parquet():
    """With dedup.semantic, what-if joins the build's semantic pairs (no other row has a
    stored embedding): the copy goes while its kept row stays, and comes back without it."""
    import numpy as np
    import pandas as pd

    from pipeline.report.whatif import replay_dedup

    ledger = pd.DataFrame({"key": ["a", "b", "c"], "pixel_hash": ["1", "2", "3"],
                           "phash": ["0000000000000000", "ffffffffffffffff", "00000000ffffffff"],
                           "original_width": [100, 50, 80], "original_height": [100, 50, 80]})
    pairs = pd.DataFrame({"key": ["b"], "kept_key": ["a"], "kind": ["semantic"], "distance": [64], "similarity": [0.99]})
    dedup = {"max_distance": 8, "near": True, "semantic": True}
    assert replay_dedup(ledger, np.ones(3, bool), dedup, pairs).tolist() == [False, True, False]
    assert replay_dedup(ledger, np.array([False, True, True]), dedup, pairs).tolist() == [False, False, False]
    assert not replay_dedup(ledger, np.ones(3, bool), {**dedup, "semantic": False}, pairs).any()
