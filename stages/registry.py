"""Stages register themselves by name, with their config section and run order.

A new filter or annotator is one file: its Stage class, a pydantic config class for its
section of the workflow (`filters.NAME` or `annotate.NAME`) and a builder decorated with
`@register_stage(...)`. Nothing central lists them: `discover()` imports every module
of the `filters` and `annotate` packages that registers a stage, any module named by
the `ascan_t2i.stages` entry-point group (stages shipped by other packages), and the
modules listed in $ASCAN_T2I_STAGES (comma-separated; your own stages without packaging
them: set it where the job starts, Ray workers inherit it).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib.metadata import entry_points
from pathlib import Path

from pydantic import BaseModel

from stages.base import Stage

STAGE_PACKAGES = ("filters", "annotate")
ENTRY_POINT_GROUP = "ascan_t2i.stages"
MODULES_ENV = "ASCAN_T2I_STAGES"


@dataclass(frozen=True)
class StageSpec:
    name: str
    kind: str  # "filter" | "annotator": the workflow section it is configured in
    config: type[BaseModel]  # every field has a default; `enabled` switches it on
    build: Callable[[BaseModel], Stage]
    order: int  # run order within its kind (cheap first); ties broken by name
    pool: str = "model"  # "cpu": runs in the CPU workers; "model": in the model pool


_REGISTRY: dict[str, StageSpec] = {}
_discovered = False


def register_stage(name: str, kind: str, config: type[BaseModel], order: int, pool: str = "model"):
    """Decorator for a builder `fn(config) -> Stage`. `pool` says where the stage runs,
    known before it is built (building a model stage loads its model)."""
    if kind not in ("filter", "annotator"):
        raise ValueError(f"stage {name}: kind must be 'filter' or 'annotator', got {kind!r}")
    if pool not in ("cpu", "model"):
        raise ValueError(f"stage {name}: pool must be 'cpu' or 'model', got {pool!r}")

    def wrap(build):
        old = _REGISTRY.get(name)
        if old is not None and old.build.__module__ != build.__module__:
            raise ValueError(f"stage name {name!r} registered twice ({old.build.__module__}, {build.__module__})")
        _REGISTRY[name] = StageSpec(name, kind, config, build, order, pool)
        return build

    return wrap


def discover() -> None:
    """Import every module that registers a stage (once per process)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for package in STAGE_PACKAGES:
        pkg = importlib.import_module(package)
        for mod in pkgutil.iter_modules(pkg.__path__):
            path = Path(pkg.__path__[0]) / f"{mod.name}.py"
            # Only modules that register stages: training and synthesis helpers in the
            # same packages import torch and friends at import time, and are not stages.
            if path.is_file() and "@register_stage(" in path.read_text(encoding="utf-8"):
                importlib.import_module(f"{package}.{mod.name}")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        importlib.import_module(ep.value)
    for name in filter(None, (m.strip() for m in os.environ.get(MODULES_ENV, "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ImportError(f"${MODULES_ENV} names the stage module {name!r}, which cannot be imported ({err}); "
                              "put its folder on PYTHONPATH or fix the name") from err


def list_stages(kind: str | None = None) -> list[StageSpec]:
    """Registered stages in run order."""
    discover()
    specs = [s for s in _REGISTRY.values() if kind is None or s.kind == kind]
    return sorted(specs, key=lambda s: (s.order, s.name))


def get_spec(name: str) -> StageSpec:
    discover()
    if name not in _REGISTRY:
        raise KeyError(f"no stage named {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def enabled_specs(section: BaseModel, kind: str, pool: str | None = None) -> list[StageSpec]:
    """The enabled stages of one workflow section (optionally of one pool), in run order."""
    return [s for s in list_stages(kind) if getattr(section, s.name).enabled and (pool is None or s.pool == pool)]


def build_stages(section: BaseModel, kind: str, warnings: list[str] | None = None, pool: str | None = None) -> list[Stage]:
    """Instantiate the enabled stages of one workflow section (models load here).

    A stage whose config says `required: false` and that cannot be built (its model is
    not on this machine) is skipped; why is appended to `warnings`. Any other failure
    raises: a model that cannot be found stops the job at start-up, naming the setting.
    """
    out = []
    for spec in enabled_specs(section, kind, pool):
        sub = getattr(section, spec.name)
        try:
            stage = spec.build(sub)
            stage.resources = replace(stage.resources, pool=spec.pool)
            out.append(stage)
        except Exception as err:  # noqa: BLE001 - optional stages may fail in any way
            if getattr(sub, "required", True):
                raise
            if warnings is not None:
                warnings.append(f"{spec.kind} {spec.name} skipped (required: false): {type(err).__name__}: {err}")
    return out


def section_config(kind: str, model_name: str) -> type[BaseModel]:
    """The pydantic model of a whole workflow section (`filters:` or `annotate:`): one
    optional field per registered stage of that kind, unknown names rejected."""
    from pydantic import ConfigDict, create_model

    fields = {s.name: (s.config, s.config()) for s in list_stages(kind)}
    return create_model(model_name, __config__=ConfigDict(extra="forbid"), **fields)
