"""One open_clip image encoder per process, shared by every step that needs CLIP image
embeddings (the NSFW filter's `clip` backend, the concepts filter).

`get_clip_encoder(...)` returns the same `ClipEncoder` for the same (model, weights,
device), so the model is loaded once per worker (or model actor) however many steps use
it, and `embed_images` computes each image's embedding once: it keeps the embeddings of
the last images it saw, keyed by the image array object (the pipeline hands every filter
of a batch the same decoded arrays), so the second step of a batch gets them for free.
The cache holds a reference to each array, so an id is never reused while cached.

Where the weights come from (no CLIP weights ship with the project or any package it
installs): `clip_weights`, an open_clip checkpoint file for the architecture `clip_model`
(a built-in open_clip name such as "ViT-B-32", or a custom one described by the JSON file
`clip_config`); or, with `clip_weights` unset, `clip_model: "hf-hub:ORG/REPO"`, read from
the Hugging Face cache (offline once downloaded).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
from pydantic import Field

from filters.base import DEVICE_FIELD, FilterConfig
from steps.devices import model_load_error, require_file, torch_device
from steps.precision import autocast, autocast_dtype

_ENCODERS: dict = {}
_LOCK = threading.Lock()
CACHE_IMAGES = 512


class ClipStepConfig(FilterConfig):
    """The settings every filter on the shared CLIP encoder has (concepts, clip_score, aesthetic)."""

    clip_model: str = Field("ViT-B-32", description="open_clip architecture, or hf-hub:ORG/REPO (weights from the HF cache)")
    clip_weights: str | None = Field(None, description="open_clip checkpoint file (no CLIP weights ship offline)")
    clip_config: str | None = Field(None, description="open_clip model config JSON for an architecture open_clip does not know")
    device: str = DEVICE_FIELD
    batch_size: int = Field(32, ge=1)
    required: bool = Field(True, description="false: skip this filter with a warning when its model cannot be loaded")


def encoder_for(cfg: ClipStepConfig, setting: str) -> ClipEncoder:
    """The process's shared encoder for a ClipStepConfig section (`setting` names it in errors)."""
    return get_clip_encoder(cfg.clip_model, cfg.clip_weights, cfg.device, cfg.clip_config, setting=setting)


def get_clip_encoder(clip_model: str, clip_weights: str | None, device: str = "auto",
                     clip_config: str | None = None, setting: str = "filters.concepts") -> ClipEncoder:
    key = (clip_model, clip_weights, str(torch_device(device)))  # clip_config only registers the name
    with _LOCK:
        if key not in _ENCODERS:
            _ENCODERS[key] = ClipEncoder(clip_model, clip_weights, device, clip_config, setting)
        return _ENCODERS[key]


class ClipEncoder:
    def __init__(self, clip_model: str, clip_weights: str | None, device: str = "auto",
                 clip_config: str | None = None, setting: str = "filters.concepts"):
        import open_clip

        hint = ("no CLIP weights ship with this project: download an open_clip checkpoint (e.g. "
                "open_clip_pytorch_model.bin of laion/CLIP-ViT-B-32-laion2B-s34B-b79K) and set "
                f"{setting}.clip_weights to it, or set {setting}.clip_model to 'hf-hub:ORG/REPO' with "
                "the model already in the Hugging Face cache")
        if clip_config:
            open_clip.add_model_config(require_file(clip_config, f"{setting}.clip_config",
                                                    "set it to an open_clip model config JSON, or remove it for a built-in architecture"))
        if clip_weights:
            clip_weights = require_file(clip_weights, f"{setting}.clip_weights", hint)
        elif not clip_model.startswith("hf-hub:"):
            raise ValueError(f"{setting}.clip_weights: required for clip_model {clip_model!r}; {hint}")
        self.device = torch_device(device)
        self.compute_dtype = autocast_dtype(self.device)
        # names the model of stored embeddings (pipeline/embeddings.py): architecture + weights
        self.label = f"{clip_model}@{clip_weights}" if clip_weights else clip_model
        source = clip_weights or clip_model
        setting_name = f"{setting}.clip_weights" if clip_weights else f"{setting}.clip_model"
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                clip_model, pretrained=clip_weights if not clip_model.startswith("hf-hub:") else None, device=self.device)
            self.tokenizer = open_clip.get_tokenizer(clip_model)
        except Exception as exc:
            raise model_load_error(setting_name, source, exc, hint) from exc
        self.model = model.eval()
        self.preprocess = preprocess
        self.embed_dim = self.model.visual.output_dim
        self._cache: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.images_encoded = 0  # how many images went through the image tower (tests, bench)

    def embed_images(self, images: list[np.ndarray]):
        """L2-normalised image embeddings (torch, N x D, on the encoder's device)."""
        import torch
        from PIL import Image

        with self._lock:
            hits = {i: self._cache[id(im)][1] for i, im in enumerate(images)
                    if id(im) in self._cache and self._cache[id(im)][0] is im}
        todo = [i for i in range(len(images)) if i not in hits]
        if todo:
            x = torch.stack([self.preprocess(Image.fromarray(images[i])) for i in todo]).to(self.device)
            with torch.inference_mode(), autocast(self.device, self.compute_dtype):
                emb = torch.nn.functional.normalize(self.model.encode_image(x).float(), dim=-1)
            self.images_encoded += len(todo)
            with self._lock:
                for j, i in enumerate(todo):
                    hits[i] = emb[j]
                    self._cache[id(images[i])] = (images[i], emb[j])
                while len(self._cache) > CACHE_IMAGES:
                    self._cache.popitem(last=False)
        if not images:
            return torch.zeros((0, self.embed_dim), device=self.device)
        return torch.stack([hits[i] for i in range(len(images))])

    def embed_texts(self, texts: list[str]):
        import torch

        with torch.inference_mode():
            emb = self.model.encode_text(self.tokenizer(texts).to(self.device)).float()
        return torch.nn.functional.normalize(emb, dim=-1)

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.exp().item())
