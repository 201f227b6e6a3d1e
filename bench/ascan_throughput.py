"""AsCAN throughput: classifiers vs timm, asymmetric vs symmetric, UNet vs diffusers.

    python bench/ascan_throughput.py            # full run (CPU: ~6 min on 2 shared cores)
    python bench/ascan_throughput.py --quick    # batches 1 and 16, short budgets

Prints three markdown tables, all measured in this run:
1. classifiers (ascan_t/b/l, timm coatnet_0, maxvit_tiny, convnext_tiny, fastvit_t12):
   params, GMACs at 224 px, inference images/s at each batch size;
2. the ablation: each asymmetric variant vs its symmetric baseline at equal params;
3. UNet training step (forward + backward of an MSE loss): ascan_unet_t vs diffusers'
   UNet2DConditionModel sized to the same params (within 10%), same latent size.

MACs are counted on the meta device (see ascan/profile.py). On CPU a cell runs timed
passes until its time budget is spent (at least one pass, after one warm-up pass at
batch <= 16), so big batches of big models get few passes. On CUDA the models run in
bf16 autocast, channels_last, and torch.compile (unless --no-compile), with 10 warm-up
passes and synchronised timing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before timm/transformers import huggingface_hub

import timm  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import ascan  # noqa: E402
from ascan.profile import count_macs, count_params  # noqa: E402
from pipeline.bench_report import add_readme_option, machine, readme_section  # noqa: E402

TIMM_MODELS = ["coatnet_0_224", "maxvit_tiny_tf_224", "convnext_tiny", "fastvit_t12"]
ASCAN_MODELS = ["ascan_t", "ascan_b", "ascan_l"]


class Runner:
    def __init__(self, args):
        self.cuda = torch.cuda.is_available() and not args.cpu
        self.device = torch.device("cuda" if self.cuda else "cpu")
        self.compile = self.cuda and not args.no_compile
        self.budget = args.budget

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        model = model.to(self.device)
        if self.cuda:
            model = model.to(memory_format=torch.channels_last)
            if self.compile:
                model = torch.compile(model)
        return model

    def autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cuda)

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def rate(self, step, batch: int, warmup: bool = True) -> float:
        """Items/s of step() (one pass over `batch` items), run until the budget is spent."""
        for _ in range((10 if self.cuda else 1) if warmup else 0):
            step()
        self.sync()
        n, t0 = 0, time.perf_counter()
        while True:
            step()
            self.sync()
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= self.budget or (self.cuda and n >= 50):
                return batch * n / elapsed

    def image(self, batch: int, size: int) -> torch.Tensor:
        x = torch.randn(batch, 3, size, size, device=self.device)
        return x.to(memory_format=torch.channels_last) if self.cuda else x


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name.startswith("ascan"):
        return ascan.create_model(name)
    return timm.create_model(name, pretrained=False)


def meta_macs(name: str, size: int) -> int:
    with torch.device("meta"):
        model = ascan.create_model(name) if name.startswith("ascan") else timm.create_model(name, pretrained=False)
    return count_macs(model.eval(), torch.empty(1, 3, size, size, device="meta"))


def classifier_rows(runner: Runner, names, batches, size):
    rows = []
    for name in names:
        model = runner.prepare(build(name).eval())
        params, macs = count_params(model), meta_macs(name, size)
        rates = []
        with torch.inference_mode(), runner.autocast():
            for b in batches:
                x = runner.image(b, size)
                # each new batch shape recompiles: a compiled model always warms up, else compile time is timed
                rates.append(runner.rate(lambda: model(x), b, warmup=runner.compile or b <= 16))
                print(f"  {name} b{b}: {rates[-1]:.2f} img/s", file=sys.stderr, flush=True)
        rows.append((name, params, macs, rates))
    return rows


def diffusers_unet():
    """SD-1.x-style UNet2DConditionModel (4 levels, 2 layers per block, cross-attention in the
    first 3), channels scaled down to ascan_unet_t's parameter count (96 vs 96.5M)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=32, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(104, 208, 416, 416), norm_num_groups=8,
        cross_attention_dim=768, attention_head_dim=8,
    )


def unet_rows(runner: Runner, name: str, batch: int, latent: int, text_len: int = 77):
    torch.manual_seed(0)
    models = {name: ascan.create_model(name), "diffusers UNet2DConditionModel": diffusers_unet()}
    rows = []
    for label, model in models.items():
        is_ascan = label == name
        x = torch.randn(batch, 4, latent, latent, device=runner.device)
        t = torch.randint(0, 1000, (batch,), device=runner.device)
        txt = torch.randn(batch, text_len, 768, device=runner.device)
        macs = count_macs(model, x[:1], t[:1], txt[:1])
        params = count_params(model)
        model = runner.prepare(model.train())

        def step():
            with runner.autocast():
                out = model(x, t, txt) if is_ascan else model(x, t, encoder_hidden_states=txt).sample
                loss = F.mse_loss(out.float(), x)
            loss.backward()
            model.zero_grad(set_to_none=True)

        rate = runner.rate(step, batch)
        print(f"  {label} train b{batch}: {rate:.2f} samples/s", file=sys.stderr, flush=True)
        rows.append((label, params, macs, rate))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="default to batches 1,16 and a 3 s budget per cell")
    ap.add_argument("--batches", default=None, help="comma list (default 1,16,64)")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds of timed passes per cell, at least one pass (default 5)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ap.add_argument("--unet-batch", type=int, default=4)
    ap.add_argument("--unet-latent", type=int, default=32, help="latent side (32 = 256 px images)")
    ap.add_argument("--cpu", action="store_true", help="stay on CPU even if CUDA is available")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--models", default=",".join(ASCAN_MODELS + TIMM_MODELS),
                    help="comma list of classifiers for the first table (e.g. ascan_t,coatnet_0_224)")
    ap.add_argument("--skip", default="", help="comma list of tables to skip: classifiers,ablation,unet")
    add_readme_option(ap, __file__)
    args = ap.parse_args()
    with readme_section(args.readme, __file__):
        run(args)


def run(args) -> None:
    args.batches = args.batches or ("1,16" if args.quick else "1,16,64")
    args.budget = args.budget or (3.0 if args.quick else 5.0)
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    skip = set(filter(None, args.skip.split(",")))
    runner = Runner(args)
    mode = "CUDA bf16 autocast, channels_last" + (", torch.compile" if runner.compile else "") if runner.cuda else "CPU fp32"
    print(f"Machine: {machine()}; {mode}; torch {torch.__version__}, timm {timm.__version__}; budget {args.budget:g} s/cell\n")

    if "classifiers" not in skip:
        rows = classifier_rows(runner, args.models.split(","), batches, args.size)
        head = " | ".join(f"img/s b{b}" for b in batches)
        print(f"| model | params (M) | GMACs @{args.size} | {head} |")
        print("|---|---|---|" + "---|" * len(batches))
        for name, p, macs, rates in rows:
            print(f"| {name} | {p / 1e6:.1f} | {macs / 1e9:.2f} | " + " | ".join(f"{r:.2f}" for r in rates) + " |")
        by = {r[0]: r for r in rows}
        if "coatnet_0_224" in by:
            t, c = by["ascan_t"], by["coatnet_0_224"]
            print(f"\nascan_t / coatnet_0: {', '.join(f'{a / b:.2f}x at b{n}' for a, b, n in zip(t[3], c[3], batches))}; "
                  f"MACs {t[2] / c[2]:.2f}x (target on GPU: >= 1.2x images/s at <= 1x MACs)")
        print()

    if "ablation" not in skip:
        ab_batch = 16 if 16 in batches else batches[-1]
        names = [n for a in ASCAN_MODELS for n in (a, a + "_sym")]
        rows = classifier_rows(runner, names, [ab_batch], args.size)
        print(f"| variant | layout | params (M) | GMACs @{args.size} | img/s b{ab_batch} | asym / sym img/s |")
        print("|---|---|---|---|---|---|")
        for (name, p, macs, rates), other in zip(rows, [rows[i ^ 1] for i in range(len(rows))]):
            layout = " / ".join(ascan.get_config(name).layouts)
            ratio = f"{rates[0] / other[3][0]:.2f}x" if not name.endswith("_sym") else ""
            print(f"| {name} | {layout} | {p / 1e6:.1f} | {macs / 1e9:.2f} | {rates[0]:.2f} | {ratio} |")
        print()

    if "unet" not in skip:
        rows = unet_rows(runner, "ascan_unet_t", args.unet_batch, args.unet_latent)
        lat = args.unet_latent
        print(f"| UNet (training step, batch {args.unet_batch}, {lat}x{lat} latent, 77 text tokens) "
              f"| params (M) | fwd GMACs / sample | samples/s |")
        print("|---|---|---|---|")
        for label, p, macs, rate in rows:
            print(f"| {label} | {p / 1e6:.1f} | {macs / 1e9:.2f} | {rate:.2f} |")
        (_, pa, _, ra), (_, pd, _, rd) = rows
        assert abs(pd / pa - 1) < 0.1, "the diffusers UNet must match the AsCAN UNet's params within 10%"
        print(f"\nascan / diffusers: {ra / rd:.2f}x training throughput at {pa / pd:.2f}x params "
              f"(target on GPU: >= 1.3x)")


if __name__ == "__main__":
    main()
