"""The AsCAN UNet's training step vs diffusers' UNet2DConditionModel at equal params, in two
baseline styles, at several latent sizes.

    python bench/unet_step.py                                  # CPU: ascan_unet_t, 32x32 and 64x64 latents
    python bench/unet_step.py --unet ascan_unet_b --batch 32 --bf16 --compile both   # a GPU (bench/gpu.sh)
    python bench/unet_step.py --tiny                           # seconds: ascan_unet_tiny, 8x8 and 16x16

Baselines, channel width searched so params match the AsCAN UNet's (within 10 %, asserted):
- SD-1.x style: 4 levels (w, 2w, 4w, 4w), 2 ResNet layers per block, one cross-attention
  transformer in each of the first 3 levels, 8 heads;
- SDXL style: 3 levels (w, 2w, 4w), attention only in the lower two, with 2 and 10
  transformer layers, 64-d heads, linear projections (SDXL's added size/crop conditioning
  is left out: it is not part of the step's cost).
Every network gets the same step: 77 text tokens of 768-d, an MSE loss, backward, AdamW.
The machine may be shared, so the networks alternate step by step (ABC, CBA, ...), each
after its warm-up steps, and each cell is the MEDIAN of its timed steps: a change in load
hits every network alike and single slow steps do not move the figure. MFU (GPU only) =
6 x forward MACs x samples/s / the GPU's peak dense bf16 FLOP/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import ascan  # noqa: E402
from ascan.profile import count_macs, count_params  # noqa: E402
from pipeline.bench_report import add_readme_option, machine, readme_section  # noqa: E402

TEXT_DIM, TEXT_LEN = 768, 77
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense, SXM


def sd1_unet(w: int, groups: int = 32):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(in_channels=4, out_channels=4, block_out_channels=(w, 2 * w, 4 * w, 4 * w),
                                layers_per_block=2, cross_attention_dim=TEXT_DIM, attention_head_dim=8,
                                norm_num_groups=groups)


def sdxl_unet(w: int, groups: int = 32):
    from diffusers import UNet2DConditionModel

    widths = (w, 2 * w, 4 * w)
    return UNet2DConditionModel(
        in_channels=4, out_channels=4, block_out_channels=widths, layers_per_block=2, cross_attention_dim=TEXT_DIM,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2, 10), attention_head_dim=tuple(max(c // 64, 1) for c in widths),
        use_linear_projection=True, norm_num_groups=groups)


STYLES = {"SD-1.x style": sd1_unet, "SDXL style": sdxl_unet}


def matched_width(build, target: int, step: int) -> int:
    """The channel width (a multiple of `step`) whose params come closest to `target`
    (params grow with the width: a binary search over meta-device builds)."""
    def params(w):
        with torch.device("meta"):
            return count_params(build(w, groups=step))

    lo, hi = 1, 256
    while lo < hi:
        mid = (lo + hi) // 2
        if params(mid * step) < target:
            lo = mid + 1
        else:
            hi = mid
    return min((lo * step, max(lo - 1, 1) * step), key=lambda w: abs(params(w) - target))


class Net:
    """One network with its optimizer, inputs and timings."""

    def __init__(self, label, model, batch, latent, device, channels_last, compile_):
        self.label, self.params, self.is_ascan = label, count_params(model), label.startswith("ascan")
        self.x = torch.randn(batch, 4, latent, latent, device=device)
        self.t = torch.randint(0, 1000, (batch,), device=device)
        self.txt = torch.randn(batch, TEXT_LEN, TEXT_DIM, device=device)
        self.macs = count_macs(model, self.x[:1], self.t[:1], self.txt[:1])
        model = model.to(device).train()
        if channels_last:
            model, self.x = model.to(memory_format=torch.channels_last), self.x.to(memory_format=torch.channels_last)
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        self.model = torch.compile(model) if compile_ else model
        self.times: list[float] = []

    def step(self, autocast) -> None:
        with autocast():
            out = self.model(self.x, self.t, self.txt) if self.is_ascan else \
                self.model(self.x, self.t, encoder_hidden_states=self.txt).sample
            loss = F.mse_loss(out.float(), self.x.float())
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)


def run_cell(nets, steps: int, warmup: int, autocast, sync) -> None:
    for net in nets:
        for _ in range(warmup):
            net.step(autocast)
    sync()
    for i in range(steps):
        for net in (nets if i % 2 == 0 else nets[::-1]):
            t0 = time.perf_counter()
            net.step(autocast)
            sync()
            net.times.append(time.perf_counter() - t0)


def peak_flops(device, given: float | None) -> float | None:
    if given:
        return given * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(0)
    return next((v * 1e12 for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--unet", default="ascan_unet_t", help="the AsCAN UNet variant")
    ap.add_argument("--latents", type=int, nargs="+", default=[32, 64], help="latent sides (32 = 256 px images)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per network and latent size (median reported)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast + channels_last (CUDA)")
    ap.add_argument("--compile", choices=["no", "yes", "both"], default="no", help="torch.compile the networks")
    ap.add_argument("--peak-tflops", type=float, help="peak dense bf16 TFLOP/s for MFU (default: from the GPU's name)")
    ap.add_argument("--cpu", action="store_true", help="stay on CPU even with CUDA")
    ap.add_argument("--tiny", action="store_true", help="ascan_unet_tiny at 8x8 and 16x16, 2 steps (a smoke run)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    add_readme_option(ap, __file__)
    a = ap.parse_args(argv)
    if a.tiny:
        a.unet, a.latents, a.steps = "ascan_unet_tiny", [8, 16], min(a.steps, 2)
    with readme_section(a.readme, __file__):
        run(a)
    return 0


def run(a) -> None:
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device("cuda" if torch.cuda.is_available() and not a.cpu else "cpu")
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    dtype = torch.bfloat16 if a.bf16 and cuda else None

    def autocast():
        return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

    peak = peak_flops(device, a.peak_tflops)
    torch.manual_seed(0)
    with torch.device("meta"):
        target = count_params(ascan.create_model(a.unet, in_channels=4, text_dim=TEXT_DIM))
    step = 8  # channel multiple and GroupNorm groups of the baselines (32 is too coarse to match params)
    widths = {style: matched_width(build, target, step) for style, build in STYLES.items()}
    print(f"Machine: {machine()}; {'bf16 autocast, channels_last' if dtype else 'fp32'}; torch {torch.__version__}; "
          f"batch {a.batch}; median of {a.steps} alternating timed steps after {a.warmup} warm-up; "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print(f"| UNet (training step: fwd + bwd + AdamW) | compiled | params (M) | fwd GMACs / sample | latent | "
          f"ms / step (median) | samples/s | {a.unet} is faster by | MFU |")
    print("|---|---|---|---|---|---|---|---|---|")
    for compiled in {"no": [False], "yes": [True], "both": [False, True]}[a.compile]:
        for latent in a.latents:
            torch.manual_seed(0)
            models = {a.unet: ascan.create_model(a.unet, in_channels=4, text_dim=TEXT_DIM)}
            models |= {f"UNet2DConditionModel, {s} (w={w})": STYLES[s](w, groups=step) for s, w in widths.items()}
            nets = [Net(label, m, a.batch, latent, device, dtype is not None, compiled) for label, m in models.items()]
            run_cell(nets, a.steps, a.warmup + (2 if compiled else 0), autocast, sync)
            base = statistics.median(nets[0].times)
            for net in nets:
                if not a.tiny:  # the baselines' narrowest widths are bigger than ascan_unet_tiny
                    assert abs(net.params / nets[0].params - 1) < 0.1, f"{net.label}: params not within 10 % of {a.unet}"
                med = statistics.median(net.times)
                rate = a.batch / med
                mfu = f"{100 * 6 * net.macs * rate / peak:.1f} %" if peak else "-"
                print(f"| {net.label} | {'yes' if compiled else 'no'} | {net.params / 1e6:.1f} | {net.macs / 1e9:.2f} | "
                      f"{latent}x{latent} | {1000 * med:.0f} | {rate:.2f} | {med / base:.2f}x | {mfu} |", flush=True)
            del nets, models
    if a.tiny:
        print("\n--tiny: a smoke run; the narrowest baselines have more params than ascan_unet_tiny (not matched)")
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    sys.exit(main())
