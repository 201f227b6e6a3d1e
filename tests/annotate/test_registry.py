"""Annotators in the step registry: names = workflow sections = json keys, order, pools,
and an optional annotator whose model is missing is skipped with a warning."""

import pytest
from pydantic import ValidationError

from pipeline.config import AnnotateConfig
from steps.registry import build_steps, list_steps


def test_registered_in_order_off_by_default():
    # the project's own annotators (tests/steps_for_tests.py adds test-only ones)
    specs = [s for s in list_steps("annotator") if s.__module__.startswith("annotate.")]
    assert [(s.name, s.order) for s in specs] == [("objects", 10), ("caption", 20), ("ocr", 30), ("fused", 90)]
    cfg = AnnotateConfig()
    assert not any(getattr(cfg, s.name).enabled for s in specs)
    assert build_steps(cfg, "annotator") == []


def test_optional_missing_model_skipped_with_warning_required_one_raises():
    cfg = AnnotateConfig.model_validate({"caption": {"enabled": True, "required": False, "model": "/nowhere/blip"},
                                         "objects": {"enabled": True, "required": False, "weights": "/nowhere/y.pt"},
                                         "fused": {"enabled": True}})
    warnings = []
    steps = build_steps(cfg, "annotator", warnings)
    assert [s.name for s in steps] == ["fused"] and steps[0].pool == "cpu"
    assert len(warnings) == 2
    assert "annotate.objects.weights" in warnings[0] and "annotate.caption.model" in warnings[1]
    with pytest.raises(RuntimeError, match="annotate.caption.model"):
        build_steps(AnnotateConfig.model_validate({"caption": {"enabled": True, "model": "/nowhere/blip"}}), "annotator")


@pytest.mark.parametrize("bad, field", [
    ({"caption": {"beams": 2}}, "beams"),
    ({"objects": {"imgsz": 100}}, "imgsz"),
    ({"ocr": {"min_confidence": 2}}, "min_confidence"),
    ({"fused": {"parts": ["alt", "tags"]}}, "parts"),
    ({"tagger": {}}, "tagger"),
])
def test_bad_fields_rejected_naming_the_field(bad, field):
    with pytest.raises(ValidationError, match=field):
        AnnotateConfig.model_validate(bad)
