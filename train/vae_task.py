"""Stage 0 of toy runs: train the tiny AutoencoderKL of `vae.init_config` on the stage's
images, then export it (with a measured latent scale) to `vae.path`, where the T2I stages
load it. Real runs load a pretrained VAE instead. Same interface as the tasks in tasks.py.

    loss:   L1 reconstruction of a posterior sample + kl_weight * KL (each a mean per element).
    val:    the same loss with fixed noise, and PSNR of the posterior mean's reconstruction.
    export: scaling_factor = 1 / std of the posterior-mean latents, saved with save_pretrained.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F

from train.checkpoint import load_same_task
from train.config import TrainConfig, VAEStage
from train.data import pixels_on
from train.encoders import LATENT_STATS, vae_factor, vae_location


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per image (B,), for images in [0, 1]; the 1e-10 floor keeps identical images finite (100 dB)."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def to_unit(pixels: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped: a decoder's output is an image only once clipped."""
    return ((pixels.float() + 1) / 2).clamp(0, 1)


class VAETask:
    kind = "vae"

    def __init__(self, cfg: TrainConfig, stage: VAEStage, device):
        from diffusers import AutoencoderKL

        self.cfg, self.stage, self.device, self.ema = cfg, stage, device, None
        with torch.random.fork_rng():  # the same initial weights whatever ran before
            torch.manual_seed(cfg.seed)
            self.model = AutoencoderKL(**cfg.vae.init_config)
        self.model.requires_grad_(True).train()
        self.pixel_multiple = vae_factor(self.model)

    def describe(self) -> dict:
        return {"task": "vae", "vae": {"init_config": self.cfg.vae.init_config, "path": vae_location(self.cfg.vae)},
                "resolution": self.stage.resolution, "kl_weight": self.stage.kl_weight}

    def _loss(self, model, pixels, gen) -> torch.Tensor:
        posterior = model.encode(pixels).latent_dist
        z = posterior.sample(generator=gen)  # the step's generator: a resumed run draws the same noise
        recon = model.decode(z).sample.float()
        # L1, the pixel term of the LDM / Stable Diffusion VAEs: it pulls towards the median of what
        # could be there, where MSE settles for the mean (blur). MSE optimises PSNR directly, yet its
        # held-out PSNR was within run-to-run noise of L1's here (24.5 vs 24.2 dB at 1000 steps).
        rec = F.l1_loss(recon, pixels.float())
        # KL as a mean per latent element (kl() sums over C, h, w): kl_weight then means the same
        # whatever the resolution or latent size.
        kl = posterior.kl().float().mean() / posterior.mean[0].numel()
        return rec + self.stage.kl_weight * kl

    def loss(self, model, batch, gen):
        return self._loss(model, pixels_on(batch["pixels"], self.device), gen)

    @torch.no_grad()
    def evaluate(self, model, batches) -> dict[str, torch.Tensor]:
        """Sums over held-out batches (at most val_batches): the loss with fixed noise (comparable across
        steps), PSNR per image of the posterior mean's reconstruction (deterministic), and the image count."""
        gen = torch.Generator("cpu").manual_seed(1234)
        total = torch.zeros(3, device=self.device)
        for i, batch in enumerate(batches):
            if i >= self.stage.val_batches:
                break
            if not batch["size"]:
                continue
            pixels = pixels_on(batch["pixels"], self.device)
            loss = self._loss(model, pixels, gen)
            recon = model.decode(model.encode(pixels).latent_dist.mean).sample
            total += torch.stack([loss * len(pixels), psnr(to_unit(recon), to_unit(pixels)).sum(),
                                  torch.tensor(float(len(pixels)), device=self.device)])
        return {"val_loss_sum": total[0], "psnr_sum": total[1], "count": total[2]}

    def init_from(self, ckpt: Path, prev_task: str) -> tuple[str, list[str]]:
        """-> (log line, names of the tensors loaded). Only a previous vae run's checkpoint fits."""
        return load_same_task(self.model, ckpt, prev_task, "vae", "VAE")

    @torch.no_grad()
    def export(self, model, batches, path, max_batches: int = 8) -> dict:
        """Sets scaling_factor = 1 / std of the posterior-mean latents of up to `max_batches` training
        batches (so the diffusion model sees latents of unit std), then saves the VAE at `path`
        (a folder `load_vae` reads) atomically: written next to it, then renamed into place."""
        was_training = model.training
        model.eval()
        latents = []
        for batch in batches:
            if len(latents) >= max_batches:
                break
            if batch["size"]:
                latents.append(model.encode(pixels_on(batch["pixels"], self.device)).latent_dist.mean.float().flatten())
        model.train(was_training)
        if not latents:
            raise ValueError("VAE export: no training images to measure the latent std on")
        std = float(torch.cat(latents).std())
        model.register_to_config(scaling_factor=1.0 / std)

        path = Path(path).absolute()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        stats = {"scaling_factor": 1.0 / std, "latent_std": std, "measured_on_batches": len(latents)}
        (tmp / LATENT_STATS).write_text(json.dumps(stats, indent=1))  # what `scaling_factor: auto` requires
        if path.exists():
            # rename() only replaces an empty folder: move the old VAE (e.g. the random one load_vae
            # built before stage 0 ran) aside first, then delete it once the new one is in place.
            old = path.with_name(f".{path.name}.{os.getpid()}.old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
        return {"scaling_factor": 1.0 / std, "latent_std": std, "path": str(path)}
