"""What a stage trains: the model, its loss on a batch, its validation, and how it
warm-starts from the previous stage's checkpoint. `stage.py` runs the same loop for both.

    classify: an AsCAN classifier, cross-entropy, top-1 on the validation split.
    t2i:      an AsCAN UNet on VAE latents, text from a frozen encoder, diffusion loss, EMA.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import torch
import torch.nn.functional as F

import ascan
from train.checkpoint import load_same_task, load_weights
from train.config import ClassifyStage, T2IStage, TrainConfig
from train.data import pixels_on
from train.diffusion import diffusion_loss, make_sampler, make_scheduler, sample_images
from train.encoders import (
    ModelLoadError,
    TextEncoder,
    load_vae,
    scaling_factor,
    text_encoder_location,
    vae_factor,
    vae_location,
)

log = logging.getLogger("train")


class ClassifyTask:
    kind = "classify"

    def __init__(self, cfg: TrainConfig, stage: ClassifyStage, device):
        ref = cfg.models.classifier
        self.model = ascan.create_model(ref.name, **{**ref.overrides, "num_classes": stage.num_classes})
        self.cfg, self.stage, self.device, self.ema = cfg, stage, device, None
        self.pixel_multiple = 32  # the classifier's total stride
        self.memory_format = torch.channels_last if cfg.accelerate.channels_last else torch.contiguous_format

    def describe(self) -> dict:
        ref = self.cfg.models.classifier
        return {"task": "classify", "classifier": {"name": ref.name, "overrides": ref.overrides},
                "num_classes": self.stage.num_classes, "resolution": self.stage.resolution}

    def loss(self, model, batch, gen):
        pixels = pixels_on(batch["pixels"], self.device).contiguous(memory_format=self.memory_format)
        label = batch["label"].to(self.device, non_blocking=True)
        return F.cross_entropy(model(pixels).float(), label, label_smoothing=self.stage.label_smoothing)

    @torch.no_grad()
    def evaluate(self, model, batches) -> dict[str, torch.Tensor]:
        """Sums over this rank's share (the caller reduces across ranks): loss, correct answers, count."""
        total = torch.zeros(3, device=self.device)
        for batch in batches:
            if not batch["size"]:
                continue
            logits = model(pixels_on(batch["pixels"], self.device)).float()
            label = batch["label"].to(self.device)
            total += torch.stack([F.cross_entropy(logits, label, reduction="sum"),
                                  (logits.argmax(-1) == label).sum().float(), torch.tensor(float(len(label)), device=self.device)])
        return {"val_loss_sum": total[0], "top1_sum": total[1], "count": total[2]}

    def init_from(self, ckpt: Path, prev_task: str) -> tuple[str, list[str]]:
        """-> (log line, names of the tensors loaded)."""
        return load_same_task(self.model, ckpt, prev_task, "classify", "classifier")


class T2ITask:
    kind = "t2i"

    def __init__(self, cfg: TrainConfig, stage: T2IStage, device):
        self.cfg, self.stage, self.device = cfg, stage, device
        vae_stages = [n for n, s in cfg.stages.items() if s.task == "vae"]
        if vae_stages and not Path(vae_location(cfg.vae)).exists():
            raise ModelLoadError(f"vae.path {cfg.vae.path} does not exist: this config trains its VAE in stage "
                                 f"{vae_stages[0]}; run `python train/stage.py --stage {vae_stages[0]}` first")
        self.vae = load_vae(cfg.vae, device)
        self.text_encoder = TextEncoder(cfg.text_encoder, device)
        self.scaling = scaling_factor(cfg.vae, self.vae)
        ref = cfg.models.unet
        overrides = {"in_channels": self.vae.config.latent_channels, "text_dim": self.text_encoder.dim, **ref.overrides}
        with torch.random.fork_rng():  # the same initial weights whatever loading the encoders consumed
            torch.manual_seed(cfg.seed)
            self.model = ascan.create_model(ref.name, **overrides)
        self.unet_overrides = overrides
        self.ema = copy.deepcopy(self.model).requires_grad_(False).eval()
        self.scheduler = make_scheduler(cfg.diffusion)
        self.pixel_multiple = vae_factor(self.vae) * self.model.cfg.downsample_factor
        self.memory_format = torch.channels_last if cfg.accelerate.channels_last else torch.contiguous_format
        self._empty = None

    def describe(self) -> dict:
        """What sample.py needs to rebuild the pipeline from a checkpoint alone."""
        return {"task": "t2i", "unet": {"name": self.cfg.models.unet.name, "overrides": self.unet_overrides},
                "vae": {**self.cfg.vae.model_dump(), "path": vae_location(self.cfg.vae)},
                "text_encoder": {**self.cfg.text_encoder.model_dump(), "path": text_encoder_location(self.cfg.text_encoder)},
                "diffusion": self.cfg.diffusion.model_dump(), "resolution": self.stage.resolution}

    @torch.no_grad()
    def encode(self, batch, gen, dropout: float):
        """Pixels and captions -> (latents, tokens, mask), float32, the frozen encoders under
        autocast when mixed precision is on. Draws from `gen`: the posterior sample, then the
        caption dropout (precomputed latents draw the same, in the same order)."""
        with self.autocast():
            pixels = pixels_on(batch["pixels"], self.device)
            latents = self.vae.encode(pixels).latent_dist.sample(generator=gen).float() * self.scaling
            tokens, mask = self.text_encoder(list(batch["txt"]))
        return (latents, *self.drop_captions(tokens.float(), mask, gen, dropout))

    def from_latents(self, batch, gen, dropout: float):
        """A precomputed batch (train/latents.py) -> what `encode` returns, with the same draws from
        `gen` in the same order: so with equal generators the two give the same loss."""
        mean, std = (batch[k].to(self.device, non_blocking=True).float() for k in ("mean", "std"))
        eps = torch.randn(mean.shape, generator=gen, device=gen.device).to(mean.device)
        latents = (mean + std * eps) * self.scaling
        tokens = batch["tokens"].to(self.device, non_blocking=True).float()
        mask = batch["mask"].to(self.device, non_blocking=True)
        return (latents, *self.drop_captions(tokens, mask, gen, dropout))

    def use_latents(self, folder) -> None:
        """Training batches come precomputed: caption dropout uses the stored empty caption."""
        from train.latents import load_empty_caption

        tokens, mask = load_empty_caption(folder)
        self._empty = tokens.to(self.device), mask.to(self.device)

    def drop_captions(self, tokens, mask, gen, dropout: float):
        """Classifier-free guidance: each caption is replaced by the empty caption's embedding
        with probability `dropout`, decided on the device (no host round trip)."""
        if dropout <= 0:
            return tokens, mask
        drop = (torch.rand(len(tokens), generator=gen, device=gen.device) < dropout).to(tokens.device)
        null_tokens, null_mask = self.empty_caption()
        return torch.where(drop[:, None, None], null_tokens, tokens), torch.where(drop[:, None], null_mask, mask)

    @torch.no_grad()
    def empty_caption(self):
        """(tokens (1, L, D) float32, mask (1, L)) of "", encoded once."""
        if self._empty is None:
            with self.autocast():
                tokens, mask = self.text_encoder([""])
            self._empty = tokens.float(), mask
        return self._empty

    def autocast(self):
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.cfg.accelerate.mixed_precision)
        return torch.autocast(torch.device(self.device).type, dtype=dtype, enabled=dtype is not None)

    def loss(self, model, batch, gen):
        prepare = self.from_latents if "mean" in batch else self.encode
        latents, tokens, mask = prepare(batch, gen, self.cfg.diffusion.caption_dropout)
        return diffusion_loss(model, self.scheduler, latents, tokens, mask, self.cfg.diffusion, gen, self.memory_format)

    @torch.no_grad()
    def evaluate(self, model, batches) -> dict[str, torch.Tensor]:
        """Diffusion loss of `model` (the caller passes the raw weights and the EMA in turn) on
        held-out batches with fixed noise and timesteps, so values compare across steps."""
        gen = torch.Generator(self.device).manual_seed(1234)
        total = torch.zeros(2, device=self.device)
        for i, batch in enumerate(batches):
            if i >= self.stage.val_batches:
                break
            if batch["size"]:
                latents, tokens, mask = self.encode(batch, gen, 0.0)
                loss = diffusion_loss(model, self.scheduler, latents, tokens, mask, self.cfg.diffusion, gen)
                total += torch.stack([loss * batch["size"], torch.tensor(float(batch["size"]), device=self.device)])
        return {"val_loss_sum": total[0], "count": total[1]}

    def generate(self, prompts: list[str], seed: int, guidance_scale: float | None = None) -> torch.Tensor:
        """EMA samples at the stage's resolution, (B, 3, H, W) in [0, 1]."""
        diff, side = self.cfg.diffusion, self.stage.resolution
        return sample_images(self.ema, self.vae, self.text_encoder, make_sampler(diff, self.scheduler), prompts,
                             height=side, width=side, steps=diff.sample_steps,
                             guidance_scale=diff.guidance_scale if guidance_scale is None else guidance_scale,
                             scaling=self.scaling, seed=seed, device=self.device)

    def sample_grid(self, prompts: list[str], seed: int) -> torch.Tensor:
        """One row per (guidance scale, seed), one column per prompt."""
        scales = self.cfg.logging.sample_guidance_scales or [1.0, self.cfg.diffusion.guidance_scale]
        return torch.cat([self.generate(prompts, seed + k, scale) for scale in scales
                          for k in range(self.cfg.logging.sample_seeds)])

    def init_from(self, ckpt: Path, prev_task: str) -> tuple[str, list[str]]:
        """-> (log line, names of the UNet tensors loaded)."""
        if prev_task == "classify":
            # Stage 1 -> 2: the classifier's stages warm-start the UNet's down path.
            copied = ascan.load_classifier_weights(self.model, load_weights(ckpt / "model.safetensors"))
            self.ema.load_state_dict(self.model.state_dict())
            names = [dst for _, dst in copied]
            return (f"warm start from the classifier in {ckpt}: copied {len(names)} of {len(self.model.state_dict())} "
                    "UNet tensors (classifier stages.* -> down.*), e.g. " + ", ".join(names[:4])), names
        # Stage N -> N+1: the whole UNet and its EMA.
        model_sd = load_weights(ckpt / "model.safetensors")
        self.model.load_state_dict(model_sd)
        ema_path = ckpt / "ema.safetensors"
        self.ema.load_state_dict(load_weights(ema_path) if ema_path.exists() else model_sd)
        return f"loaded the UNet and its EMA ({len(model_sd)} tensors each) from {ckpt}", sorted(model_sd)


def make_task(cfg: TrainConfig, stage_cfg, device):
    from train.vae_task import VAETask

    return {"classify": ClassifyTask, "t2i": T2ITask, "vae": VAETask}[stage_cfg.task](cfg, stage_cfg, device)
