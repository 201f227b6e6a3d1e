"""The two AsCAN blocks and the stage that strings them together.

C block: FusedMBConv (3x3 expansion conv, norm, act, 1x1 projection, norm, residual).
T block: pre-norm transformer block (self-attention through
`F.scaled_dot_product_attention`, optional cross-attention to text tokens, MLP).

Both take the same constructor arguments and the same forward arguments, and both work
on NCHW feature maps, so a stage is just a layout string such as "CCCTTT" mapped to
blocks. The first block of a stage changes width and/or stride; the others keep them.

In the classifier `cond_dim = ctx_dim = 0`. In the UNet `cond_dim > 0` adds adaLN-style
scale/shift from the timestep embedding (C and T blocks), and `ctx_dim > 0` adds
cross-attention to the text tokens (T blocks only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from timm.layers import DropPath, make_divisible
from torch import nn

LAYOUT_RE = re.compile(r"^C*T*$")  # C before T inside a stage


@dataclass(frozen=True)
class BlockCfg:
    expansion: float = 4.0  # C block hidden width = in_dim * expansion
    mlp_ratio: float = 4.0  # T block MLP hidden width = out_dim * mlp_ratio
    head_dim: int = 32  # T block heads = out_dim // head_dim
    norm: str = "batch"  # C block norm: "batch" (classifier) or "group" (UNet: no batch stats)


def conv_norm(norm: str, dim: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(dim)
    if norm == "group":
        return nn.GroupNorm(min(32, dim // 4) if dim >= 8 else 1, dim)
    raise ValueError(f"unknown norm {norm!r}: use 'batch' or 'group'")


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class CBlock(nn.Module):
    """FusedMBConv. A stride/width change puts avg-pool + 1x1 conv on the shortcut."""

    def __init__(self, in_dim, out_dim, stride=1, cfg=BlockCfg(), drop_path=0.0, cond_dim=0, ctx_dim=0):
        super().__init__()
        # Expand the narrower side: the input in the classifier (as in EfficientNetV2), the
        # output in the UNet's up path, whose first block takes concat(x, skip).
        hidden = make_divisible(min(in_dim, out_dim) * cfg.expansion, 8)
        self.conv_exp = nn.Conv2d(in_dim, hidden, 3, stride, 1, bias=False)
        self.norm1 = conv_norm(cfg.norm, hidden)
        self.act = nn.GELU()
        self.conv_pwl = nn.Conv2d(hidden, out_dim, 1, bias=False)
        self.norm2 = conv_norm(cfg.norm, out_dim)
        # Timestep FiLM on the expanded features (UNet only).
        self.mod = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 2 * hidden)) if cond_dim else None
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(stride) if stride > 1 else nn.Identity(),
            nn.Conv2d(in_dim, out_dim, 1) if in_dim != out_dim else nn.Identity(),
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x, cond=None, ctx=None, ctx_mask=None):
        h = self.norm1(self.conv_exp(x))
        if self.mod is not None:
            shift, scale = self.mod(cond)[:, :, None, None].chunk(2, dim=1)
            h = modulate(h, shift, scale)
        h = self.norm2(self.conv_pwl(self.act(h)))
        return self.shortcut(x) + self.drop_path(h)


class Attention(nn.Module):
    """Multi-head attention; self-attention when ctx is None. Plain SDPA, no approximation."""

    def __init__(self, in_dim, out_dim, head_dim, ctx_dim=None):
        super().__init__()
        if out_dim % head_dim:
            raise ValueError(f"width {out_dim} is not a multiple of head_dim {head_dim}")
        self.heads = out_dim // head_dim
        self.cross = ctx_dim is not None
        if self.cross:
            self.q = nn.Linear(in_dim, out_dim)
            self.kv = nn.Linear(ctx_dim, 2 * out_dim)
        else:
            self.qkv = nn.Linear(in_dim, 3 * out_dim)
        self.proj = nn.Linear(out_dim, out_dim)

    def forward(self, x, ctx=None, ctx_mask=None):
        B, N, _ = x.shape
        if self.cross:
            q, (k, v) = self.q(x), self.kv(ctx).chunk(2, dim=-1)
        else:
            q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))
        mask = None
        if ctx_mask is not None:
            # (B, L) True = real token. A row with no real token attends to all (no NaN).
            ctx_mask = ctx_mask | ~ctx_mask.any(dim=-1, keepdim=True)
            mask = ctx_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(B, N, -1))


class TBlock(nn.Module):
    """Pre-norm transformer block on the flattened feature map.

    A stride change avg-pools first (CoAtNet-style); a width change projects the
    shortcut with a linear layer, and attention maps in_dim -> out_dim.
    """

    def __init__(self, in_dim, out_dim, stride=1, cfg=BlockCfg(), drop_path=0.0, cond_dim=0, ctx_dim=0):
        super().__init__()
        self.pool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.shortcut = nn.Linear(in_dim, out_dim) if in_dim != out_dim else nn.Identity()
        self.norm1 = nn.LayerNorm(in_dim)
        self.attn = Attention(in_dim, out_dim, cfg.head_dim)
        if ctx_dim:
            self.norm_cross = nn.LayerNorm(out_dim)
            self.cross_attn = Attention(out_dim, out_dim, cfg.head_dim, ctx_dim=ctx_dim)
        else:
            self.cross_attn = None
        self.norm2 = nn.LayerNorm(out_dim)
        hidden = int(out_dim * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(out_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))
        # adaLN: timestep -> scale/shift of the self-attention and MLP norms (UNet only).
        self.mod = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 2 * in_dim + 2 * out_dim)) if cond_dim else None
        self.split = (in_dim, in_dim, out_dim, out_dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x, cond=None, ctx=None, ctx_mask=None):
        x = self.pool(x)
        B, _, H, W = x.shape
        x = x.flatten(2).transpose(1, 2)  # (B, HW, C); a free view for channels_last input
        h1 = self.norm1(x)
        if self.mod is not None:
            sh1, sc1, sh2, sc2 = self.mod(cond)[:, None, :].split(self.split, dim=-1)
            h1 = modulate(h1, sh1, sc1)
        x = self.shortcut(x) + self.drop_path(self.attn(h1))
        if self.cross_attn is not None:
            x = x + self.drop_path(self.cross_attn(self.norm_cross(x), ctx, ctx_mask))
        h2 = self.norm2(x)
        if self.mod is not None:
            h2 = modulate(h2, sh2, sc2)
        x = x + self.drop_path(self.mlp(h2))
        return x.transpose(1, 2).reshape(B, -1, H, W)


BLOCKS = {"C": CBlock, "T": TBlock}


def check_layout(layout: str) -> str:
    if not layout or not LAYOUT_RE.match(layout):
        raise ValueError(f"stage layout {layout!r}: use one or more C then T, e.g. 'CCCTTT'")
    return layout


class Stage(nn.Module):
    """Blocks from a layout string; the first one carries the stride and width change."""

    def __init__(self, in_dim, out_dim, layout, stride=1, cfg=BlockCfg(), drop_path=(), cond_dim=0, ctx_dim=0):
        super().__init__()
        check_layout(layout)
        dpr = list(drop_path) or [0.0] * len(layout)
        self.blocks = nn.ModuleList(
            BLOCKS[kind](in_dim if i == 0 else out_dim, out_dim, stride if i == 0 else 1, cfg, dpr[i], cond_dim, ctx_dim)
            for i, kind in enumerate(layout)
        )

    def forward(self, x, cond=None, ctx=None, ctx_mask=None):
        for block in self.blocks:
            x = block(x, cond, ctx, ctx_mask)
        return x
