"""The one step contract: the register decorator declares name, order and pool once,
discovery imports each package's listed modules (and misses none), construction loads
nothing, and a bad declaration fails at import naming what to fix."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from pydantic import BaseModel

from annotate.base import Annotator
from filters.base import Filter
from steps.registry import _REGISTRY, STEP_PACKAGES, list_steps, register_step


def test_the_listed_modules_are_every_module_that_registers_a_step():
    listed = {c.name for c in list_steps()}
    for package in STEP_PACKAGES:
        pkg = importlib.import_module(package)
        for mod in pkgutil.walk_packages(pkg.__path__, f"{package}."):
            importlib.import_module(mod.name)
    unlisted = {name: c.__module__ for name, c in _REGISTRY.items() if name not in listed}
    assert not unlisted, f"modules that register steps but are not in their package's STEP_MODULES: {unlisted}"


@pytest.mark.parametrize("cls", list_steps(), ids=lambda c: c.name)
def test_every_step_declares_itself_once_and_builds_without_loading(cls):
    assert issubclass(cls, (Filter, Annotator)) and cls.pool in ("cpu", "model")
    step = cls(cls.Config())  # cheap: setup() loads the models
    assert step.cfg == cls.Config() and step.name == cls.name
    assert step.batch_size == getattr(cls.Config(), "batch_size", None)
    if issubclass(cls, Filter) and cls.__module__.startswith("filters."):
        assert set(cls.threshold_fields) <= set(step.score_names) and cls.threshold_fields


def test_bad_declarations_fail_naming_the_fix():
    class NoEnabled(BaseModel):
        x: int = 0

    with pytest.raises(ValueError, match="pool must be 'cpu' or 'model'"):
        register_step("t_pool", order=1, pool="gpu")
    with pytest.raises(TypeError, match="threshold_fields names 'cut', which is not a field"):
        @register_step("t_thr", order=1)
        class BadThreshold(Filter):
            score_names = ("x",)
            threshold_fields = {"x": "cut"}
    with pytest.raises(TypeError, match="NoEnabled needs an `enabled` field"):
        register_step("t_cfg", order=1)(type("NoEnabledFilter", (Filter,), {"Config": NoEnabled}))
    with pytest.raises(TypeError, match="goes on a Filter or Annotator subclass"):
        register_step("t_fn", order=1)(lambda cfg: None)
    with pytest.raises(ValueError, match="registered twice"):
        register_step("blur", order=1)(type("OtherBlur", (Filter,), {"__module__": "elsewhere"}))
    with pytest.raises(TypeError, match="BlurFilter takes a BlurConfig, got TextConfig"):
        from filters.blur import BlurFilter
        from filters.text import TextConfig

        BlurFilter(TextConfig())
    assert not {"t_pool", "t_thr", "t_fn", "t_cfg"} & set(_REGISTRY)
