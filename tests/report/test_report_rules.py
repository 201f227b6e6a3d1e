"""The report decides keep/reject with each filter's own keep(): the same answers as the
filter built for a build, and no model needed."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.report.rules import FilterRule, build_rules, filter_class
from stages.registry import get_spec

RNG = np.random.default_rng(0)


def _scores(rule: FilterRule, n=200) -> dict[str, np.ndarray]:
    return {name: RNG.uniform(0, 2000 if name in ("laplacian_var", "min_side") else 1, n) * (1e6 if name == "pixels" else 1)
            for name in rule.score_names}


@pytest.mark.parametrize("name", ["resolution", "blur"])
def test_rule_matches_the_built_filter(name):
    spec = get_spec(name)
    cfg = spec.config()
    built = spec.build(cfg)  # cheap filters build without a model
    rule = FilterRule(name, cfg.model_dump(), filter_class(name), filter_class(name).score_names)
    scores = _scores(rule)
    assert (rule.keep(scores) == built.keep(scores)).all()


REPLAYED = ["resolution", "blur", "watermark", "nsfw", "text"]


@pytest.mark.parametrize("name", REPLAYED)
def test_filters_decide_from_their_config_alone(name):
    """Catches a filter whose keep() starts reading something its config does not hold."""
    spec = get_spec(name)
    cls = filter_class(name)
    rule = FilterRule(name, spec.config().model_dump(), cls, cls.score_names)
    assert rule.replayable
    keep = rule.keep(_scores(rule))
    assert keep.dtype == bool and keep.shape == (200,)
    assert rule.threshold(rule.primary) is not None  # a threshold the report can draw


def test_a_filter_that_cannot_be_replayed_reads_its_verdict_from_the_ledger():
    """`concepts` derives its score names and thresholds from its prompts in __init__."""
    import pandas as pd

    from pipeline.report.rules import WhatIfError, apply_overrides

    cols = ["concepts_violence", "concepts_max"]
    rules = build_rules({"filters": {"concepts": {"enabled": True}, "blur": {"enabled": True}, "text": {"enabled": True}}}, cols)
    (concepts,) = [r for r in rules if r.name == "concepts"]
    assert not concepts.replayable and concepts.score_names == ("violence", "max")
    ledger = pd.DataFrame({"status": ["kept", "rejected", "rejected", "rejected", "failed"],
                           "reason": ["", "concepts", "blur", "text", "timeout"]})
    scored, keep = concepts.keep_rows(ledger)
    assert scored.tolist() == [True, True, False, True, False]  # blur runs before it: unknown
    assert keep[scored].tolist() == [True, False, True]
    with pytest.raises(WhatIfError, match="cannot be replayed"):
        apply_overrides(rules, ["concepts=0.5"])
