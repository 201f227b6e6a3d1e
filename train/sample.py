"""Generate images from a T2I checkpoint (its EMA weights), with classifier-free guidance.

    python train/sample.py --checkpoint OUT/stage2/checkpoints/step_00000040 --prompt "a cat" \
        [--prompt ...] [--steps 30 --cfg 4.5 --size 256x256 --seed 0 --out samples/]

A stage folder (OUT/stage2) works too: its final checkpoint is used. The checkpoint's
state.json names the UNet variant, the VAE and the text encoder, so nothing else is needed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import ascan
from train import checkpoint as ckpt_io
from train.config import DiffusionConfig, TextEncoderConfig, VAEConfig
from train.diffusion import make_sampler, make_scheduler, sample_images
from train.encoders import ModelLoadError, TextEncoder, load_vae, scaling_factor


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a checkpoint folder (step_N) or a stage folder (uses final.json)")
    p.add_argument("--prompt", action="append", required=True, help="repeat for several images")
    p.add_argument("--steps", type=int, help="sampler steps (default: the config's diffusion.sample_steps)")
    p.add_argument("--cfg", type=float, help="guidance scale (default: the config's diffusion.guidance_scale)")
    p.add_argument("--size", help="WxH in pixels (default: the stage's square resolution)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="samples", help="folder for the PNGs")
    p.add_argument("--weights", choices=["ema", "model"], default="ema")
    p.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N")
    return p.parse_args(argv)


def pick_device(name: str) -> torch.device:
    """The --device to sample on; a CUDA device this process cannot see is an error naming it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)  # ValueError for a malformed name
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise ValueError(f"--device {name}: this process sees {torch.cuda.device_count()} CUDA device(s); "
                         "use --device cpu or one it sees")
    return device


def resolve_checkpoint(path: Path) -> Path:
    if (path / "state.json").is_file():
        return path
    final = ckpt_io.final_checkpoint(path)
    if final is None:
        raise ValueError(f"--checkpoint {path}: neither a checkpoint folder (state.json) nor a stage folder with final.json")
    return final


def main(argv=None) -> int:
    a = parse_args(argv)
    try:
        ckpt = resolve_checkpoint(Path(a.checkpoint))
        state = ckpt_io.read_state(ckpt)
        if state["task"] != "t2i":
            raise ValueError(f"--checkpoint {ckpt} is a {state['task']} checkpoint; sampling needs a T2I stage (2-4)")
        width, height = (int(v) for v in a.size.lower().split("x")) if a.size else (state["resolution"],) * 2
        vae_cfg, diff_cfg = VAEConfig(**state["vae"]), DiffusionConfig(**state["diffusion"])
        device = pick_device(a.device)
        vae, text_encoder = load_vae(vae_cfg, device), TextEncoder(TextEncoderConfig(**state["text_encoder"]), device)
    except (ValueError, RuntimeError, ModelLoadError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    unet = ascan.create_model(state["unet"]["name"], **state["unet"]["overrides"]).eval()
    unet.load_state_dict(ckpt_io.load_weights(ckpt / f"{a.weights}.safetensors"))
    unet.to(device)
    multiple = 2 ** (len(vae.config.block_out_channels) - 1) * unet.cfg.downsample_factor
    if width % multiple or height % multiple:
        print(f"error: --size {width}x{height}: both sides must be multiples of {multiple} (VAE x UNet downsampling)",
              file=sys.stderr)
        return 2
    images = sample_images(unet, vae, text_encoder, make_sampler(diff_cfg, make_scheduler(diff_cfg)), a.prompt,
                           height=height, width=width, steps=a.steps or diff_cfg.sample_steps,
                           guidance_scale=diff_cfg.guidance_scale if a.cfg is None else a.cfg,
                           scaling=scaling_factor(vae_cfg, vae), seed=a.seed, device=device)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    from torchvision.utils import save_image

    for i, (img, prompt) in enumerate(zip(images, a.prompt)):
        name = "".join(c if c.isalnum() else "_" for c in prompt)[:40]
        path = out / f"{i:02d}_{name}_seed{a.seed}.png"
        save_image(img, path)
        print(path)
    return 0


if __name__ == "__main__":
    with torch.no_grad():
        sys.exit(main())
