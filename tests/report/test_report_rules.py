"""The report decides keep/reject with each filter's own keep(): the same answers as the
filter built for a build, and no model needed."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.report.rules import FilterRule, filter_class
from stages.registry import get_spec, list_stages

RNG = np.random.default_rng(0)


def _scores(rule: FilterRule, n=200) -> dict[str, np.ndarray]:
    return {name: RNG.uniform(0, 2000 if name in ("laplacian_var", "min_side") else 1, n) * (1e6 if name == "pixels" else 1)
            for name in rule.score_names}


@pytest.mark.parametrize("name", ["resolution", "blur"])
def test_rule_matches_the_built_filter(name):
    spec = get_spec(name)
    cfg = spec.config()
    built = spec.build(cfg)  # cheap filters build without a model
    rule = FilterRule(name, cfg.model_dump(), filter_class(name))
    scores = _scores(rule)
    assert (rule.keep(scores) == built.keep(scores)).all()


@pytest.mark.parametrize("spec", list_stages("filter"), ids=lambda s: s.name)
def test_every_registered_filter_decides_from_its_config_alone(spec):
    """Catches a filter whose keep() reads something its config does not hold."""
    rule = FilterRule(spec.name, spec.config().model_dump(), filter_class(spec.name))
    keep = rule.keep(_scores(rule))
    assert keep.dtype == bool and keep.shape == (200,)
    if spec.build.__module__.startswith("filters."):  # the project's filters (tests register toy ones too)
        assert rule.threshold(rule.primary) is not None  # a threshold the report can draw
