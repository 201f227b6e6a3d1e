"""Build the enabled filters from a FiltersConfig, in cost order (cheapest first)."""

from __future__ import annotations

from filters.base import Filter
from filters.config import FiltersConfig


def _resolution(cfg):
    from filters.resolution import ResolutionFilter

    return ResolutionFilter(cfg.min_side, cfg.min_pixels, cfg.max_aspect_ratio)


def _blur(cfg):
    from filters.blur import BlurFilter

    return BlurFilter(cfg.threshold, cfg.analysis_side)


# name -> builder, in the order the pipeline runs them: metadata-only first, then cheap
# pixel filters, then model filters. A sample leaves at the first filter that rejects it.
ORDER = {
    "resolution": _resolution,
    "blur": _blur,
}


def build_filters(cfg: FiltersConfig) -> list[Filter]:
    """Instantiate the enabled filters (models load here, once per worker)."""
    out = []
    for name, build in ORDER.items():
        sub = getattr(cfg, name)
        if sub.enabled:
            out.append(build(sub))
    return out
