"""AsCAN image classifier: conv stem, four stages of C/T blocks, pooling, linear head.

Stage i runs at stride 2**(i+2) (stem at 2, stage 1 at 4, ..., stage 4 at 32), like
CoAtNet. Layouts are asymmetric: C blocks (cheap at high resolution) early, T blocks
(global attention, cheap on few tokens) late. `*_sym` variants spread the same blocks
evenly at the same parameter count, for the ablation.
"""

from __future__ import annotations

from dataclasses import dataclass

from timm.layers import trunc_normal_
from torch import nn

from ascan.blocks import BlockCfg, Stage, check_layout
from ascan.registry import register_model


@dataclass(frozen=True)
class ClassifierCfg:
    layouts: tuple[str, ...]  # one layout string per stage, e.g. ("CC", "CCC", "CCCTTT", "TTTT")
    widths: tuple[int, ...]  # output width of each stage
    stem_width: int = 64
    expansion: tuple[float, ...] = (4.0, 4.0, 4.0, 4.0)  # C block expansion per stage
    mlp_ratio: float = 4.0
    head_dim: int = 32
    c_norm: str = "batch"  # "group" matches the UNet's C blocks exactly (for warm-starting)
    num_classes: int = 1000
    in_chans: int = 3
    drop_path: float = 0.0  # max stochastic depth, linear over all blocks
    params_m: float = 0.0  # documented parameter count (millions, 1000 classes); tests check it
    kind = "classifier"

    def __post_init__(self):
        if not len(self.layouts) == len(self.widths) == len(self.expansion):
            raise ValueError("layouts, widths and expansion need one entry per stage")
        for layout in self.layouts:
            check_layout(layout)

    def block_cfg(self, stage: int) -> BlockCfg:
        return BlockCfg(self.expansion[stage], self.mlp_ratio, self.head_dim, self.c_norm)

    @property
    def model_cls(self):
        return AsCANClassifier


class Stem(nn.Sequential):
    def __init__(self, in_chans: int, width: int, norm: str):
        act = nn.GELU()
        norm_layer = nn.BatchNorm2d(width) if norm == "batch" else nn.GroupNorm(1, width)
        super().__init__(nn.Conv2d(in_chans, width, 3, 2, 1, bias=False), norm_layer, act,
                         nn.Conv2d(width, width, 3, 1, 1))


class AsCANClassifier(nn.Module):
    def __init__(self, cfg: ClassifierCfg):
        super().__init__()
        self.cfg = cfg
        self.stem = Stem(cfg.in_chans, cfg.stem_width, cfg.c_norm)
        n_blocks = sum(map(len, cfg.layouts))
        dpr = [cfg.drop_path * k / max(1, n_blocks - 1) for k in range(n_blocks)]
        stages, in_dim, k = [], cfg.stem_width, 0
        for i, (layout, width) in enumerate(zip(cfg.layouts, cfg.widths)):
            stages.append(Stage(in_dim, width, layout, 2, cfg.block_cfg(i), dpr[k:k + len(layout)]))
            in_dim, k = width, k + len(layout)
        self.stages = nn.ModuleList(stages)
        self.norm = nn.LayerNorm(in_dim)
        self.head = nn.Linear(in_dim, cfg.num_classes)
        self.apply(_init_weights)

    def forward_features(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x

    def forward(self, x):
        x = self.forward_features(x).mean(dim=(2, 3))
        return self.head(self.norm(x))


def _init_weights(m: nn.Module):
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def _cfg(layouts, widths, **kw) -> ClassifierCfg:
    return ClassifierCfg(layouts=layouts, widths=widths, **kw)


# fmt: off
# Sizes are set to sit beside timm's CoAtNet/MaxViT (see README "AsCAN models").
@register_model
def ascan_nano():  # tiny, for tests and the tiny UNet
    return _cfg(("C", "CC", "CT", "TT"), (8, 16, 24, 32), stem_width=8, head_dim=8, params_m=0.094)

@register_model
def ascan_t():  # ~ coatnet_0 / maxvit_tiny
    return _cfg(("CC", "CCC", "CCCTTT", "TTTTT"), (64, 128, 256, 512), stem_width=32, params_m=26.11)

@register_model
def ascan_b():  # ~ coatnet_1 / maxvit_small
    return _cfg(("CC", "CCC", "CCCCCTTTTTT", "TTTT"), (64, 128, 320, 640), stem_width=48, params_m=46.31)

@register_model
def ascan_l():  # ~ coatnet_2
    return _cfg(("CC", "CCCC", "CCCCCTTTTTTTTT", "TTTT"), (96, 192, 384, 768), stem_width=64, params_m=75.25)

@register_model
def ascan_xl():  # backbone of ascan_unet_xl (~2.4B UNet, the paper's T2I scale); C blocks expand 2x at 1280+
    return _cfg(("CC", "CCCC", "CCCTTTTTTTT", "TTTTTTTTTTTTT"), (320, 640, 1280, 1536), stem_width=160,
                expansion=(4, 4, 2, 2), head_dim=64, params_m=662.85)

# Symmetric baselines for the ablation: every stage has as many C as T blocks, same widths,
# depths chosen for the same parameter count (within 1%) and, where possible, the same
# number of C and T blocks as the asymmetric variant.
@register_model
def ascan_t_sym():
    return _cfg(("CCCTTT", "CT", "CCTT", "CCTT"), (64, 128, 256, 512), stem_width=32, params_m=26.21)

@register_model
def ascan_b_sym():
    return _cfg(("CCCTTT", "CCTT", "CCCTTT", "CCTT"), (64, 128, 320, 640), stem_width=48, params_m=46.13)

@register_model
def ascan_l_sym():
    return _cfg(("CCCTTT", "CCTT", "CCCCTTTT", "CCTT"), (96, 192, 384, 768), stem_width=64, params_m=75.92)
# fmt: on
