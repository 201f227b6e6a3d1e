"""Aesthetic filter: the LAION improved aesthetic predictor on the shared CLIP embedding.

The predictor (github.com/christophschuhmann/improved-aesthetic-predictor) is a small MLP
trained on AVA and LAION ratings over L2-normalised CLIP ViT-L/14 image embeddings:
Linear 768->1024, Dropout, 1024->128, Dropout, 128->64, Dropout, 64->16, 16->1, with no
activations between the layers (as published). Its weights are a PyTorch state dict
(`sac+logos+ava1-l14-linearMSE.pth`, keys `layers.{0,2,4,6,7}.{weight,bias}`): set
`model_path` to it and `clip_model: ViT-L-14` with the OpenAI ViT-L/14 weights as
`clip_weights`. The widths are read from the file, so a predictor for another CLIP width
loads the same way (the tests use one for a tiny CLIP).

Score `aesthetic_score`: the predictor's output clipped to 0..10 (ratings were 1..10).
Reject when below `threshold`; the default 0 is off (records the score only). LAION's
aesthetic subsets used 4.5, 5, 6, 6.25 and 6.5 (LAION-Aesthetics V2 "5+", "6+", ...).
No weights ship offline: a missing file stops the build at start-up naming the setting.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from filters.base import Filter
from filters.clip_encoder import ClipStepConfig, encoder_for
from steps.devices import model_load_error, require_file
from steps.registry import register_step

_SETTING = "filters.aesthetic"
LINEAR_KEYS = (0, 2, 4, 6, 7)  # nn.Sequential indices of the Linear layers (Dropout between the first four)
DROPOUTS = (0.2, 0.2, 0.1)


def aesthetic_mlp(widths: list[int]):
    """The published predictor's layer stack for widths [in, 1024, 128, 64, 16, 1]."""
    import torch.nn as nn

    lin = [nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:])]
    return nn.Sequential(lin[0], nn.Dropout(DROPOUTS[0]), lin[1], nn.Dropout(DROPOUTS[1]), lin[2],
                         nn.Dropout(DROPOUTS[2]), lin[3], lin[4])


def load_aesthetic_mlp(path: str, device):
    """The predictor from its state dict (plain tensors only: no pickled code runs)."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k.removeprefix("layers."): v for k, v in state.items()}
    widths = [state[f"{LINEAR_KEYS[0]}.weight"].shape[1]] + [state[f"{i}.weight"].shape[0] for i in LINEAR_KEYS]
    mlp = aesthetic_mlp(widths)
    mlp.load_state_dict(state)
    return mlp.to(device).eval()


class AestheticConfig(ClipStepConfig):
    enabled: bool = False
    clip_model: str = Field("ViT-L-14", description="open_clip architecture the predictor was trained on (ViT-L/14)")
    model_path: str | None = Field(None, description="the predictor's state dict (.pth), e.g. sac+logos+ava1-l14-linearMSE.pth")
    threshold: float = Field(0.0, ge=0, le=10, description="reject if the score (0..10) is below this; 0 = off (LAION-Aesthetics: 5, 6, 6.5)")


@register_step("aesthetic", order=47)
class AestheticFilter(Filter):
    Config = AestheticConfig
    score_names = ("score",)
    threshold_fields = {"score": "threshold"}

    @property
    def clip_encoder(self):  # the shared encoder whose embeddings the build stores
        return getattr(self, "encoder", None)

    def setup(self):
        c = self.cfg
        if not c.model_path:
            raise ValueError(f"{_SETTING}.model_path: required; download sac+logos+ava1-l14-linearMSE.pth from "
                             "github.com/christophschuhmann/improved-aesthetic-predictor and set it to the file")
        path = require_file(c.model_path, f"{_SETTING}.model_path", "set it to the aesthetic predictor's .pth state dict")
        self.encoder = encoder_for(c, _SETTING)
        try:
            self.mlp = load_aesthetic_mlp(path, self.encoder.device)
        except Exception as exc:
            raise model_load_error(f"{_SETTING}.model_path", path, exc,
                                   "it must be the improved aesthetic predictor's state dict (layers.0 ... layers.7)") from exc
        width = self.mlp[0].in_features
        if width != self.encoder.embed_dim:
            raise RuntimeError(f"{_SETTING}.model_path: the predictor takes {width}-d embeddings, "
                               f"{c.clip_model} gives {self.encoder.embed_dim}-d (it was trained on ViT-L/14: 768)")

    def score(self, images, meta):
        import torch

        if not images:
            return {"score": np.zeros(0)}
        with torch.inference_mode():
            s = self.mlp(self.encoder.embed_images(images).float())[:, 0]
        return {"score": np.clip(s.cpu().numpy().astype(np.float64), 0.0, 10.0)}

    def keep(self, scores):
        return np.asarray(scores["score"]) >= self.cfg.threshold
