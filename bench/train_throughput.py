"""Trainer throughput: does the loader keep up, how fast does each stage train, and the
AsCAN UNet's training step vs diffusers' UNet2DConditionModel at about equal params.

    python bench/train_throughput.py [--steps 3] [--shards 'build/demo/output/shards/*.tar'] [--real]

Everything runs through the trainer's own code (train.data loader, train.tasks losses,
train.diffusion). Without --shards it writes shards in the pipeline's sample format
(jpg + txt + json with the stored size) from scikit-image's photos. The tiny configs are
workflows/train_tiny.yaml's models; --real adds the real-size models (ascan_b /
ascan_unet_b, the SD VAE architecture) with random weights and the offline MiniLM text
encoder (no hub weights here; the compute is the same shape). --latents adds the training
step at 256 px with online encoding vs precomputed latents (train/precompute.py), with the
SD-VAE architecture and a CLIP-L-sized text encoder (random weights) around ascan_unet_b,
and precompute's images/s. Runs on CUDA when present (fp32); model FLOPs utilisation is not
reported yet.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from pipeline.bench_report import add_readme_option, machine, readme_section
from train.buckets import bucket_table
from train.config import parse_config
from train.data import expand_shards, make_loader

ROOT = Path(__file__).resolve().parent.parent
SD_VAE = {"block_out_channels": [128, 256, 512, 512], "latent_channels": 4, "layers_per_block": 2,
          "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4, "sample_size": 256}


def write_shards(folder: Path, n_shards: int = 4, per_shard: int = 32) -> str:
    import webdataset as wds
    from PIL import Image
    from skimage import data as skdata

    photos = [p for p in sorted(Path(skdata.__file__).parent.iterdir()) if p.suffix in (".png", ".jpg")]
    i = 0
    for s in range(n_shards):
        with wds.TarWriter(str(folder / f"{s:05d}.tar")) as sink:
            for _ in range(per_shard):
                im = Image.open(photos[i % len(photos)]).convert("RGB")
                im.thumbnail((512, 512))
                buf = io.BytesIO()
                im.save(buf, "JPEG", quality=90)
                meta = {"sizes": {"width": im.width, "height": im.height}}
                sink.write({"__key__": f"{i:06d}", "jpg": buf.getvalue(), "txt": photos[i % len(photos)].stem.encode(),
                            "json": json.dumps(meta).encode()})
                i += 1
    return str(folder / "*.tar")


# CLIP ViT-L/14's text tower (openai/clip-vit-large-patch14): 123M params, 768-d tokens, 77 positions.
CLIP_L_TEXT = {"vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
               "num_attention_heads": 12, "max_position_embeddings": 77, "projection_dim": 768}


def clip_l_text_encoder(folder: Path) -> Path:
    """A random CLIPTextModel of CLIP-L's size, saved to load by path like the real one. The
    tokenizer maps bytes to ids (no BPE merges offline); captions are padded to 77 tokens
    either way, so the encoder's compute is CLIP-L's."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    tok = CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[])
    torch.manual_seed(0)
    model = CLIPTextModel(CLIPTextConfig(**CLIP_L_TEXT, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                         pad_token_id=tok.pad_token_id))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def tiny_cfg(vae_dir: Path, shards: str, real: bool = False) -> dict:
    import yaml

    cfg = yaml.safe_load((ROOT / "workflows" / "train_tiny.yaml").read_text())
    cfg["vae"]["path"] = str(vae_dir / ("sd-vae-arch" if real else "tiny"))
    # A random VAE built from init_config at first use: no stage 0 here, so no measured scale.
    cfg["stages"].pop(0, None)
    cfg["vae"]["scaling_factor"] = None
    if real:
        cfg["vae"]["init_config"] = SD_VAE
        cfg["models"] = {"classifier": {"name": "ascan_b", "overrides": {"c_norm": "group"}}, "unet": {"name": "ascan_unet_b"}}
        for s, res in ((1, 224), (2, 256), (3, 512), (4, 1024)):
            cfg["stages"][s]["resolution"] = res
    for s in (2, 3, 4):
        cfg["stages"][s]["data"] = {"train": shards}
    return cfg


def timed_steps(task, model, batches, steps: int, device) -> tuple[float, int]:
    """Seconds and images for `steps` optimizer steps after one warm-up step."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    images, t0 = 0, None
    for i in range(steps + 1):
        if i == 1:
            _sync(device)
            t0, images = time.perf_counter(), 0
        batch = batches[i % len(batches)]
        loss = task.loss(model, batch, gen)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        images += batch["size"]
    _sync(device)
    return time.perf_counter() - t0, images


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def stage_row(cfg_dict, stage, shards, steps, batch, device, label):
    from train.tasks import make_task

    cfg = parse_config(cfg_dict)
    sc = cfg.stages[stage]
    task = make_task(cfg, sc, device)
    model = task.model.to(device).train()
    if stage == 1:
        size = sc.resolution
        batches = [{"pixels": torch.randn(batch, 3, size, size), "label": torch.randint(0, 10, (batch,)), "size": batch}]
        shape = f"{size}x{size}"
    else:
        table = bucket_table(sc.resolution, task.pixel_multiple) if sc.buckets else [(sc.resolution, sc.resolution)]
        loader = make_loader(expand_shards(shards, "bench"), "shards", task="t2i", train=True, batch_size=batch,
                             bucket_table=table, seed=0, rank=0, world=1, num_workers=0)
        it = iter(loader)
        batches = [next(it) for _ in range(2)]
        shape = ",".join(sorted({f"{b['bucket'][0]}x{b['bucket'][1]}" for b in batches}))
    secs, images = timed_steps(task, model, batches, steps, device)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    name = cfg.models.classifier.name if stage == 1 else cfg.models.unet.name
    cells = [label, f"{stage} ({sc.task})", name, f"{params:.2f}", shape, batch, f"{images / secs:.2f}", f"{steps / secs:.3f}"]
    return "| " + " | ".join(map(str, cells)) + " |"


def loader_row(shards, batch, workers, resolution=64) -> float:
    loader = make_loader(expand_shards(shards, "bench"), "shards", task="t2i", train=True, batch_size=batch,
                         bucket_table=[(resolution, resolution)], seed=0, rank=0, world=1, num_workers=workers)
    it = iter(loader)
    for _ in range(3):
        next(it)
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < 5.0:
        n += next(it)["size"]
    rate = n / (time.perf_counter() - t0)
    return rate


class DiffusersUNet(torch.nn.Module):
    """UNet2DConditionModel behind the AsCAN UNet's call signature."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x, t, tokens, mask=None):
        return self.unet(x, t, encoder_hidden_states=tokens, encoder_attention_mask=mask).sample


def diffusers_unet(text_dim: int, widths: tuple[int, ...], layers: int, heads: int):
    from diffusers import UNet2DConditionModel

    n = len(widths)
    return UNet2DConditionModel(
        sample_size=32, in_channels=4, out_channels=4, block_out_channels=widths, layers_per_block=layers,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
        cross_attention_dim=text_dim, attention_head_dim=heads, norm_num_groups=min(32, widths[0] // 2))


def unet_rows(cfg_dict, shards, steps, batch, device, pairs) -> list[str]:
    from train.tasks import T2ITask

    rows = []
    cfg = parse_config(cfg_dict)
    task = T2ITask(cfg, cfg.stages[2], device)
    loader = make_loader(expand_shards(shards, "bench"), "shards", task="t2i", train=True, batch_size=batch,
                         bucket_table=[(cfg.stages[2].resolution,) * 2], seed=0, rank=0, world=1, num_workers=0)
    it = iter(loader)
    batches = [next(it) for _ in range(2)]
    for ascan_name, dif_kwargs in pairs:
        import ascan

        a = ascan.create_model(ascan_name, in_channels=4, text_dim=task.text_encoder.dim).to(device)
        d = DiffusersUNet(diffusers_unet(task.text_encoder.dim, **dif_kwargs)).to(device)
        for name, model in ((ascan_name, a), (f"UNet2DConditionModel {dif_kwargs['widths']}", d)):
            secs, images = timed_steps(task, model.train(), batches, steps, device)
            params = sum(p.numel() for p in model.parameters()) / 1e6
            res = cfg.stages[2].resolution
            cells = [name, f"{params:.2f}", f"{res} px ({res // 4} latent)", batch, f"{images / secs:.2f}", f"{1000 * secs / steps:.0f}"]
            rows.append("| " + " | ".join(map(str, cells)) + " |")
    return rows


def latents_rows(tmp: Path, steps: int, batch: int, device, real: bool = True) -> list[str]:
    """ascan_unet_b at 256 px: the step encoding online vs reading precomputed latents, and precompute.
    real=False: the tiny config's models (tiny VAE, MiniLM text, ascan_unet_tiny at 64 px), a smoke run."""
    from accelerate import Accelerator

    from train.encoders import TextEncoder, load_vae
    from train.latents import EMPTY_CAPTION
    from train.precompute import encode_shard, save_empty_caption
    from train.tasks import T2ITask

    src = tmp / "latent-src"
    src.mkdir()
    shards = write_shards(src, n_shards=1, per_shard=batch * (steps + 1))
    cfg = tiny_cfg(tmp, shards, real=real)
    cfg["vae"]["scaling_factor"] = 0.18215  # SD's; random weights have no measured one
    if real:
        cfg["text_encoder"] = {"path": str(clip_l_text_encoder(tmp / "clip-l-text")), "kind": "clip", "max_length": 77}
    cfg["stages"] = {2: {**cfg["stages"][2], "batch_size": batch, "data": {"train": shards}}}
    parsed = parse_config(cfg)
    sc = parsed.stages[2]
    table = [(sc.resolution, sc.resolution)]

    # precompute: both encoders over the shard, timed without model loading
    acc = Accelerator(cpu=device.type == "cpu")
    vae, text = load_vae(parsed.vae, device), TextEncoder(parsed.text_encoder, device)
    out = tmp / "latents"
    out.mkdir()
    save_empty_caption(text, acc, out / EMPTY_CAPTION)
    _sync(device)
    t0 = time.perf_counter()
    counts = encode_shard(expand_shards(shards, "bench")[0], out, vae, text, table, sc, batch, acc)
    _sync(device)
    pre_rate = counts["samples"] / (time.perf_counter() - t0)
    del vae, text

    task = T2ITask(parsed, sc, device)
    model = task.model.to(device).train()
    batches = {}
    for kind, source in (("shards", shards), ("latents", str(out / "00000.tar"))):
        loader = make_loader(expand_shards(source, "bench"), kind, task="t2i", train=True, batch_size=batch,
                             bucket_table=table, seed=0, rank=0, world=1, num_workers=0)
        it = iter(loader)
        batches[kind] = [next(it) for _ in range(steps + 1)]
    # The machine is shared: the two kinds alternate step by step (ABBA), after one warm-up step
    # each, and each reports its median step, so a change in load hits both alike.
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    empty = task.empty_caption()  # the online path's, encoded; the latents' is stored
    times = {"shards": [], "latents": []}
    order = [("shards", "latents"), ("latents", "shards")]
    for i in range(steps + 1):
        for kind in order[i % 2]:
            task._empty = empty if kind == "shards" else None
            if kind == "latents":
                task.use_latents(out)
            b = batches[kind][i]
            _sync(device)
            t0 = time.perf_counter()
            task.loss(model, b, gen).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            _sync(device)
            if i:  # step 0 warms up
                times[kind].append((time.perf_counter() - t0) / b["size"])
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = []
    for kind, label in (("shards", "online: VAE encoder + text encoder in the step"),
                        ("latents", "precomputed latents (train/precompute.py)")):
        rows.append(f"| {label} | {1 / med[kind]:.3f} | {1000 * med[kind]:.0f} | {med['shards'] / med[kind]:.2f}x |")
    rows.append(f"| precompute: VAE encoder + text encoder, batch {batch} | {pre_rate:.3f} | {1000 / pre_rate:.0f} | - |")
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=3, help="timed optimizer steps per cell (after one warm-up)")
    p.add_argument("--shards", help="shard pattern (default: written from scikit-image photos)")
    p.add_argument("--real", action="store_true", help="also the real-size models (slow on CPU)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: no spinning on a shared machine)")
    p.add_argument("--latents", action="store_true", help="also online encoding vs precomputed latents (real sizes, slow on CPU)")
    p.add_argument("--latents-only", action="store_true", help="only that table")
    p.add_argument("--tiny", action="store_true", help="the latents table with the tiny models (a smoke run)")
    add_readme_option(p, __file__)
    a = p.parse_args(argv)
    with readme_section(a.readme, __file__):
        run(a)
    return 0


def run(a) -> None:
    torch.set_num_threads(a.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tmp = Path(tempfile.mkdtemp(prefix="bench-train-"))
    shards = a.shards or write_shards(tmp)
    print(f"Machine: {machine()}; load average {os.getloadavg()[0]:.1f}; torch {torch.__version__}; {a.steps} timed steps per cell\n")
    if a.latents or a.latents_only:
        batch = 2 if device.type == "cpu" else 32
        what = ("ascan_unet_tiny step, 64 px, tiny VAE + MiniLM (--tiny)" if a.tiny else
                "ascan_unet_b step, 256 px, SD-VAE + CLIP-L-sized text encoder (random weights)")
        steps = a.steps if a.tiny else max(a.steps, 4)
        print(f"| {what}, batch {batch}, median of {steps} alternating steps | images/s | ms/image | vs online |")
        print("|---|---|---|---|")
        for row in latents_rows(tmp, steps, batch, device, real=not a.tiny):
            print(row)
        print(f"\nload average after: {os.getloadavg()[0]:.1f}\n")
        if a.latents_only:
            return

    # 1. loader vs consumption (tiny stage 2: 64 px, batch 4)
    cfg = tiny_cfg(tmp, shards)
    step_row = stage_row(cfg, 2, shards, a.steps, 4, device, "tiny")
    consumed = float(step_row.split("|")[7])
    print("| loader (64 px, batch 4) | workers | samples/s | training step consumes (images/s) | loader / step |")
    print("|---|---|---|---|---|")
    for workers in (0, 2):
        rate = loader_row(shards, 4, workers)
        print(f"| decode + bucket + crop | {workers} | {rate:.1f} | {consumed:.1f} | {rate / consumed:.1f}x |")

    # 2. images/s per stage
    print("\n| config | stage | model | params (M) | size | batch | images/s | steps/s |")
    print("|---|---|---|---|---|---|---|---|")
    print(stage_row(cfg, 1, shards, a.steps, 32, device, "tiny"))
    print(step_row)
    print(stage_row(cfg, 3, shards, a.steps, 2, device, "tiny"))
    print(stage_row(cfg, 4, shards, a.steps, 2, device, "tiny"))
    if a.real:
        real = tiny_cfg(tmp, shards, real=True)
        small = device.type == "cpu"
        print(stage_row(real, 1, shards, a.steps, 4 if small else 64, device, "real"))
        print(stage_row(real, 2, shards, a.steps, 1 if small else 32, device, "real"))
        if not small:
            print(stage_row(real, 3, shards, a.steps, 8, device, "real"))
            print(stage_row(real, 4, shards, a.steps, 2, device, "real"))

    # 3. AsCAN UNet vs diffusers UNet2DConditionModel, same loss, data and encoders
    print("\n| UNet (in this trainer) | params (M) | input | batch | images/s | ms/step |")
    print("|---|---|---|---|---|---|")
    pairs = [("ascan_unet_tiny", {"widths": (16, 32, 24), "layers": 1, "heads": 8})]
    if a.real:
        pairs.append(("ascan_unet_t", {"widths": (96, 192, 384, 384), "layers": 2, "heads": 8}))
    for row in unet_rows(cfg, shards, a.steps, 4, device, pairs):
        print(row)


if __name__ == "__main__":
    sys.exit(main())
