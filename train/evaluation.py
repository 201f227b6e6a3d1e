"""Evaluation of a T2I model on a held-out prompt set: CLIP score (prompt alignment) and
FID (distance between generated and held-out real images in a feature space).

Models load by local path or hub id, the same way for a user's real weights and for the
tiny random ones the tests save; one that cannot be loaded raises `ModelLoadError` naming
the setting to change. The trainer builds an `Evaluator` from `evaluation:` in its config
and calls `run(generate, real_images)` at `val_every`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F

from train.config import EvalConfig
from train.encoders import ModelLoadError


def _load_error(setting: str, what: str, path: str, err: Exception, hint: str) -> ModelLoadError:
    return ModelLoadError(f"{setting}: cannot load {what} from {path!r} ({type(err).__name__}: "
                          f"{(str(err).splitlines() or [''])[0][:200]}); {hint}")


def _embedding(out) -> torch.Tensor:
    # transformers 5 returns a ModelOutput whose pooler_output is the projected embedding; 4.x a tensor.
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class ClipScorer:
    """A transformers CLIPModel with its tokenizer and image processor, frozen.

    score(images, prompts) is the CLIP score as torchmetrics defines it:
    100 * max(cos(image embedding, text embedding), 0), one value per (image, prompt) pair.
    """

    def __init__(self, path: str, device="cpu", setting: str = "evaluation.clip_model"):
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

        try:
            self.model = CLIPModel.from_pretrained(path)
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.image_processor = AutoImageProcessor.from_pretrained(path)
        except Exception as err:  # noqa: BLE001 - re-raised with the setting to change
            raise _load_error(setting, "a CLIPModel (+ tokenizer, image processor)", path, err,
                              "give a local folder, or a hub id whose files are in the hub cache "
                              "(fetch once: hf download openai/clip-vit-large-patch14)") from None
        self.model.requires_grad_(False).eval().to(device)
        self.device = device
        self.max_length = int(self.model.config.text_config.max_position_embeddings)

    @torch.no_grad()
    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> projected image embeddings (B, D), not normalised."""
        # do_rescale=False: the processor would otherwise divide our [0, 1] floats by 255 again.
        pixels = self.image_processor(images=images.float(), do_rescale=False, return_tensors="pt", device=self.device)
        return _embedding(self.model.get_image_features(pixel_values=pixels["pixel_values"].to(self.device))).float()

    @torch.no_grad()
    def text_features(self, prompts: list[str]) -> torch.Tensor:
        tok = self.tokenizer(list(prompts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        tok = tok.to(self.device)
        return _embedding(self.model.get_text_features(input_ids=tok.input_ids, attention_mask=tok.attention_mask)).float()

    @torch.no_grad()
    def score(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        if len(images) != len(prompts):
            raise ValueError(f"clip score: {len(images)} images but {len(prompts)} prompts")
        cos = F.cosine_similarity(self.image_features(images), self.text_features(prompts), dim=-1)
        return 100 * cos.clamp(min=0)


class FIDFeatures:
    """images (B, 3, H, W) in [0, 1] -> pooled features (B, D) for FID.

    kind "timm": a timm model name with its global-pooled features (num_classes=0), weights from a
        local file (`weights`) or, without one, timm's own pretrained weights from the hub cache.
        Images are resized to the model's input size (bilinear, antialiased) and normalised with its
        mean/std. `inception_v3.tf_in1k` + the pytorch-fid file pt_inception-2015-12-05-6726825d.pth
        gives Inception features close to, but not bit-identical with, the reference FID network
        (whose pooling layers differ slightly).
    kind "clip": the image embedding of a CLIPModel ("CLIP-FID", as clean-fid's clip_vit_b_32 mode);
        pass `clip` to share the ClipScorer already loaded for the CLIP score.
    """

    def __init__(self, model: str, kind: Literal["timm", "clip"] = "timm", weights: str | None = None, device="cpu",
                 clip: ClipScorer | None = None):
        self.kind, self.device = kind, device
        if kind == "clip":
            self.clip = clip if clip is not None else ClipScorer(model, device, setting="evaluation.fid_model")
            return
        import timm

        try:
            overlay = {"file": str(Path(weights).absolute())} if weights else None
            if weights and not Path(weights).is_file():
                raise FileNotFoundError(f"no file {weights}")
            self.net = timm.create_model(model, pretrained=True, pretrained_cfg_overlay=overlay, num_classes=0)
        except Exception as err:  # noqa: BLE001
            setting = "evaluation.fid_weights" if weights else "evaluation.fid_model"
            raise _load_error(setting, f"timm model {model!r}", weights or model, err,
                              "give a timm model name and a local weights file (evaluation.fid_weights), "
                              "or a name whose weights are in the hub cache") from None
        self.net.requires_grad_(False).eval().to(device)
        cfg = self.net.pretrained_cfg
        self.input_size = tuple(cfg["input_size"][1:])
        self.mean = torch.tensor(cfg["mean"], device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg["std"], device=device).view(1, 3, 1, 1)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.kind == "clip":
            return self.clip.image_features(images).cpu().double()
        x = images.to(self.device).float()
        # The whole image, resized (no crop): FID compares complete images.
        x = F.interpolate(x, size=self.input_size, mode="bilinear", antialias=True, align_corners=False)
        return self.net((x - self.mean) / self.std).cpu().double()


def feature_stats(feats) -> tuple[np.ndarray, np.ndarray]:
    """-> (mean, covariance) of features (N, D), N >= 2."""
    x = np.asarray(feats, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"FID needs at least 2 feature vectors of shape (N, D), got shape {x.shape}")
    return x.mean(0), np.cov(x, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)): the Frechet distance of two Gaussians."""
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        # A singular product can make sqrtm fail: nudge the diagonals, as pytorch-fid does.
        offset = np.eye(len(sigma1)) * 1e-6
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    # S1 S2 is similar to a PSD matrix, so its square root is real; rounding leaves a tiny imaginary part.
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid(real_feats, fake_feats) -> float:
    """FID between two feature sets (N, D). Still defined for N < D (the covariances are then
    singular), but FID is biased upwards at small N: compare runs only at the same N."""
    return frechet_distance(*feature_stats(real_feats), *feature_stats(fake_feats))


Generate = Callable[[list[str], int], torch.Tensor]


class Evaluator:
    """Generates images for the held-out prompts and scores them; returns only the metrics whose model is set."""

    def __init__(self, cfg: EvalConfig, device="cpu"):
        self.cfg, self.device = cfg, device
        self.prompts = cfg.prompt_list()
        self.clip = ClipScorer(cfg.clip_model, device) if cfg.clip_model else None
        self.fid_features = None
        if cfg.fid_model:
            shared = self.clip if cfg.fid_model_kind == "clip" and cfg.fid_model == cfg.clip_model else None
            self.fid_features = FIDFeatures(cfg.fid_model, cfg.fid_model_kind, cfg.fid_weights, device, clip=shared)
        self.real_stats = None  # the held-out real set does not change: its statistics are computed once

    def run(self, generate: Generate, real_images: Iterable[torch.Tensor] | None = None) -> dict[str, float]:
        """generate(prompts, seed) -> (B, 3, H, W) in [0, 1]; real_images: batches of held-out images in [0, 1]
        (read on the first run only)."""
        n = self.cfg.num_images or len(self.prompts)
        all_prompts = [self.prompts[i % len(self.prompts)] for i in range(n)]
        scores, fake_feats = [], []
        for i, start in enumerate(range(0, n, self.cfg.batch_size)):
            prompts = all_prompts[start:start + self.cfg.batch_size]
            images = generate(prompts, self.cfg.seed + i)
            if self.clip is not None:
                scores.append(self.clip.score(images, prompts).cpu())
            if self.fid_features is not None:
                fake_feats.append(self.fid_features(images))
        results = {}
        if self.clip is not None:
            results["eval/clip_score"] = float(torch.cat(scores).mean())
        if self.fid_features is not None:
            if self.real_stats is None:
                self.real_stats = feature_stats(self._real_features(real_images, self.cfg.num_real_images or n))
            results["eval/fid"] = frechet_distance(*self.real_stats, *feature_stats(torch.cat(fake_feats).numpy()))
        return results

    def _real_features(self, real_images, limit: int) -> np.ndarray:
        if real_images is None:
            raise ValueError("FID needs held-out real images: pass real_images to Evaluator.run")
        feats, count = [], 0
        for batch in real_images:
            batch = batch[: limit - count]
            feats.append(self.fid_features(batch))
            count += len(batch)
            if count >= limit:
                break
        if count < 2:
            raise ValueError(f"FID needs at least 2 held-out real images, got {count}")
        return torch.cat(feats).numpy()
