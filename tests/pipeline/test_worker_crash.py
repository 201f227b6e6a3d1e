"""A poison input costs only itself: when an item kills the worker process (here a
test step SIGKILLs it, standing in for a native decoder crash or the OOM killer),
the unit is retried, then split until that item is alone; it is written as
`failed: worker_crash` and every other item ends as it would have without it."""

from __future__ import annotations

import os

from filter_dev.hostile import PHOTO_NAMES
from pipeline.ledger import read_ledger
from pipeline.runner import run_build
from tests.pipeline.conftest import workflow, write_jsonl

POISON = "rocket.jpg"  # 640 px wide: the only served photo of that width


def test_poison_item_is_isolated_and_the_rest_kept(served, ray_session, tmp_path):
    server, photos = served
    names = [n for n in PHOTO_NAMES if n in photos]
    rows = [{"url": server.url(f"photos/{n}"), "caption": n} for n in names]
    urls = write_jsonl(tmp_path / "urls.jsonl", rows)
    cfg = workflow([{"type": "url_list", "path": str(urls)}],
                   output={"shard_size": len(rows)},  # one unit holds the poison and every good item
                   filters={"blur": {"enabled": False}, "kill_worker": {"enabled": True, "on_original_width": 640}},
                   ray={"num_workers": 1})
    manifest = run_build(cfg, tmp_path / "out", show_progress=False)
    ledger = read_ledger(tmp_path / "out").to_pandas()
    assert len(ledger) == len(rows) and ledger["key"].is_unique
    crashed = ledger[ledger["status"] == "failed"]
    assert list(crashed["reason"]) == ["worker_crash"], crashed[["source", "detail"]].to_string()
    assert os.path.basename(crashed["source"].iloc[0]) == POISON
    assert "died twice" in crashed["detail"].iloc[0]
    assert (ledger[ledger["status"] != "failed"]["status"] == "kept").all()
    assert manifest["counts"]["status"] == {"kept": len(rows) - 1, "rejected": 0, "failed": 1}
    assert any("worker_crash" in e for e in manifest["worker_errors"])
    assert len(manifest["worker_deaths"]) >= 4  # whole twice, then halves down to the poison item, twice
    # the unit was written once, in input order
    assert list(ledger["key"]) == sorted(ledger["key"], key=list(ledger["key"]).index)
