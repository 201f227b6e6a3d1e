"""Text recogniser for the text filter's confirmation: reads each detected line box.

PaddleOCR's PP-OCRv4 recogniser (`ch_PP-OCRv4_rec_infer.onnx`, Chinese + English + digits +
punctuation, 6623 symbols in the model's metadata) shipped inside `rapidocr-onnxruntime`
next to the detector, run by ONNX Runtime. Each box is cut out straight (a perspective warp
of its 4-point polygon, as RapidOCR does), scaled to 48 px high and padded; crops are read
in batches sorted by width (RapidOCR's order, so little padding); CTC greedy decoding is
RapidOCR's `CTCLabelDecode`. One result per box: (text, mean character confidence).

`plausible_text` is the rule on what was read: fine regular texture (sand ripples, a
flag's stars, coins' rims) makes detector boxes, and the recogniser reads them as
nothing, one symbol or punctuation at low confidence ('', '￥★★' 0.34, 'QOO' 0.35),
while printed text reads at 0.9+.
"""

from __future__ import annotations

import importlib.util
import os

import cv2
import numpy as np

from steps.devices import model_load_error, ort_session, require_file

_SETTING = "filters.text"
PPOCR_REC_FILE = "ch_PP-OCRv4_rec_infer.onnx"
REC_HEIGHT, MIN_REC_WIDTH = 48, 320  # the model's input height; RapidOCR's smallest padded width


def default_ppocr_rec_path() -> str:
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{_SETTING}.rec_model_path: not set and the rapidocr-onnxruntime package is not installed; "
                                f"install it or set {_SETTING}.rec_model_path, or set {_SETTING}.confirm: false")
    return os.path.join(list(spec.submodule_search_locations)[0], "models", PPOCR_REC_FILE)


def plausible_text(text: str, min_alnum: int = 2) -> bool:
    """At least `min_alnum` letters or digits, and not one character repeated ('000', 'lll')."""
    alnum = [c for c in text if c.isalnum()]
    return len(alnum) >= min_alnum and len(set(c.lower() for c in alnum)) > 1


def crop_line(image: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """The quadrilateral `poly` (clockwise from top-left) warped to an upright rectangle;
    a crop much taller than wide (a vertical line) is turned to read left to right."""
    pts = np.asarray(poly, dtype=np.float32)
    w = max(2, int(max(np.linalg.norm(pts[0] - pts[1]), np.linalg.norm(pts[2] - pts[3]))))
    h = max(2, int(max(np.linalg.norm(pts[0] - pts[3]), np.linalg.norm(pts[1] - pts[2]))))
    m = cv2.getPerspectiveTransform(pts, np.float32([[0, 0], [w, 0], [w, h], [0, h]]))
    out = cv2.warpPerspective(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)
    return np.rot90(out) if h >= 1.5 * w else out


class PpocrRecognizer:
    """PP-OCRv4 rec (ONNX Runtime). Input: BGR crops, 48 px high, (x/255 - 0.5)/0.5, NCHW."""

    def __init__(self, model_path: str | None = None, device: str = "auto", batch_size: int = 8, num_threads: int = 0):
        from rapidocr_onnxruntime.ch_ppocr_rec.utils import CTCLabelDecode

        hint = f"set {_SETTING}.rec_model_path to a PP-OCR rec ONNX file, or remove it to use the one in rapidocr-onnxruntime"
        path = require_file(model_path or default_ppocr_rec_path(), f"{_SETTING}.rec_model_path", hint)
        self.session = ort_session(path, device, f"{_SETTING}.rec_model_path", hint, num_threads, optimize=False)
        try:
            chars = self.session.get_modelmeta().custom_metadata_map["character"].splitlines()
        except KeyError as exc:  # a model without the character list
            raise model_load_error(f"{_SETTING}.rec_model_path", path, exc, hint) from exc
        self.decode = CTCLabelDecode(character=chars)
        self.input_name = self.session.get_inputs()[0].name
        self.batch_size, self.path = batch_size, path

    @staticmethod
    def _input(crop: np.ndarray, width: int) -> np.ndarray:
        h, w = crop.shape[:2]
        rw = min(width, int(np.ceil(REC_HEIGHT * w / h)))
        x = cv2.resize(crop, (rw, REC_HEIGHT)).astype(np.float32).transpose(2, 0, 1) / 127.5 - 1.0
        out = np.zeros((3, REC_HEIGHT, width), dtype=np.float32)
        out[:, :, :rw] = x
        return out

    def read(self, image: np.ndarray, polys: list) -> list[tuple[str, float]]:
        """(text, confidence) per polygon of one RGB image, in the polygons' order. Boxes of one
        image are batched together, never with another image's, so a batch reads like one by one."""
        bgr = np.ascontiguousarray(image[:, :, ::-1])  # PaddleOCR's models read OpenCV's BGR order
        crops = [crop_line(bgr, p) for p in polys]
        order = np.argsort([c.shape[1] / c.shape[0] for c in crops])
        out: list = [("", 0.0)] * len(crops)
        for s in range(0, len(order), self.batch_size):
            chunk = order[s:s + self.batch_size]
            width = max(MIN_REC_WIDTH, max(int(np.ceil(REC_HEIGHT * crops[i].shape[1] / crops[i].shape[0])) for i in chunk))
            x = np.stack([self._input(crops[i], width) for i in chunk])
            (pred,) = self.session.run(None, {self.input_name: x})
            for i, (text, conf) in zip(chunk, self.decode(pred)):
                out[i] = (text, float(conf))
        return out
