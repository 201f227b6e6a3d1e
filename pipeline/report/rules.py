"""Each filter's keep/reject decision, replayed on stored scores with the filter's OWN
`keep()` (filters/*.py), so the report and what-if can never drift from the build.

A `FilterRule` holds a real instance of the filter, built from the build's config
section (plus any what-if overrides) and never set up: construction is cheap and loads
no model, and keep() decides from the scores and the config alone (steps/base.py). The
thresholds the report draws and what-if may change are the ones the filter declares
(`Filter.threshold_fields`).

A filter whose keep() reads state that setup() makes (a user's filter may) cannot be
replayed that way. For it the verdict is read from the ledger instead (rows kept or
rejected by a later filter passed it, rows it rejected failed it, rows that left earlier
are unknown), and what-if refuses to change it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import ValidationError

from filters.base import Filter
from steps.registry import list_steps


class WhatIfError(ValueError):
    """A bad --what-if setting; the message names it and what is allowed."""


@dataclass
class FilterRule:
    filter: Filter  # built from the config, not set up
    later: tuple[str, ...] = ()  # the filters that run after this one

    @property
    def name(self) -> str:
        return self.filter.name

    @property
    def params(self) -> dict:
        return self.filter.cfg.model_dump()

    @property
    def score_names(self) -> tuple[str, ...]:
        return tuple(self.filter.score_names)

    @property
    def columns(self) -> list[str]:
        return [f"{self.name}_{n}" for n in self.score_names]

    @property
    def primary(self) -> str | None:
        return self.columns[0] if self.columns else None

    def threshold_fields(self) -> dict[str, str]:
        """score column -> config field holding its threshold (the filter's declaration)."""
        return {f"{self.name}_{s}": f for s, f in self.filter.threshold_fields.items() if s in self.score_names}

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
        value = getattr(self.filter.cfg, field) if field else None
        return None if value is None else float(value)

    def keep(self, scores: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self.filter.keep(scores), dtype=bool)

    def with_config(self, cfg) -> FilterRule:
        return FilterRule(type(self.filter)(cfg), self.later)

    def scored(self, ledger: pd.DataFrame) -> np.ndarray:
        """True where every score column of this filter is present (the filter ran on the row),
        late scores aside (Filter.late_scores: none on a row that left before caption fusion)."""
        if not all(c in ledger.columns for c in self.columns):
            return np.zeros(len(ledger), dtype=bool)
        late = set(self.filter.late_scores)
        return ledger[[c for n, c in zip(self.score_names, self.columns) if n not in late]].notna().all(axis=1).to_numpy()

    def keep_rows(self, ledger: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(scored, keep) per ledger row; keep is meaningful only where scored."""
        if not self.replayable:
            return self._verdict_from_ledger(ledger)
        scored = self.scored(ledger)
        keep = np.ones(len(ledger), dtype=bool)
        if scored.any():
            sub = ledger.loc[scored, self.columns]
            keep[scored] = self.keep({n: sub[c].to_numpy(dtype=np.float64) for n, c in zip(self.score_names, self.columns)})
        if self.filter.late_details and "detail" in ledger.columns:  # rejected after the annotators: no score replays it
            late = ((ledger["status"] == "rejected") & (ledger["reason"] == self.name) & ledger["detail"].isin(self.filter.late_details)).to_numpy()
            keep[late] = False
        return scored, keep


    def _verdict_from_ledger(self, ledger: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        status, reason = ledger["status"].to_numpy(), ledger["reason"].to_numpy()
        rejected_here = (status == "rejected") & (reason == self.name)
        passed = (status == "kept") | ((status == "rejected") & np.isin(reason, list(self.later)))
        return rejected_here | passed, ~rejected_here


def build_rules(config: dict) -> list[FilterRule]:
    """The build's enabled filters, in run order, as rules."""
    section = config.get("filters", {})
    rules = []
    for cls in list_steps("filter"):
        cfg = cls.Config.model_validate(section.get(cls.name, {}))
        if cfg.enabled:
            rules.append(FilterRule(cls(cfg)))
    order = [r.name for r in rules]
    for i, r in enumerate(rules):
        r.later = tuple(order[i + 1:])
    return rules


def apply_overrides(rules: list[FilterRule], settings: list[str]) -> list[FilterRule]:
    """`blur=0.3`, `watermark=0.7`, `resolution.min_side=300` -> new rules."""
    out = {r.name: r for r in rules}
    for item in settings:
        target, eq, value = item.partition("=")
        name, _, field = target.strip().partition(".")
        if not eq or not name or not value.strip():
            raise WhatIfError(f"--what-if {item!r}: write FILTER=VALUE (its threshold) or FILTER.FIELD=VALUE, e.g. blur=0.3")
        if name not in out:
            known = [c.name for c in list_steps("filter")]
            why = "did not run in this build (not enabled), so the ledger has no scores for it" if name in known else "is not a filter"
            raise WhatIfError(f"--what-if {item!r}: {name!r} {why}; filters of this build: {', '.join(out)}")
        rule = out[name]
        if not rule.replayable:
            raise WhatIfError(f"--what-if {item!r}: {name}'s keep() needs state its setup() builds, so it cannot be replayed "
                              "from stored scores; rebuild with other thresholds instead")
        allowed = sorted(set(rule.threshold_fields().values()))
        field = field or "threshold"
        if field not in allowed:
            raise WhatIfError(f"--what-if {item!r}: {name} has no threshold field {field!r}; what-if can change "
                              + (", ".join(f"{name}.{f}" for f in allowed) or "none of its fields")
                              + " (other settings change the scores themselves)")
        try:
            cfg = type(rule.filter).Config.model_validate({**rule.params, field: value.strip()})
        except ValidationError as err:
            msg = "; ".join(e["msg"] for e in err.errors())
            raise WhatIfError(f"--what-if {item!r}: bad value for filters.{name}.{field}: {msg}") from None
        out[name] = rule.with_config(cfg)
    return [out[r.name] for r in rules]
