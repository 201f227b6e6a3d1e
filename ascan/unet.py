"""AsCAN text-to-image UNet, built from the classifier's blocks.

    x (B, in_channels, H, W) latent, H and W divisible by 8, any aspect ratio
    conv_in -> down stages (the classifier's layouts and widths; strides 1, 2, 2, 2)
            -> middle (T blocks at the lowest resolution)
            -> up stages (same layouts in reverse order; each starts from concat(x, skip),
               then nearest-upsample + 3x3 conv) -> norm, SiLU, conv_out

The timestep embedding modulates every block (adaLN scale/shift); T blocks cross-attend
to the text tokens. The down path is the classifier's `stages`, module for module, so
`load_classifier_weights` can warm-start it from a stage-1 classification checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import nn
from torch.utils.checkpoint import checkpoint

from ascan.blocks import Stage, check_layout
from ascan.registry import get_config, register_model

DOWN_STRIDES = (1, 2, 2, 2)  # the latent is already 8x down from pixels


@dataclass(frozen=True)
class UNetCfg:
    classifier: str  # the classifier variant whose stem width, layouts, widths the down path uses
    mid_layout: str = "TT"
    in_channels: int = 4
    out_channels: int = 0  # 0: same as in_channels
    text_dim: int = 768  # width of the text encoder's tokens
    cond_dim: int = 0  # timestep embedding width; 0: 4 * stem width (as in SD's UNet)
    head_dim: int = 0  # 0: the classifier's
    freq_dim: int = 256  # sinusoidal timestep features
    params_m: float = 0.0  # documented parameter count (millions); tests check it
    kind = "unet"

    def __post_init__(self):
        check_layout(self.mid_layout)

    @property
    def backbone(self):
        return get_config(self.classifier)

    @property
    def downsample_factor(self) -> int:
        return math.prod(DOWN_STRIDES[: len(self.backbone.widths)])

    @property
    def model_cls(self):
        return AsCANUNet


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features of (possibly fractional) timesteps, (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class Upsample(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class AsCANUNet(nn.Module):
    def __init__(self, cfg: UNetCfg):
        super().__init__()
        self.cfg = cfg
        bb = cfg.backbone
        widths, layouts, n = bb.widths, bb.layouts, len(bb.widths)
        cond = cfg.cond_dim or 4 * bb.stem_width
        ctx = cfg.text_dim

        def block_cfg(i):  # the classifier's block settings, with GroupNorm in C blocks
            return replace(bb.block_cfg(i), norm="group", head_dim=cfg.head_dim or bb.head_dim)

        self.time_embed = nn.Sequential(nn.Linear(cfg.freq_dim, cond), nn.SiLU(), nn.Linear(cond, cond))
        self.conv_in = nn.Conv2d(cfg.in_channels, bb.stem_width, 3, 1, 1)
        dims_in = (bb.stem_width,) + widths[:-1]
        self.down = nn.ModuleList(
            Stage(dims_in[i], widths[i], layouts[i], DOWN_STRIDES[i], block_cfg(i), (), cond, ctx) for i in range(n)
        )
        self.mid = Stage(widths[-1], widths[-1], cfg.mid_layout, 1, block_cfg(n - 1), (), cond, ctx)
        # up[i] runs at the resolution of down[i]; its input is concat(previous output, skip i).
        prev = (widths[1:] + widths[-1:])
        self.up = nn.ModuleList(
            Stage(prev[i] + widths[i], widths[i], layouts[i], 1, block_cfg(i), (), cond, ctx) for i in range(n)
        )
        self.upsample = nn.ModuleList(Upsample(widths[i]) for i in range(1, n))  # after up[i], i >= 1
        self.norm_out = nn.GroupNorm(min(32, widths[0] // 4), widths[0])
        self.conv_out = nn.Conv2d(widths[0], cfg.out_channels or cfg.in_channels, 3, 1, 1)
        self.grad_checkpointing = False
        self.apply(_init_weights)
        zero_init_conditioning(self)

    def set_grad_checkpointing(self, enable: bool = True):
        self.grad_checkpointing = enable

    def _run(self, stage, x, cond, ctx, mask):
        if self.grad_checkpointing and self.training:
            return checkpoint(stage, x, cond, ctx, mask, use_reentrant=False)
        return stage(x, cond, ctx, mask)

    def forward(self, x, timesteps, text_tokens, text_mask=None):
        """x (B, C, H, W), timesteps (B,) or scalar, text_tokens (B, L, text_dim), text_mask (B, L) bool."""
        f = self.cfg.downsample_factor
        if x.shape[-2] % f or x.shape[-1] % f:
            raise ValueError(f"latent size {tuple(x.shape[-2:])} must be divisible by {f}")
        timesteps = torch.as_tensor(timesteps, device=x.device).expand(x.shape[0])
        cond = self.time_embed(timestep_embedding(timesteps, self.cfg.freq_dim))
        if text_mask is not None:
            text_mask = text_mask.to(torch.bool)
        x = self.conv_in(x)
        skips = []
        for stage in self.down:
            x = self._run(stage, x, cond, text_tokens, text_mask)
            skips.append(x)
        x = self._run(self.mid, x, cond, text_tokens, text_mask)
        for i in reversed(range(len(self.up))):
            x = self._run(self.up[i], torch.cat([x, skips[i]], dim=1), cond, text_tokens, text_mask)
            if i > 0:
                x = self.upsample[i - 1](x)
        return self.conv_out(F.silu(self.norm_out(x)))


def _init_weights(m: nn.Module):
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def zero_init_conditioning(unet: nn.Module) -> None:
    """Zero the layers the UNet adds around the classifier's blocks: each block's timestep
    modulation (shift = scale = 0 is the identity), each cross-attention's output
    projection (adds 0), and conv_out (predicts 0, as in DiT's adaLN-Zero). So at step 0 a
    down stage warm-started from the classifier computes the classifier stage's function
    exactly, and every added path starts as a no-op that gradients open up."""
    for name, module in unet.named_modules():
        layer = None
        if name.endswith(".mod"):
            layer = module[-1]  # SiLU -> Linear
        elif name.endswith(".cross_attn"):
            layer = module.proj
        if layer is not None:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
    nn.init.zeros_(unet.conv_out.weight)
    nn.init.zeros_(unet.conv_out.bias)


def load_classifier_weights(unet: AsCANUNet, classifier_state_dict: dict) -> list[tuple[str, str]]:
    """Copy a classifier's stage weights into the UNet's down path.

    `stages.{i}.<rest>` -> `down.{i}.<rest>` for every key the UNet has with the same
    shape: convs, norm affine weights, attention and MLP. Not copied: the stem (RGB vs
    latent input), the head, BatchNorm running statistics (the UNet uses GroupNorm), and
    the UNet-only timestep modulation and cross-attention. A "module." prefix (DDP) is
    stripped. Raises if a mapped key has another shape (wrong classifier variant) or
    nothing matches. Returns the (src, dst) names copied.
    """
    target = unet.state_dict()
    copied, mismatched = [], []
    with torch.no_grad():
        for src, tensor in classifier_state_dict.items():
            key = src.removeprefix("module.")
            if not key.startswith("stages."):
                continue
            dst = "down." + key.removeprefix("stages.")
            if dst not in target:
                continue  # e.g. BatchNorm running_mean: no GroupNorm counterpart
            if target[dst].shape != tensor.shape:
                mismatched.append(f"{src} {tuple(tensor.shape)} -> {dst} {tuple(target[dst].shape)}")
                continue
            target[dst].copy_(tensor)
            copied.append((src, dst))
    if mismatched:
        raise ValueError(f"classifier does not match {unet.cfg.classifier}: " + "; ".join(mismatched[:5]))
    if not copied:
        raise ValueError("no classifier weights matched the UNet's down path (expected keys 'stages.*')")
    return copied


def _cfg(classifier, **kw) -> UNetCfg:
    return UNetCfg(classifier=classifier, **kw)


# fmt: off
@register_model
def ascan_unet_tiny():  # for tests: well under 1M params
    return _cfg("ascan_nano", mid_layout="T", text_dim=32, freq_dim=32, params_m=0.311)

@register_model
def ascan_unet_t():
    return _cfg("ascan_t", params_m=96.47)

@register_model
def ascan_unet_b():
    return _cfg("ascan_b", params_m=162.36)

@register_model
def ascan_unet_l():
    return _cfg("ascan_l", params_m=259.66)

@register_model
def ascan_unet_xl():  # the paper's T2I scale (~2.4B); text_dim 2048 as for SDXL-style text encoders
    return _cfg("ascan_xl", mid_layout="TTTTTT", text_dim=2048, params_m=2375.97)
# fmt: on
