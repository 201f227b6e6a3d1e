"""Watermark filter: probability that an image carries a visible watermark.

Two architectures, one score (`prob`, 0..1, reject at or above `threshold`):

- "default": `WatermarkNet` (filters/watermark_net.py), a small CNN this project trains itself on CPU (about 50 min on
  2 cores: `python -m filter_dev.watermark_train`, synthetic watermarks over real photos; see
  filter_dev/synth/watermarks.py). Its weights ship in the repository
  (filters/weights/watermark_default.safetensors, config + held-out metrics in the .json
  beside it). Input: the image squashed to `input_size` square (cv2 INTER_AREA),
  ImageNet mean/std; one logit, P = sigmoid.
- "laion": LAION-5B's watermark detector architecture (timm `efficientnet_b3a`, i.e.
  efficientnet_b3, with the 1536-625-256-2 MLP head); load its published
  `watermark_model_v1.pt` (or a safetensors copy) with `model_path`. Input: 256x256
  bilinear resize, ImageNet mean/std; P(watermark) = softmax(logits)[:, 0].

Default threshold 0.8: on the trainer's held-out photos with held-out mark styles it rejects
2.5 % of clean views (0.7: 3.5 %) for a recall of 0.76 (0.82); on 19 real photos from a source
the model never saw (bench/README.md) 0.8 rejects none of them, 0.7 one (a circuit board's
printed labels, P 0.76). What fires closest: dense printed text on objects (a circuit
board, a cereal box) and fur, which look like marks to this model. For "laion" HELM uses
0.8 because that model also fires on ordinary text.

Text images are the text filter's call, not this one's (`defer_text_area`, default 0.03,
the text filter's own threshold): the watermark model fires on ANY text, so a page, a
poster or a meme would otherwise be rejected here as `watermark` (it runs before the text
filter), and a user who turns the text filter off to keep text images would still lose
them. So this filter never rejects an image whose detected text covers more than
`defer_text_area` of it: with the text filter on such an image is rejected as `text`,
with it off it is kept, whatever the order the filters run in. The text boxes are
computed once per image (filters/text.py `detect_text`: whichever filter runs first
detects, the other reuses `filter_outputs["text"]`). The price: a watermark whose text
covers more than 3 % of the image (a big centred or tiled mark) is rejected as `text`
when the text filter is on, and kept when it is off (bench/README.md measures how many).
Text means text the text filter's recogniser confirms (filters/text.py: its boxes are read
where the detected area is over `defer_text_area`), so a watermarked photo of sand ripples
whose texture makes detector boxes is still judged by the model.
Ledger columns: `watermark_prob` (the model's raw probability), `watermark_text_area`
(the confirmed text's share of the image where P >= threshold; 0 where the model did not
fire, because text is only looked for where it could change the verdict: read the text
filter's `text_confirmed_area` for the text itself).
"""

from __future__ import annotations

import os
from typing import Literal

import numpy as np
from pydantic import Field

from filters.base import DEVICE_FIELD, Filter, FilterConfig
from steps.devices import model_load_error, require_file, torch_device
from steps.precision import autocast, autocast_dtype
from steps.registry import register_step

DEFAULT_WATERMARK_THRESHOLD = 0.8  # see the module docstring
DEFAULT_DEFER_TEXT_AREA = 0.03  # = the text filter's default threshold
WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
DEFAULT_WEIGHTS = os.path.join(WEIGHTS_DIR, "watermark_default.safetensors")
_SETTING = "filters.watermark"


class WatermarkConfig(FilterConfig):
    enabled: bool = False
    threshold: float = Field(DEFAULT_WATERMARK_THRESHOLD, ge=0, le=1, description="reject if P(watermark) >= threshold")
    arch: Literal["default", "laion"] = Field("default", description="default = the project's WatermarkNet; laion = LAION's detector")
    model_path: str | None = Field(None, description="weights; unset = filters/weights/watermark_default.safetensors (arch default only)")
    device: str = DEVICE_FIELD
    batch_size: int = Field(32, ge=1)
    defer_text_area: float | None = Field(
        DEFAULT_DEFER_TEXT_AREA, ge=0, le=1,
        description="never reject an image whose text covers more than this (a text image: the text filter decides); null = no text check")


@register_step("watermark", order=30)
class WatermarkFilter(Filter):
    Config = WatermarkConfig
    score_names = ("prob", "text_area")
    threshold_fields = {"prob": "threshold", "text_area": "defer_text_area"}

    def __init__(self, cfg: WatermarkConfig | None = None):
        super().__init__(cfg)
        # Measures text coverage with the text filter's default settings, so that filter
        # (at its defaults) reuses the boxes left in meta instead of detecting again.
        # setup() builds one unless a (set-up) TextFilter is assigned here first.
        self.text = None
        self.model = self.device = self.compute_dtype = None

    def setup(self):
        from filters.text import TextFilter
        from filters.watermark_net import load_laion_model, load_watermark_net

        c = self.cfg
        if c.defer_text_area is not None and self.text is None:
            self.text = TextFilter.ready(device=c.device, threshold=c.defer_text_area)  # reads the boxes of images over it
        self.device = torch_device(c.device)
        self.compute_dtype = autocast_dtype(self.device)
        if c.arch == "default":
            hint = ("set it to a WatermarkNet .safetensors (python -m filter_dev.watermark_train writes one) "
                    "or remove it to use the bundled default")
            path = require_file(c.model_path or DEFAULT_WEIGHTS, f"{_SETTING}.model_path", hint)
            loader = load_watermark_net
        else:
            hint = "set it to LAION-5B-WatermarkDetection's models/watermark_model_v1.pt (or a safetensors copy), or use arch: default"
            if not c.model_path:
                raise ValueError(f"{_SETTING}.model_path: required when arch is 'laion'; {hint}")
            path = require_file(c.model_path, f"{_SETTING}.model_path", hint)
            loader = load_laion_model
        try:
            self.model = loader(path).to(self.device)
        except Exception as exc:
            raise model_load_error(f"{_SETTING}.model_path", path, exc, hint) from exc
        self.model_path = path

    def _forward(self, images: list[np.ndarray]) -> np.ndarray:
        import torch

        from filters.watermark_net import preprocess_default, preprocess_laion

        if self.cfg.arch == "default":
            x = preprocess_default(images, self.model.cfg.input_size)
        else:
            x = preprocess_laion(images)
        with torch.inference_mode(), autocast(self.device, self.compute_dtype):
            logits = self.model(x.to(self.device))
        logits = logits.float()
        p = torch.sigmoid(logits) if self.cfg.arch == "default" else torch.softmax(logits, 1)[:, 0]
        return p.cpu().numpy().astype(np.float64)

    def score_and_outputs(self, images, meta):
        prob = self._forward(images) if images else np.zeros(0, dtype=np.float64)
        # Text coverage only matters where the model fires: detect text there only, and
        # leave the boxes as the "text" output, which the text filter then reuses.
        area = np.zeros(len(images), dtype=np.float64)
        outputs: list[dict | None] = [None] * len(images)
        firing = np.flatnonzero(prob >= self.cfg.threshold)
        if self.text is not None and len(firing):
            fired = [images[i] for i in firing]
            found = self.text.confirm_text(fired, self.text.detect_text(fired, [meta[i] for i in firing]))
            for i, out in zip(firing, found):  # text a recogniser confirmed (the detected area if it did not read)
                area[i], outputs[i] = out.get("confirmed_area", out["area_frac"]), {self.text.name: out}
        return {"prob": prob, "text_area": area}, outputs

    def score(self, images, meta):
        return self.score_and_outputs(images, meta)[0]

    def keep(self, scores):
        keep = scores["prob"] < self.cfg.threshold
        if self.cfg.defer_text_area is not None and "text_area" in scores:
            keep |= scores["text_area"] > self.cfg.defer_text_area  # a text image: the text filter decides
        return keep
