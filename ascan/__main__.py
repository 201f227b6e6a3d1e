"""Print the variant tables for the README: `python -m ascan`.

Everything is built on the meta device, so even the 2.4B UNet costs no memory.
"""

from __future__ import annotations

import torch

import ascan
from ascan.profile import count_macs, count_params


def classifier_rows(size: int = 224):
    for name in ascan.list_models(kind="classifier"):
        cfg = ascan.get_config(name)
        m = ascan.create_model(name, device="meta")
        macs = count_macs(m, torch.empty(1, 3, size, size, device="meta"))
        c = [layout.count("C") for layout in cfg.layouts]
        t = [layout.count("T") for layout in cfg.layouts]
        yield name, " / ".join(cfg.layouts), cfg.widths, sum(c), sum(t), count_params(m), macs


def unet_rows(latent: int = 64, text_len: int = 77):
    for name in ascan.list_models(kind="unet"):
        cfg = ascan.get_config(name)
        m = ascan.create_model(name, device="meta")
        x = torch.empty(1, cfg.in_channels, latent, latent, device="meta")
        txt = torch.empty(1, text_len, cfg.text_dim, device="meta")
        macs = count_macs(m, x, torch.ones(1, device="meta"), txt)
        yield name, cfg.classifier, cfg.backbone.widths, cfg.mid_layout, cfg.text_dim, count_params(m), macs


def main():
    print("| variant | layout (stages 1-4) | widths | #C | #T | params (M) | GMACs @224 |")
    print("|---|---|---|---|---|---|---|")
    for name, layout, widths, c, t, p, macs in classifier_rows():
        print(f"| {name} | {layout} | {'/'.join(map(str, widths))} | {c} | {t} | {p / 1e6:.2f} | {macs / 1e9:.2f} |")
    print()
    print("| UNet | down path = classifier | widths | middle | text dim | params (M) | GMACs @64x64 latent, 77 tokens |")
    print("|---|---|---|---|---|---|---|")
    for name, cls, widths, mid, tdim, p, macs in unet_rows():
        print(f"| {name} | {cls} | {'/'.join(map(str, widths))} | {mid} | {tdim} | {p / 1e6:.2f} | {macs / 1e9:.1f} |")


if __name__ == "__main__":
    main()
