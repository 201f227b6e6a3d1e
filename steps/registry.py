"""Steps register themselves by name, run order and pool, on the class.

A new filter or annotator is one file: its Step class, holding its pydantic config class
(`Config`, the workflow's `filters.NAME` or `annotate.NAME` section), decorated with
`@register_step(NAME, order=..., pool=...)`. Where steps are found (`discover()`):
- the modules each step package lists in its `STEP_MODULES` (filters/__init__.py,
  annotate/__init__.py): only those are imported, so training and data code elsewhere
  never loads in a build;
- any module named by the `ascan_t2i.steps` entry-point group (steps shipped by other packages);
- the modules listed in $ASCAN_T2I_STEPS (comma-separated; your own steps without
  packaging them: set it where the job starts, Ray workers inherit it).
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points

from pydantic import BaseModel

from steps.base import Step

STEP_PACKAGES = ("filters", "annotate")
ENTRY_POINT_GROUP = "ascan_t2i.steps"
MODULES_ENV = "ASCAN_T2I_STEPS"
POOLS = ("cpu", "model")


_REGISTRY: dict[str, type[Step]] = {}
_discovered = False


def register_step(name: str, *, order: int, pool: str = "model"):
    """Class decorator: registers a Filter or Annotator subclass under `name` (its workflow
    section and its ledger/json key), run `order` within its kind (cheap first; ties by
    name) and `pool` ("cpu": in the CPU workers; "model": in the model pool)."""
    if pool not in POOLS:
        raise ValueError(f"step {name}: pool must be 'cpu' or 'model', got {pool!r}")

    def wrap(cls: type[Step]) -> type[Step]:
        if not (isinstance(cls, type) and issubclass(cls, Step)) or cls.kind not in ("filter", "annotator"):
            raise TypeError(f"@register_step({name!r}) goes on a Filter or Annotator subclass, not {cls!r}")
        if "enabled" not in cls.Config.model_fields:
            raise TypeError(f"step {name}: {cls.Config.__name__} needs an `enabled` field (subclass FilterConfig or AnnotatorConfig)")
        old = _REGISTRY.get(name)
        if old is not None and old.__module__ != cls.__module__:
            raise ValueError(f"step name {name!r} registered twice ({old.__module__}, {cls.__module__})")
        cls.name, cls.order, cls.pool = name, order, pool
        check = getattr(cls, "check_declarations", None)
        if check is not None:
            check()
        _REGISTRY[name] = cls
        return cls

    return wrap


def _modules_to_import() -> list[str]:
    mods = []
    for package in STEP_PACKAGES:
        pkg = importlib.import_module(package)
        mods += [f"{package}.{m}" for m in pkg.STEP_MODULES]
    mods += [ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)]
    return mods


def discover() -> None:
    """Import every module that registers a step (once per process)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for name in _modules_to_import():
        importlib.import_module(name)
    for name in filter(None, (m.strip() for m in os.environ.get(MODULES_ENV, "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ImportError(f"${MODULES_ENV} names the step module {name!r}, which cannot be imported ({err}); "
                              "put its folder on PYTHONPATH or fix the name") from err


def list_steps(kind: str | None = None) -> list[type[Step]]:
    """Registered steps in run order."""
    discover()
    found = [c for c in _REGISTRY.values() if kind is None or c.kind == kind]
    return sorted(found, key=lambda c: (c.order, c.name))


def get_step(name: str) -> type[Step]:
    discover()
    if name not in _REGISTRY:
        raise KeyError(f"no step named {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def enabled_steps(section: BaseModel, kind: str, pool: str | None = None) -> list[type[Step]]:
    """The enabled steps of one workflow section (optionally of one pool), in run order."""
    return [s for s in list_steps(kind) if getattr(section, s.name).enabled and (pool is None or s.pool == pool)]


def build_steps(section: BaseModel, kind: str, warnings: list[str] | None = None, pool: str | None = None) -> list[Step]:
    """The enabled steps of one workflow section, set up (models load here).

    A step whose config says `required: false` and that cannot be set up (its model is
    not on this machine) is skipped; why is appended to `warnings`. Any other failure
    raises: a model that cannot be found stops the job at start-up, naming the setting.
    """
    out = []
    for cls in enabled_steps(section, kind, pool):
        sub = getattr(section, cls.name)
        try:
            out.append(cls.ready(sub))
        except Exception as err:  # noqa: BLE001 - optional steps may fail in any way
            if getattr(sub, "required", True):
                raise
            if warnings is not None:
                warnings.append(f"{cls.kind} {cls.name} skipped (required: false): {type(err).__name__}: {err}")
    return out


def section_config(kind: str, model_name: str) -> type[BaseModel]:
    """The pydantic model of a whole workflow section (`filters:` or `annotate:`): one
    optional field per registered step of that kind, unknown names rejected."""
    from pydantic import ConfigDict, create_model

    fields = {s.name: (s.Config, s.Config()) for s in list_steps(kind)}
    return create_model(model_name, __config__=ConfigDict(extra="forbid"), **fields)
