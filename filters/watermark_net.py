"""WatermarkNet (the project's own watermark classifier) and LAION's watermark detector
architecture: model definitions, weight files, preprocessing. Used by filters/watermark.py
(inference) and filter_dev/watermark_train.py (training)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class WatermarkNetConfig:
    input_size: int = 320
    widths: tuple[int, ...] = (16, 32, 64, 128, 160)  # one stride-2 stage per width
    depths: tuple[int, ...] = (0, 1, 2, 2, 1)  # extra 3x3 residual convs per stage
    dropout: float = 0.1
    pool: str = "cells"  # image logit: "cells" = a*log-mean-exp(cell logits)+b, "global" = linear on avg+max features


def _conv_bn(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return F.relu(x + self.conv(x), inplace=True)


class WatermarkNet(nn.Module):
    """Stages of (stride-2 3x3 conv, `depth` residual 3x3 convs), then on the last feature
    map (stride 2**len(widths)):

    - the cell head: a 1x1 conv -> one logit per cell ("is part of a mark here?"),
      supervised in training with where the mark was drawn. Dense labels teach what a
      mark looks like far faster than one label per image, and a per-cell detector does
      not care how the marks are laid out.
    - the image logit: pool "cells" = a * log-mean-exp(cell logits) + b (a soft maximum:
      one marked corner is enough); pool "global" = linear on global average and max
      pooled features.
    """

    def __init__(self, cfg: WatermarkNetConfig = WatermarkNetConfig()):
        super().__init__()
        self.cfg = cfg
        layers, cin = [], 3
        for w, d in zip(cfg.widths, cfg.depths):
            layers.append(_conv_bn(cin, w, 2))
            layers += [_Residual(w) for _ in range(d)]
            cin = w
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(cfg.dropout)
        self.cell_head = nn.Conv2d(cin, 1, 1)
        if cfg.pool == "global":
            self.head = nn.Linear(2 * cin, 1)
        elif cfg.pool == "cells":
            self.pool_scale = nn.Parameter(torch.ones(()))
            self.pool_bias = nn.Parameter(torch.zeros(()))
        else:
            raise ValueError(f"pool must be 'cells' or 'global', got {cfg.pool!r}")

    @property
    def stride(self) -> int:
        return 2 ** len(self.cfg.widths)

    def forward(self, x, return_cells: bool = False):
        f = self.features(x)
        cells = self.cell_head(self.drop(f))[:, 0]
        if self.cfg.pool == "global":
            logit = self.head(self.drop(torch.cat([f.mean((2, 3)), f.amax((2, 3))], 1)))[:, 0]
        else:
            flat = cells.flatten(1)
            lme = torch.logsumexp(flat, 1) - math.log(flat.shape[1])
            logit = self.pool_scale * lme + self.pool_bias
        return (logit, cells) if return_cells else logit


def save_watermark_net(model: WatermarkNet, path: str, extra: dict | None = None) -> None:
    """safetensors weights (fp16) with the config in the metadata; `extra` (e.g. metrics)
    also goes into a .json beside the weights."""
    from safetensors.torch import save_file

    cfg = asdict(model.cfg)
    state = {k: (v.half() if v.is_floating_point() else v).contiguous().cpu() for k, v in model.state_dict().items()}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_file(state, path, metadata={"arch": "WatermarkNet", "config": json.dumps(cfg)})
    with open(os.path.splitext(path)[0] + ".json", "w") as f:
        json.dump({"arch": "WatermarkNet", "config": cfg, **(extra or {})}, f, indent=2)


def load_watermark_net(path: str) -> WatermarkNet:
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
        state = {k: f.get_tensor(k) for k in f.keys()}
    if meta.get("arch") != "WatermarkNet":
        raise ValueError(f"metadata arch={meta.get('arch')!r}, expected 'WatermarkNet' (use arch: laion for LAION's weights)")
    cfg = json.loads(meta["config"])
    model = WatermarkNet(WatermarkNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.eval()


def build_laion_model() -> nn.Module:
    """LAION-5B-WatermarkDetection's architecture (random init)."""
    import timm

    # timm >= 0.9 maps the old name efficientnet_b3a to efficientnet_b3 (same weights layout).
    model = timm.create_model("efficientnet_b3", pretrained=False, num_classes=2)
    model.classifier = nn.Sequential(
        nn.Linear(1536, 625), nn.ReLU(), nn.Dropout(p=0.3), nn.Linear(625, 256), nn.ReLU(), nn.Linear(256, 2))
    return model


def load_laion_model(path: str) -> nn.Module:
    model = build_laion_model()
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    model.load_state_dict(state)
    return model.eval()


def preprocess_default(images: list[np.ndarray], size: int) -> torch.Tensor:
    """Squash to size x size with INTER_AREA (the training resize), ImageNet-normalise, NCHW."""
    x = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in images])
    return normalize_uint8(torch.from_numpy(x))


def normalize_uint8(x: torch.Tensor) -> torch.Tensor:
    """NHWC uint8 -> NCHW float, ImageNet mean/std."""
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def preprocess_laion(images: list[np.ndarray]) -> torch.Tensor:
    """torchvision Resize((256, 256)) on a PIL image = PIL bilinear (antialiased), as LAION."""
    from PIL import Image

    x = np.stack([np.asarray(Image.fromarray(im).resize((256, 256), Image.Resampling.BILINEAR)) for im in images])
    return normalize_uint8(torch.from_numpy(x))
