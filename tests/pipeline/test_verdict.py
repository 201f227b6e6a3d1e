"""The one verdict type: the first rejecting filter and the first failure decide, a
failure is never undone by a later (model pool) verdict, and statuses are the ledger's strings."""

from __future__ import annotations

import json

from pipeline.verdict import Status, Verdict


def test_first_reject_and_first_failure_win_and_a_failure_stays():
    v = Verdict()
    v.reject("blur", "sharpness 0.1 < 0.26")
    v.reject("text", "area_frac")  # score_all: a later filter only adds scores
    assert (v.status, v.reason, v.detail) == (Status.REJECTED, "blur", "sharpness 0.1 < 0.26")
    sent = v.copy()
    sent.scores["text_area_frac"] = 0.5
    sent.fail("filter_error", "watermark: RuntimeError: boom")
    sent.fail("annotator_error", "later")
    v.merge(sent)
    assert (v.status, v.reason, v.scores) == (Status.FAILED, "filter_error", {"text_area_frac": 0.5})
    v.merge(Verdict(Status.KEPT))  # nothing turns a failed sample back
    assert v.status == Status.FAILED and v.reason == "filter_error"


def test_fail_with_a_category_and_keep_only_from_pending():
    v = Verdict()
    v.fail_with("http_404: HTTP Error 404: Not Found")
    assert (v.reason, v.detail) == ("http_404", "HTTP Error 404: Not Found")
    w = Verdict()
    w.fail_with("the server said no")  # no one-word category
    assert (w.reason, w.detail) == ("error", "the server said no")
    k = Verdict()
    k.keep()
    v.keep()
    assert k.status == "kept" and v.status == "failed"  # the ledger's strings
    assert json.dumps({"status": k.status}) == '{"status": "kept"}'
