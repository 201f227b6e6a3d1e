"""Filter steps in the step registry: validation, defaults, build order, pools."""

import pytest
from pydantic import ValidationError

from pipeline.config import FiltersConfig
from steps.registry import build_steps, list_steps


def test_order_cheapest_first_and_defaults():
    # the project's filters (tests/conftest.py also registers test-only steps)
    names = [s.name for s in list_steps("filter") if not s.__module__.startswith("tests.")]
    assert names[:3] == ["resolution", "caption_rules", "blur"] and {"watermark", "nsfw", "text"} <= set(names)
    cfg = FiltersConfig()
    # model filters are opt-in; the cheap ones stay on
    assert [n for n in names if getattr(cfg, n).enabled] == ["resolution", "blur"]
    assert [f.name for f in build_steps(cfg, "filter")] == ["resolution", "blur"]
    assert (cfg.nsfw.threshold, cfg.watermark.threshold, cfg.text.threshold) == (0.8, 0.8, 0.03)


def test_enabled_model_filters_build_in_order():
    cfg = FiltersConfig.model_validate({"watermark": {"enabled": True}, "nsfw": {"enabled": True, "device": "cpu"}})
    fs = build_steps(cfg, "filter")
    assert [f.name for f in fs] == ["resolution", "blur", "watermark", "nsfw"]
    cols = [f"{f.name}_{s}" for f in fs for s in f.score_names]
    assert "watermark_prob" in cols and "nsfw_prob" in cols
    # cheap filters run in the CPU workers, model filters in the model pool
    assert [f.pool for f in fs] == ["cpu", "cpu", "model", "model"]


@pytest.mark.parametrize("bad, field", [
    ({"text": {"treshold": 0.1}}, "treshold"),
    ({"nsfw": {"backend": "nudenet"}}, "backend"),
    ({"watermark": {"arch": "resnet"}}, "arch"),
    ({"watermark": {"device": "gpu"}}, "device"),
    ({"nsfw": {"threshold": 1.5}}, "threshold"),
    ({"ocr": {}}, "ocr"),
])
def test_bad_fields_rejected_naming_the_field(bad, field):
    with pytest.raises(ValidationError, match=field):
        FiltersConfig.model_validate(bad)
