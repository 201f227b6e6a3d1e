"""The one stage contract: the register decorator declares name, order and pool once,
discovery imports each package's listed modules (and misses none), construction loads
nothing, and a bad declaration fails at import naming what to fix."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from pydantic import BaseModel

from annotate.base import Annotator
from filters.base import Filter
from stages.registry import _REGISTRY, STAGE_PACKAGES, list_stages, register_stage


def test_the_listed_modules_are_every_module_that_registers_a_stage():
    listed = {c.name for c in list_stages()}
    for package in STAGE_PACKAGES:
        pkg = importlib.import_module(package)
        for mod in pkgutil.walk_packages(pkg.__path__, f"{package}."):
            importlib.import_module(mod.name)
    unlisted = {name: c.__module__ for name, c in _REGISTRY.items() if name not in listed}
    assert not unlisted, f"modules that register stages but are not in their package's STAGE_MODULES: {unlisted}"


@pytest.mark.parametrize("cls", list_stages(), ids=lambda c: c.name)
def test_every_stage_declares_itself_once_and_builds_without_loading(cls):
    assert issubclass(cls, (Filter, Annotator)) and cls.pool in ("cpu", "model")
    stage = cls(cls.Config())  # cheap: setup() loads the models
    assert stage.cfg == cls.Config() and stage.name == cls.name
    assert stage.batch_size == getattr(cls.Config(), "batch_size", None)
    if issubclass(cls, Filter) and cls.__module__.startswith("filters."):
        assert set(cls.threshold_fields) <= set(stage.score_names) and cls.threshold_fields


def test_bad_declarations_fail_naming_the_fix():
    class NoEnabled(BaseModel):
        x: int = 0

    with pytest.raises(ValueError, match="pool must be 'cpu' or 'model'"):
        register_stage("t_pool", order=1, pool="gpu")
    with pytest.raises(TypeError, match="threshold_fields names 'cut', which is not a field"):
        @register_stage("t_thr", order=1)
        class BadThreshold(Filter):
            score_names = ("x",)
            threshold_fields = {"x": "cut"}
    with pytest.raises(TypeError, match="NoEnabled needs an `enabled` field"):
        register_stage("t_cfg", order=1)(type("NoEnabledFilter", (Filter,), {"Config": NoEnabled}))
    with pytest.raises(TypeError, match="goes on a Filter or Annotator subclass"):
        register_stage("t_fn", order=1)(lambda cfg: None)
    with pytest.raises(ValueError, match="registered twice"):
        register_stage("blur", order=1)(type("OtherBlur", (Filter,), {"__module__": "elsewhere"}))
    with pytest.raises(TypeError, match="BlurFilter takes a BlurConfig, got TextConfig"):
        from filters.blur import BlurFilter
        from filters.text import TextConfig

        BlurFilter(TextConfig())
    assert not {"t_pool", "t_thr", "t_fn", "t_cfg"} & set(_REGISTRY)
