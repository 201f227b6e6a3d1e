"""Captions through the real pipeline: every annotator runs in the model pool (tiny
detector and captioner saved and loaded by path like a user's weights; the real OCR),
the words of a sign in a real photo reach the sample's caption, the ledger gets the
caption figures, and `python -m annotate.refuse` rewrites the captions of the finished
build without any model."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import pytest
import webdataset as wds

from demo.inputs import with_shop_sign
from filter_dev.photos import load_rgb, skimage_photos
from pipeline.ledger import read_ledger
from pipeline.runner import run_build
from tests.annotate.tiny_models import save_tiny_blip, save_tiny_yolo
from tests.pipeline.conftest import workflow


def _samples(out) -> dict:
    return {json.loads(s["json"])["source"]["path"].split("/")[-1]: s
            for tar in sorted((out / "shards").glob("*.tar")) for s in wds.WebDataset(str(tar), shardshuffle=False)}


@pytest.fixture(scope="module")
def built(ray_session, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("captions")
    folder = tmp / "images"
    folder.mkdir()
    photos = {p.name: p for p in skimage_photos()}
    coffee = load_rgb(photos["coffee.png"])
    cv2.imwrite(str(folder / "shop_sign.png"), cv2.cvtColor(with_shop_sign(coffee), cv2.COLOR_RGB2BGR))
    for name in ("chelsea.png", "astronaut.png"):
        cv2.imwrite(str(folder / name), cv2.cvtColor(load_rgb(photos[name]), cv2.COLOR_RGB2BGR))
    cfg = workflow(
        [{"type": "folder", "path": str(folder)}],
        images={"image_size": 512},
        filters={"blur": {"enabled": False}, "text": {"enabled": True, "device": "cpu"}},
        annotate={
            "objects": {"enabled": True, "weights": str(save_tiny_yolo(tmp / "tiny-yolo.pt")), "device": "cpu"},
            "caption": {"enabled": True, "model": str(save_tiny_blip(tmp / "tiny-blip")), "max_new_tokens": 5,
                        "num_beams": 1, "device": "cpu"},
            "ocr": {"enabled": True, "device": "cpu"},
            "fused": {"enabled": True},
        },
        ray={"model_actors": 1},
    )
    out = tmp / "out"
    manifest = run_build(cfg, out, show_progress=False)
    return manifest, out


def test_every_annotator_ran_in_the_pool_and_the_sign_is_in_the_caption(built):
    manifest, out = built
    assert manifest["counts"]["status"]["kept"] == 3, manifest["counts"]
    for name in ("objects", "caption", "ocr"):
        assert manifest["steps"][name]["pool"] == "model" and manifest["steps"][name]["images"] == 3
    assert manifest["steps"]["fused"]["pool"] == "cpu"
    samples = _samples(out)
    sign = samples["shop_sign.png"]
    ann = json.loads(sign["json"])["annotations"]
    assert set(ann) == {"objects", "caption", "ocr", "fused"}
    assert ann["objects"]["model"].endswith("tiny-yolo.pt") and ann["caption"]["text"]
    assert ann["ocr"]["boxes_from"] == "text_filter"  # recognised in the text filter's boxes, no second detection
    caption = sign["txt"].decode()
    assert caption == ann["fused"]["text"]
    assert "BAKERY" in caption.upper() and "OPEN" in caption.upper(), caption
    # a folder source has no alt text: the model caption leads, then objects, then the sign
    assert caption.lower().startswith(ann["caption"]["text"].lower().rstrip(".")[:10]), caption
    assert caption.index("with the text") > 0


def test_ledger_has_the_caption_figures(built):
    _, out = built
    ledger = read_ledger(out).to_pandas().set_index(read_ledger(out).to_pandas()["source"].str.split("/").str[-1])
    sign = ledger.loc["shop_sign.png"]
    assert sign["ocr_words"] >= 2 and sign["caption_words"] == len(_samples(out)["shop_sign.png"]["txt"].split())
    assert (ledger["object_count"] >= 0).all()


def test_refuse_rewrites_the_captions_without_models(built):
    _, out = built
    before = {k: s["txt"].decode() for k, s in _samples(out).items()}
    proc = subprocess.run([sys.executable, "-m", "annotate.refuse", str(out), "--template", "{ocr} | {alt}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    after = {k: s["txt"].decode() for k, s in _samples(out).items()}
    assert after != before
    assert after["shop_sign.png"].upper().startswith('WITH THE TEXT "BAKERY OPEN"'), after  # no alt text: " | {alt}" drops
    ledger = read_ledger(out).to_pandas()
    words = dict(zip(ledger["source"].str.split("/").str[-1], ledger["caption_words"]))
    assert words["shop_sign.png"] == len(after["shop_sign.png"].split())
