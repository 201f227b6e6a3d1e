"""Object detector annotator: ultralytics YOLO -> `json.annotations["objects"]`.

Weights (`annotate.objects.weights`, default `yolo11n.pt`, COCO's 80 classes): a local
file path, else a bare name found in ultralytics' weights folder (`yolo settings`,
`weights_dir`), else ultralytics downloads it (needs network; offline it fails at
start-up naming this setting). Any ultralytics detection weights work by path.

Batching: every image is letterboxed to the same `imgsz` square (aspect kept, grey
padding, as ultralytics does), so a whole batch of differently sized images is one
forward pass, and an image's result does not depend on the batch it came in.

Result: {"model", "model_version", "items": [{"label", "confidence", "box"}]}, box =
[x0, y0, x1, y1] normalised to the stored image (0..1), most confident first.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from pydantic import Field

from annotate.base import Annotator, AnnotatorConfig
from steps.devices import torch_device
from steps.precision import autocast_dtype
from steps.registry import register_step

_SETTING = "annotate.objects"
PAD_VALUE = 114  # ultralytics' letterbox grey


class DetectorConfig(AnnotatorConfig):
    weights: str = Field("yolo11n.pt", description="YOLO weights: a file path, or a name in ultralytics' weights dir / its download list")
    conf: float = Field(0.25, ge=0, le=1, description="drop objects below this confidence")
    iou: float = Field(0.7, ge=0, le=1, description="NMS IoU threshold")
    classes: list[str] | None = Field(None, description="keep only these label names (unset = all the model's classes)")
    max_objects: int = Field(20, ge=1, description="at most this many objects per image, most confident first")
    imgsz: int = Field(640, ge=32, multiple_of=32, description="detector input side (images are letterboxed to it)")


def resolve_weights(weights: str) -> str:
    """A local file, else the same name in ultralytics' weights dir, else the name itself
    (ultralytics then looks in the working dir and downloads the release asset)."""
    from ultralytics.utils import WEIGHTS_DIR

    p = Path(weights).expanduser()
    if p.is_file():
        return str(p)
    if p.name == weights and (Path(WEIGHTS_DIR) / weights).is_file():
        return str(Path(WEIGHTS_DIR) / weights)
    if p.name != weights or p.suffix not in (".pt", ".onnx", ".engine", ".torchscript"):
        raise FileNotFoundError(f"{_SETTING}.weights: {weights} does not exist; set it to a YOLO weights file (e.g. a trained best.pt)")
    return weights


def load_yolo(weights: str):
    from ultralytics import YOLO
    from ultralytics.utils import WEIGHTS_DIR

    path = resolve_weights(weights)
    try:
        return YOLO(path, task="detect")
    except Exception as exc:
        raise RuntimeError(
            f"{_SETTING}.weights: could not load {weights!r} ({type(exc).__name__}: {exc}); set it to a local YOLO "
            f".pt file, or put {Path(weights).name} into ultralytics' weights dir ({WEIGHTS_DIR}), or run once with "
            "network so ultralytics downloads it (unset YOLO_OFFLINE)"
        ) from exc


def letterbox(image: np.ndarray, side: int) -> tuple[np.ndarray, float, int, int]:
    """Resize into a side x side square, aspect kept, centred on grey. -> (square, scale, pad_x, pad_y)."""
    h, w = image.shape[:2]
    scale = min(side / h, side / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nh, nw) != (h, w) else image
    px, py = (side - nw) // 2, (side - nh) // 2
    out = np.full((side, side, 3), PAD_VALUE, dtype=np.uint8)
    out[py:py + nh, px:px + nw] = resized
    return out, scale, px, py


@register_step("objects", order=10)
class ObjectDetector(Annotator):
    Config = DetectorConfig

    def setup(self):
        import ultralytics

        c = self.cfg
        self.model = load_yolo(c.weights)
        self.model_name = Path(c.weights).name
        self.model_version = f"ultralytics {ultralytics.__version__}"
        self.device = torch_device(c.device)
        self.compute_dtype = autocast_dtype(self.device)  # ultralytics runs half precision on CUDA (quantize=16)
        self.names = {int(k): str(v) for k, v in self.model.names.items()}
        self.class_ids = None
        if c.classes:
            by_name = {v: k for k, v in self.names.items()}
            unknown = [n for n in c.classes if n not in by_name]
            if unknown:
                raise ValueError(f"{_SETTING}.classes: {unknown} are not classes of {self.model_name}; it has: {', '.join(self.names.values())}")
            self.class_ids = [by_name[n] for n in c.classes]

    def annotate(self, images, meta):
        import torch

        if not images:
            return []
        c = self.cfg
        boxed = [letterbox(im, c.imgsz) for im in images]
        batch = torch.from_numpy(np.stack([b[0] for b in boxed])).permute(0, 3, 1, 2).float().div_(255.0)
        threads = torch.get_num_threads()
        try:
            results = self.model.predict(batch, conf=c.conf, iou=c.iou, classes=self.class_ids, max_det=c.max_objects,
                                         imgsz=c.imgsz, device=self.device, quantize=16 if self.device.type == "cuda" else None,
                                         verbose=False)
        finally:
            # ultralytics' device selection sets torch to min(8, cores - 1) CPU threads for the whole
            # process; the other models in this actor keep the threads they were given
            torch.set_num_threads(threads)
        return [self._items(r, im, b) for r, im, b in zip(results, images, boxed)]

    def _items(self, result, image, boxed) -> dict:
        _, scale, px, py = boxed
        h, w = image.shape[:2]
        xyxy = result.boxes.xyxy.float().cpu().numpy().astype(np.float64)
        conf = result.boxes.conf.float().cpu().numpy()
        cls = result.boxes.cls.cpu().numpy().astype(int)
        # letterbox coordinates -> stored-image pixels -> 0..1
        xyxy = (xyxy - [px, py, px, py]) / scale / [w, h, w, h]
        xyxy = np.clip(xyxy, 0.0, 1.0)
        order = np.argsort(-conf, kind="stable")[: self.cfg.max_objects]
        items = [{"label": self.names[int(cls[i])], "confidence": round(float(conf[i]), 4),
                  "box": [round(float(v), 4) for v in xyxy[i]]} for i in order]
        return {"model": self.model_name, "model_version": self.model_version, "items": items}
