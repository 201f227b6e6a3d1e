"""Each filter's keep/reject decision, replayed on stored scores with the filter's OWN
`keep()` (filters/*.py), so the report and what-if can never drift from the build.

Model filters cannot be constructed without loading their model, and keep() only reads
the threshold fields of the filter's config, which the filters store under the same
names (`self.threshold`, `self.min_side`, ...). So a `FilterRule` makes a bare instance
of the filter class (no __init__, no model) carrying those config values, and calls its
keep() on the ledger's score columns.

A filter whose score names come from its config (`concepts`: one per concept) takes them
from the ledger's columns. A filter whose keep() needs state its __init__ derives (a
user's filter may) cannot be replayed that way. For it the verdict is read
from the ledger instead (rows kept or rejected by a later filter passed it, rows it
rejected failed it, rows that left earlier are unknown), and what-if refuses to change it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import ValidationError

from filters.base import Filter
from stages.registry import get_spec, list_stages

# Which config field is the threshold of which score, for filters with several scores
# (the others have one score and one `threshold`). Used to draw thresholds and to pick
# the images nearest them; the decision itself is always the filter's keep().
THRESHOLD_FIELDS = {
    "resolution": {"min_side": "min_side", "pixels": "min_pixels", "aspect_ratio": "max_aspect_ratio"},
    "text": {"area_frac": "threshold", "boxes": "max_boxes"},
    "watermark": {"prob": "threshold", "text_area": "defer_text_area"},
    "concepts": {"max": "threshold"},  # the default threshold; per-concept overrides stay as built
}


class WhatIfError(ValueError):
    """A bad --what-if setting; the message names it and what is allowed."""


def filter_class(name: str) -> type[Filter]:
    spec = get_spec(name)
    module = sys.modules[spec.build.__module__]
    found = [c for c in vars(module).values()
             if isinstance(c, type) and issubclass(c, Filter) and c is not Filter and c.name == name]
    if len(found) != 1:
        raise RuntimeError(f"filter {name}: expected one Filter class named {name!r} in {module.__name__}, found {len(found)}")
    return found[0]


@dataclass
class FilterRule:
    name: str
    params: dict  # the filter's config section, with any what-if overrides
    cls: type[Filter]
    score_names: tuple[str, ...] = ()  # the class's, or (dynamic ones) read from the ledger's columns
    later: tuple[str, ...] = ()  # the filters that run after this one

    @property
    def columns(self) -> list[str]:
        return [f"{self.name}_{n}" for n in self.score_names]

    @property
    def primary(self) -> str | None:
        return self.columns[0] if self.columns else None

    def threshold_fields(self) -> dict[str, str]:
        """score column -> config field holding its threshold."""
        default = {self.score_names[0]: "threshold"} if self.score_names else {}
        table = THRESHOLD_FIELDS.get(self.name, default)
        return {f"{self.name}_{s}": f for s, f in table.items() if s in self.score_names}

    @property
    def replayable(self) -> bool:
        """Whether the filter's keep() runs from its config alone (see the module doc)."""
        if not self.score_names:
            return False
        try:
            self.keep({n: np.zeros(1) for n in self.score_names})
        except (AttributeError, KeyError, TypeError):
            return False
        return True

    def threshold(self, column: str | None) -> float | None:
        field = self.threshold_fields().get(column)
        value = self.params.get(field) if field else None
        return None if value is None else float(value)

    def keep(self, scores: dict[str, np.ndarray]) -> np.ndarray:
        bare = self.cls.__new__(self.cls)  # no model: keep() reads only the threshold fields
        bare.__dict__.update(self.params)
        return np.asarray(bare.keep(scores), dtype=bool)

    def scored(self, ledger: pd.DataFrame) -> np.ndarray:
        """True where every score column of this filter is present (the filter ran on the row)."""
        if not all(c in ledger.columns for c in self.columns):
            return np.zeros(len(ledger), dtype=bool)
        return ledger[self.columns].notna().all(axis=1).to_numpy()

    def keep_rows(self, ledger: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(scored, keep) per ledger row; keep is meaningful only where scored."""
        if not self.replayable:
            return self._verdict_from_ledger(ledger)
        scored = self.scored(ledger)
        keep = np.ones(len(ledger), dtype=bool)
        if scored.any():
            sub = ledger.loc[scored, self.columns]
            keep[scored] = self.keep({n: sub[c].to_numpy(dtype=np.float64) for n, c in zip(self.score_names, self.columns)})
        return scored, keep


    def _verdict_from_ledger(self, ledger: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        status, reason = ledger["status"].to_numpy(), ledger["reason"].to_numpy()
        rejected_here = (status == "rejected") & (reason == self.name)
        passed = (status == "kept") | ((status == "rejected") & np.isin(reason, list(self.later)))
        return rejected_here | passed, ~rejected_here


def build_rules(config: dict, ledger_columns: list[str] | tuple = ()) -> list[FilterRule]:
    """The build's enabled filters, in run order, as rules. A filter class without fixed
    score names (they come from its config) takes them from the ledger's columns."""
    section = config.get("filters", {})
    rules = []
    for spec in list_stages("filter"):
        params = spec.config.model_validate(section.get(spec.name, {})).model_dump()
        if params.get("enabled", True):
            cls = filter_class(spec.name)
            names = tuple(cls.score_names) or tuple(c[len(spec.name) + 1:] for c in ledger_columns if c.startswith(f"{spec.name}_"))
            rules.append(FilterRule(spec.name, params, cls, names))
    order = [r.name for r in rules]
    for i, r in enumerate(rules):
        r.later = tuple(order[i + 1:])
    return rules


def apply_overrides(rules: list[FilterRule], settings: list[str]) -> list[FilterRule]:
    """`blur=0.3`, `watermark=0.7`, `resolution.min_side=300` -> new rules."""
    by_name = {r.name: r for r in rules}
    out = {r.name: FilterRule(r.name, dict(r.params), r.cls, r.score_names, r.later) for r in rules}
    for item in settings:
        target, eq, value = item.partition("=")
        name, _, field = target.strip().partition(".")
        if not eq or not name or not value.strip():
            raise WhatIfError(f"--what-if {item!r}: write FILTER=VALUE (its threshold) or FILTER.FIELD=VALUE, e.g. blur=0.3")
        if name not in by_name:
            known = [s.name for s in list_stages("filter")]
            why = "did not run in this build (not enabled), so the ledger has no scores for it" if name in known else "is not a filter"
            raise WhatIfError(f"--what-if {item!r}: {name!r} {why}; filters of this build: {', '.join(by_name)}")
        rule = out[name]
        if not rule.replayable:
            raise WhatIfError(f"--what-if {item!r}: {name}'s keep() needs state its model builds, so it cannot be replayed "
                              "from stored scores; rebuild with other thresholds instead")
        allowed = sorted(set(rule.threshold_fields().values()))
        field = field or "threshold"
        if field not in allowed:
            raise WhatIfError(f"--what-if {item!r}: {name} has no threshold field {field!r}; what-if can change "
                              + ", ".join(f"{name}.{f}" for f in allowed) + " (other settings change the scores themselves)")
        spec = get_spec(name)
        try:
            checked = spec.config.model_validate({**rule.params, field: value.strip()})
        except ValidationError as err:
            msg = "; ".join(e["msg"] for e in err.errors())
            raise WhatIfError(f"--what-if {item!r}: bad value for filters.{name}.{field}: {msg}") from None
        rule.params[field] = getattr(checked, field)
    return [out[r.name] for r in rules]
