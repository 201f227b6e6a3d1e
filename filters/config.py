"""Validated settings for every filter (the `filters:` section of a workflow YAML).

Pydantic models with `extra="forbid"`: an unknown or misspelt field fails before any
work starts, naming the field.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from filters.blur import DEFAULT_BLUR_THRESHOLD


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResolutionConfig(_Strict):
    enabled: bool = True
    min_side: int = Field(256, ge=0, description="reject if the original shorter side is smaller")
    min_pixels: int = Field(0, ge=0, description="reject if original width*height is smaller")
    max_aspect_ratio: float = Field(3.0, ge=1.0, description="reject if long side / short side is larger")


class BlurConfig(_Strict):
    enabled: bool = True
    threshold: float = Field(DEFAULT_BLUR_THRESHOLD, ge=0, description="reject if Laplacian variance is lower")
    analysis_side: int = Field(256, ge=16)


class FiltersConfig(_Strict):
    """One entry per filter. The pipeline runs them cheapest first (filters.registry.ORDER)."""

    resolution: ResolutionConfig = ResolutionConfig()
    blur: BlurConfig = BlurConfig()
