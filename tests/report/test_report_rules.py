"""The report decides keep/reject with each filter's own keep(): the same answers as the
filter built for a build, and no model needed."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.report.rules import FilterRule, build_rules
from steps.registry import get_step

RNG = np.random.default_rng(0)


def _scores(rule: FilterRule, n=200) -> dict[str, np.ndarray]:
    return {name: RNG.uniform(0, 2000 if name in ("laplacian_var", "min_side") else 1, n) * (1e6 if name == "pixels" else 1)
            for name in rule.score_names}


@pytest.mark.parametrize("name", ["resolution", "blur"])
def test_rule_matches_the_built_filter(name):
    cls = get_step(name)
    built = cls.ready()  # cheap filters set up without a model
    rule = FilterRule(cls(cls.Config()))
    scores = _scores(rule)
    assert (rule.keep(scores) == built.keep(scores)).all()


REPLAYED = ["resolution", "blur", "watermark", "nsfw", "text"]  # concepts: below (score names from its config)


@pytest.mark.parametrize("name", REPLAYED)
def test_filters_decide_from_their_config_alone(name):
    """Catches a filter whose keep() starts reading something its config does not hold,
    or that loads a model when constructed (the report builds real instances)."""
    cls = get_step(name)
    rule = FilterRule(cls(cls.Config()))  # no setup(): no model
    assert rule.replayable
    keep = rule.keep(_scores(rule))
    assert keep.dtype == bool and keep.shape == (200,)
    assert rule.threshold(rule.primary) is not None  # a threshold the report can draw


def test_concepts_replay_from_ledger_columns():
    """`concepts` has one score per concept of its config: the rule's instance takes them
    from the build's config and replays the default threshold and per-concept overrides."""
    from pipeline.report.rules import apply_overrides

    prompts = {"violence": ["a photo of violence"], "gore": ["a photo of gore"]}
    cfg = {"filters": {"concepts": {"enabled": True, "prompts": prompts, "thresholds": {"gore": 0.99}}, "blur": {"enabled": True}}}
    (concepts,) = [r for r in build_rules(cfg) if r.name == "concepts"]
    assert concepts.replayable and concepts.score_names == ("violence", "gore", "max")
    scores = {"violence": np.array([0.9, 0.1, 0.5]), "gore": np.array([0.1, 0.95, 0.5]), "max": np.array([0.9, 0.95, 0.5])}
    assert concepts.keep(scores).tolist() == [False, True, True]  # gore 0.95 < its own 0.99
    (looser,) = [r for r in apply_overrides(build_rules(cfg), ["concepts=0.4"]) if r.name == "concepts"]
    assert looser.keep(scores).tolist() == [False, True, False]


def test_a_filter_that_cannot_be_replayed_reads_its_verdict_from_the_ledger():
    """A (user's) filter whose keep() reads state its setup() makes."""
    import pandas as pd

    from filters.base import Filter, FilterConfig
    from pipeline.report.rules import WhatIfError, apply_overrides

    class DerivedConfig(FilterConfig):
        threshold: float = 0.5

    class DerivedCut(Filter):
        Config = DerivedConfig
        name = "derived"
        score_names = ("x",)
        threshold_fields = {"x": "threshold"}

        def setup(self):
            self._cut = self.cfg.threshold * 2  # derived when set up: not a config field

        def keep(self, scores):
            return scores["x"] < self._cut

    rule = FilterRule(DerivedCut(DerivedConfig(enabled=True)), later=("text",))
    assert not rule.replayable
    ledger = pd.DataFrame({"status": ["kept", "rejected", "rejected", "rejected", "failed"],
                           "reason": ["", "derived", "blur", "text", "timeout"]})
    scored, keep = rule.keep_rows(ledger)
    assert scored.tolist() == [True, True, False, True, False]  # blur ran before it: unknown
    assert keep[scored].tolist() == [True, False, True]
    with pytest.raises(WhatIfError, match="cannot be replayed"):
        apply_overrides([rule], ["derived=0.5"])
