"""The diffusion objective and sampler, through diffusers schedulers: noising, the
epsilon / v-prediction target, min-SNR weighting, EMA, and classifier-free-guided
sampling to images."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from train.config import DiffusionConfig
from train.sharding import local


def make_scheduler(cfg: DiffusionConfig):
    from diffusers import DDPMScheduler

    # clip_sample=False: diffusers' default clamps the predicted x0 to [-1, 1], which suits
    # pixels, not latents (unit std under the VAE's scaling: a third of each sample clipped).
    return DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule,
                         beta_start=cfg.beta_start, beta_end=cfg.beta_end, prediction_type=cfg.prediction_type,
                         clip_sample=False)


def make_sampler(cfg: DiffusionConfig, train_scheduler):
    """The inference scheduler: never clips, and its first step is the last training
    timestep ("trailing" spacing; "leading" starts at t=901 of 1000 at 10 steps, so the
    sampler never sees the pure-noise level it starts from; Lin et al. 2024, table 2)."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    if cfg.sampler == "ddim":
        return DDIMScheduler.from_config(train_scheduler.config, clip_sample=False, timestep_spacing="trailing")
    return DPMSolverMultistepScheduler.from_config(train_scheduler.config, timestep_spacing="trailing")


def diffusion_loss(unet, scheduler, latents, tokens, mask, cfg: DiffusionConfig, gen: torch.Generator,
                   memory_format=torch.contiguous_format):
    """Per-batch loss: noise the latents at random timesteps, predict the target. Noise and
    timesteps come from `gen` on its own device (on a GPU: no host round trip)."""
    noise = torch.randn(latents.shape, generator=gen, device=gen.device).to(latents.device, latents.dtype)
    t = torch.randint(0, cfg.num_train_timesteps, (latents.shape[0],), generator=gen, device=gen.device).to(latents.device)
    noisy = scheduler.add_noise(latents, noise, t)
    target = noise if cfg.prediction_type == "epsilon" else scheduler.get_velocity(latents, noise, t)
    pred = unet(noisy.contiguous(memory_format=memory_format), t, tokens, mask)
    mse = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    if cfg.min_snr_gamma is None:
        return mse.mean()
    ac = scheduler.alphas_cumprod.to(latents.device)[t]
    snr = ac / (1 - ac)
    clipped = torch.clamp(snr, max=cfg.min_snr_gamma)
    weight = clipped / snr if cfg.prediction_type == "epsilon" else clipped / (snr + 1)
    return (weight * mse).mean()


def ema_decay_at(step: int, max_decay: float) -> float:
    """EMA decay after `step` optimizer steps, with warm-up (diffusers' EMAModel rule
    `min(decay, (1 + n) / (10 + n))`): a fixed 0.9999 from step 1 leaves the EMA 61 %
    initial weights at step 5000. A function of the step alone, so resume is exact."""
    return min(max_decay, (1 + step) / (10 + step))


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema = decay * ema + (1 - decay) * model over parameters, in one fused call per list
    (no Python loop over tensors); buffers copied. Sharded (FSDP) networks update their local
    shards: the EMA is sharded like the model, so no communication."""
    ema_params = [local(e) for e in ema.parameters()]
    model_params = [local(p.detach()).to(e.dtype) for e, p in zip(ema_params, model.parameters())]
    torch._foreach_lerp_(ema_params, model_params, 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


@torch.no_grad()
def sample_images(unet, vae, text_encoder, sampler, prompts: list[str], *, height: int, width: int, steps: int,
                  guidance_scale: float, scaling: float, seed: int, device="cpu") -> torch.Tensor:
    """Classifier-free guided sampling -> images (B, 3, H, W) in [0, 1]."""
    f = 2 ** (len(vae.config.block_out_channels) - 1)
    gen = torch.Generator("cpu").manual_seed(seed)
    latents = torch.randn((len(prompts), vae.config.latent_channels, height // f, width // f), generator=gen).to(device)
    tokens, mask = text_encoder(prompts)
    null_tokens, null_mask = text_encoder([""] * len(prompts))
    sampler.set_timesteps(steps)
    latents = latents * sampler.init_noise_sigma
    for t in sampler.timesteps:
        x = sampler.scale_model_input(torch.cat([latents, latents]), t)
        out = unet(x, t.to(device), torch.cat([tokens, null_tokens]), torch.cat([mask, null_mask]))
        cond, uncond = out.chunk(2)
        latents = sampler.step(uncond + guidance_scale * (cond - uncond), t, latents).prev_sample
    images = vae.decode(latents / scaling).sample
    return ((images.float() + 1) / 2).clamp(0, 1)
