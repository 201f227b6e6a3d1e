"""Caption fusion on hand-made annotations: exact captions."""

import pytest

from annotate.figures import ledger_figures
from annotate.fuse import CaptionFuser, FusedConfig, fuse


def obj(label, box, conf=0.9):
    return {"label": label, "confidence": conf, "box": box}


LEFT, CENTER, RIGHT = [0.05, 0.4, 0.25, 0.6], [0.4, 0.4, 0.6, 0.6], [0.75, 0.4, 0.95, 0.6]
TOP_RIGHT, BOTTOM = [0.7, 0.0, 0.9, 0.2], [0.4, 0.8, 0.6, 1.0]
CAPTION = {"model": "blip", "text": "a storefront of a bakery."}


def text(alt, annotations, **cfg):
    return fuse(alt, annotations, FusedConfig(**cfg))["text"]


def test_alt_text_only_when_nothing_else_ran():
    assert text("Fresh bread daily.", {}) == "Fresh bread daily"
    assert text(None, {}) == ""


def test_zero_objects_adds_nothing():
    ann = {"caption": CAPTION, "objects": {"model": "yolo11n.pt", "items": []}}
    assert text("Fresh bread", ann) == "Fresh bread. A storefront of a bakery"


def test_one_object_with_position():
    ann = {"caption": CAPTION, "objects": {"items": [obj("dog", LEFT)]}}
    assert text("", ann) == "A storefront of a bakery, with a dog on the left"
    ann = {"objects": {"items": [obj("apple", TOP_RIGHT)]}}
    assert text("", ann) == "With an apple at the top right"


def test_many_objects_counted_grouped_and_placed():
    items = [obj("dog", LEFT), obj("dog", [0.1, 0.5, 0.3, 0.7], 0.8), obj("person", RIGHT, 0.7),
             obj("person", TOP_RIGHT, 0.6), obj("person", [0.8, 0.7, 0.95, 0.9], 0.5), obj("car", CENTER, 0.95),
             obj("bus", LEFT, 0.4), obj("bus", RIGHT, 0.3)]
    ann = {"caption": CAPTION, "objects": {"items": items}}
    assert text("Fresh bread", ann) == (
        "Fresh bread. A storefront of a bakery, with three people on the right, two dogs on the left, "
        "two buses and a car in the center")
    # positions off; at most two kinds of object named (most numerous, then most confident)
    assert text("", {"objects": {"items": items}}, object_positions=False, max_object_labels=2) == \
        "With three people and two dogs"
    assert text("", {"objects": {"items": [obj("cup", BOTTOM)] * 12}}) == "With 12 cups at the bottom"


def test_ocr_text_quoted_and_low_confidence_lines_dropped():
    ocr = {"model": "easyocr-en", "min_confidence": 0.5, "lines": [
        {"text": "JOE'S", "confidence": 0.9, "box": [0, 0, 1, 1]},
        {"text": '"BEST" PIZZA', "confidence": 0.7, "box": [0, 0, 1, 1]},
        {"text": "xq7#", "confidence": 0.2, "box": [0, 0, 1, 1]}]}
    ann = {"caption": CAPTION, "objects": {"items": [obj("dog", LEFT)]}, "ocr": ocr}
    assert text("Pizza night", ann) == (
        "Pizza night. A storefront of a bakery, with a dog on the left, with the text \"JOE'S 'BEST' PIZZA\"")
    assert ledger_figures({**ann, "fused": fuse("Pizza night", ann, FusedConfig())}) == {
        "caption_words": 19, "object_count": 1, "ocr_words": 3}
    # without fusion the training caption is the alt text
    assert ledger_figures(ann, alt="Pizza night") == {"caption_words": 2, "object_count": 1, "ocr_words": 3}
    assert ledger_figures(None) == {"caption_words": 0, "object_count": 0, "ocr_words": 0}


def test_parts_order_and_template():
    ann = {"caption": CAPTION, "objects": {"items": [obj("dog", LEFT)]},
           "ocr": {"min_confidence": 0.4, "lines": [{"text": "OPEN", "confidence": 0.9, "box": [0, 0, 1, 1]}]}}
    assert text("Fresh bread", ann, parts=["caption", "alt"]) == "A storefront of a bakery. Fresh bread"
    assert text("Fresh bread!", ann, parts=["alt", "ocr"]) == 'Fresh bread! With the text "OPEN"'
    assert text("Fresh bread", ann, template="{objects} in {caption}; {ocr}. Source: {alt}") == \
        'A dog on the left in a storefront of a bakery; with the text "OPEN". Source: Fresh bread'
    # an empty part takes the text just before it away with it
    assert text("", {"ocr": ann["ocr"]}, template="{caption}, with {objects}, {ocr}") == 'With the text "OPEN"'
    out = fuse("Fresh bread", {"caption": CAPTION}, FusedConfig())
    assert out["parts"] == ["alt", "caption"] and out["template"] == "{alt}. {caption}, with {objects}, {ocr}"


def test_length_caps_words_and_closes_quote():
    ann = {"caption": {"text": "one two three four five six"},
           "ocr": {"min_confidence": 0.0, "lines": [{"text": "ALPHA BETA GAMMA", "confidence": 0.9, "box": [0, 0, 1, 1]}]}}
    assert text("", ann, max_words=4) == "One two three four"
    assert text("", ann, max_words=10) == 'One two three four five six, with the text "ALPHA"'
    assert text("", ann, max_ocr_words=2) == 'One two three four five six, with the text "ALPHA BETA"'


def test_token_cap_with_a_tokenizer_by_path(tmp_path):
    from tests.annotate.tiny_models import _bert_tokenizer

    tok = _bert_tokenizer(tmp_path / "vocab")
    tok.save_pretrained(tmp_path / "tok")
    ann = {"caption": {"text": "a red car on the street with a man and a woman"}}
    # [CLS] + 6 words + [SEP] = 8 tokens (every word is one token in this vocabulary)
    assert text("", ann, tokenizer=str(tmp_path / "tok"), max_tokens=8) == "A red car on the street"
    with pytest.raises(RuntimeError, match="annotate.fused.tokenizer"):
        CaptionFuser.ready(FusedConfig(tokenizer=str(tmp_path / "missing")))


def test_fuser_step_reads_meta_and_rejects_bad_template():
    step = CaptionFuser.ready(FusedConfig(enabled=True))
    assert step.pool == "cpu"
    out = step.process([None], [{"caption": "Fresh bread", "annotations": {"caption": CAPTION}}])
    assert out[0]["text"] == "Fresh bread. A storefront of a bakery"
    with pytest.raises(ValueError, match=r"annotate.fused.template.*\{colour\}"):
        CaptionFuser.ready(FusedConfig(template="{caption} {colour}"))
