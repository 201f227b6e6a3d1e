"""filters.config / filters.registry: validation, defaults, build order."""

import pytest
from pydantic import ValidationError

from filters.config import FiltersConfig
from filters.registry import ORDER, build_filters


def test_order_cheapest_first_and_defaults():
    assert list(ORDER) == ["resolution", "blur", "watermark", "nsfw", "text"]
    cfg = FiltersConfig()
    # model filters are opt-in; the cheap ones stay on
    assert [n for n in ORDER if getattr(cfg, n).enabled] == ["resolution", "blur"]
    assert [f.name for f in build_filters(cfg)] == ["resolution", "blur"]
    assert (cfg.nsfw.threshold, cfg.watermark.threshold, cfg.text.threshold) == (0.8, 0.5, 0.03)


def test_enabled_model_filters_build_in_order():
    cfg = FiltersConfig.model_validate({"watermark": {"enabled": True}, "nsfw": {"enabled": True, "device": "cpu"}})
    fs = build_filters(cfg)
    assert [f.name for f in fs] == ["resolution", "blur", "watermark", "nsfw"]
    cols = [f"{f.name}_{s}" for f in fs for s in f.score_names]
    assert "watermark_prob" in cols and "nsfw_prob" in cols


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
