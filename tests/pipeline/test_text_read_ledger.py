"""The text filter's confirmation in a build: the ledger keeps the detected area, the
confirmed area and the words read, and the filter's keep() replays its verdicts from
those columns (what filter-report's what-if does)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from filter_dev.photos import load_texture
from filters.text import TextFilter
from pipeline.ledger import read_ledger
from pipeline.sources import plan_units
from pipeline.step_chain import build_chain
from pipeline.units import process_unit
from tests.pipeline.conftest import photo_folder, workflow


def test_ledger_keeps_areas_and_words(tmp_path):
    folder = photo_folder(tmp_path / "images", {"page.png"})
    Image.fromarray(load_texture("grace_hopper_stars")).save(folder / "stars.png")  # a flag's stars: boxed, unreadable
    cfg = workflow([{"type": "folder", "path": str(folder)}], images={"image_size": 512},
                   filters={"blur": {"enabled": False}, "text": {"enabled": True}})
    (unit,) = plan_units(cfg)
    out = tmp_path / "out"
    (out / "shards").mkdir(parents=True)
    (out / "ledger").mkdir()
    process_unit(unit, cfg, build_chain(cfg), out)
    ledger = read_ledger(out).to_pandas()
    ledger = ledger.set_index(ledger["source"].str.rsplit("/", n=1).str[-1])
    page, stars = ledger.loc["page.png"], ledger.loc["stars.png"]
    assert (page["status"], page["reason"], page["detail"]) == ("rejected", "text", "confirmed_area")
    assert "Region-based segmentation" in page["text_read"] and page["text_confirmed_area"] > 0.15
    assert stars["status"] == "kept" and stars["text_area_frac"] > 0.03
    assert stars["text_confirmed_area"] == 0 and stars["text_read"] == ""
    f = TextFilter()  # as filter-report builds it: never set up, no model
    scores = {n: ledger[f"text_{n}"].to_numpy(np.float64) for n in f.score_names}
    assert list(f.keep(scores)) == list(ledger["status"] == "kept")
