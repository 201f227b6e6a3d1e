"""The model filters plug into the pipeline through the registry alone: their scores
become ledger columns, their reasons ledger reasons, and the text filter's boxes land
in the sample's json for the OCR annotator to reuse."""

from __future__ import annotations

import pytest
import webdataset as wds

from pipeline.ledger import read_ledger
from pipeline.sources import plan_units
from pipeline.step_chain import build_chain
from pipeline.units import process_unit
from tests.pipeline.conftest import photo_folder, workflow

# text.png (slanted handwriting) is a known miss of the PP-OCR detector (bench/README.md, filters)
PHOTOS = {"astronaut.png": "kept", "coffee.png": "kept", "chelsea.png": "kept", "page.png": "text"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("models")
    folder = photo_folder(tmp / "images", PHOTOS)
    cfg = workflow(
        [{"type": "folder", "path": str(folder)}],
        images={"image_size": 512},
        filters={"resolution": {"min_side": 128}, "blur": {"enabled": False},
                 "nsfw": {"enabled": True}, "text": {"enabled": True}, "watermark": {"enabled": True}},
        score_all=True,
    )
    (unit,) = plan_units(cfg)
    out = tmp / "out"
    (out / "shards").mkdir(parents=True)
    (out / "ledger").mkdir()
    chain = build_chain(cfg)
    assert [f.name for f in chain.cpu_filters] == ["resolution"]
    assert [f.name for f in chain.pool.runner.filters] == ["watermark", "nsfw", "text"]
    process_unit(unit, cfg, chain, out)
    ledger = read_ledger(out).to_pandas()
    ledger["name"] = ledger["source"].str.rsplit("/", n=1).str[-1]
    return ledger.set_index("name"), out


def test_text_heavy_images_rejected_photos_kept(built):
    ledger, _ = built
    for name, expected in PHOTOS.items():
        row = ledger.loc[name]
        if expected == "kept":
            assert row["status"] == "kept", (name, row["reason"], row["detail"])
        else:
            # the watermark filter runs first but defers text-heavy images to the text filter
            assert row["status"] == "rejected" and row["reason"] == "text", (name, row.to_dict())
            assert row["text_area_frac"] > 0.03, (name, row["text_area_frac"])


def test_score_all_fills_every_model_column(built):
    ledger, _ = built
    for col in ("nsfw_prob", "watermark_prob", "text_area_frac", "text_boxes"):
        assert ledger[col].notna().all(), col
    assert (ledger["nsfw_prob"] < 0.5).all()  # scikit-image's photos are safe
    assert ledger.loc["page.png", "text_area_frac"] > 0.1 > ledger.loc["coffee.png", "text_area_frac"]


def test_text_boxes_travel_in_the_sample_json(built):
    _, out = built
    samples = {s["json"]["source"]["path"].rsplit("/", 1)[-1]: s["json"]
               for s in wds.WebDataset(str(out / "shards" / "00000.tar"), shardshuffle=False).decode()}
    assert set(samples) == {n for n, e in PHOTOS.items() if e == "kept"}
    for meta in samples.values():
        text = meta["filters"]["text"]
        assert isinstance(text["boxes"], list)
        assert all(len(b) == 4 and b[0] <= b[2] and b[1] <= b[3] for b in text["boxes"])
        assert meta["scores"]["text_boxes"] == len(text["boxes"])
