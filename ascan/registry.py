"""Registry of named variants (timm style).

A variant is a function returning a config dataclass, decorated with `register_model`.
`create_model(name, **overrides)` replaces config fields and builds `cfg.model_cls`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import fields, replace

import torch

_VARIANTS: dict[str, Callable] = {}


def register_model(fn: Callable) -> Callable:
    if fn.__name__ in _VARIANTS:
        raise ValueError(f"variant {fn.__name__!r} registered twice")
    _VARIANTS[fn.__name__] = fn
    return fn


def list_models(pattern: str = "*", kind: str | None = None) -> list[str]:
    """Registered names matching a glob; kind 'classifier' or 'unet' filters by model type."""
    names = sorted(n for n in _VARIANTS if fnmatch.fnmatch(n, pattern))
    if kind is not None:
        names = [n for n in names if get_config(n).kind == kind]
    return names


def get_config(name: str, **overrides):
    if name not in _VARIANTS:
        raise KeyError(f"unknown AsCAN variant {name!r}; known: {', '.join(sorted(_VARIANTS))}")
    cfg = _VARIANTS[name]()
    known = {f.name for f in fields(cfg)}
    bad = set(overrides) - known
    if bad:
        raise TypeError(f"{name}: unknown config field(s) {sorted(bad)}; fields are {sorted(known)}")
    return replace(cfg, **overrides)


def create_model(name: str, device: str | torch.device | None = None, **overrides) -> torch.nn.Module:
    """Build a variant. `device='meta'` builds without allocating (for counting params)."""
    cfg = get_config(name, **overrides)
    if device is None:
        return cfg.model_cls(cfg)
    with torch.device(device):
        return cfg.model_cls(cfg)
