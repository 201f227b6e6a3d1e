"""Does stage 1 help stage 2? The paper's multi-stage claim at toy scale.

    python bench/stage1_pretraining.py [--seeds 3] [--stage1-steps 100] [--steps 240]
                                       [--work build/stage1_pretraining] [--json out.json] [--readme]

The same T2I task (coloured shapes, experiments/shapes_t2i.py; 32 px, ascan_unet_tiny, the
tiny VAE trained by stage 0) trained for `--steps` steps four ways, each with several seeds:

- scratch: `init_from: none`;
- classifier: warm-started from a stage-1 AsCAN classifier (ascan_nano, group norm) trained
  on scikit-learn's real digits (the down path copied, the added layers zero);
- shuffled classifier: the same checkpoint with every tensor's values permuted (same weight
  statistics, no learned structure: the control for "it only helps through the init scale");
- generative: stage 1 is T2I on the digits folder with "a photo of a digit N" captions,
  which transfers the whole UNet.

Reported: validation loss (raw weights, fixed noise, held-out shard) over steps, steps to
reach the scratch runs' final validation loss, and prompt accuracy (the checker on every
prompt x 2 seeds, raw weights) at half and all of the steps. Whatever it shows.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

from experiments.shapes_t2i import bench_main, build_shards, run, sample_accuracy, train_config
from pipeline.bench_report import machine
from train import checkpoint as ckpt_io
from train.make_digits import write_digits
from train.toy_shapes import write_dataset

VARIANTS = ("scratch", "classifier", "shuffled classifier", "generative")


def shuffled_copy(ckpt: Path, dest: Path, seed: int) -> Path:
    """The checkpoint with each tensor's values randomly permuted (a stage-1 init control)."""
    shutil.copytree(ckpt, dest)
    gen = torch.Generator().manual_seed(seed)
    sd = ckpt_io.load_weights(ckpt / "model.safetensors")
    shuffled = {k: v.flatten()[torch.randperm(v.numel(), generator=gen)].reshape(v.shape) for k, v in sd.items()}
    ckpt_io.save_weights(shuffled, dest / "model.safetensors")
    return dest


def variant_config(variant: str, out_dir: Path, shards: str, vae_dir: Path, digits: Path, seed: int, init: str,
                   a) -> dict:
    cfg = train_config(out_dir, shards, vae_dir, a)
    cfg["seed"] = seed
    cfg["models"]["classifier"] = {"name": "ascan_nano", "overrides": {"c_norm": "group"}}
    stage1 = {"resolution": 32, "batch_size": 32, "max_steps": a.stage1_steps, "warmup_steps": 10,
              "lr_schedule": "cosine", "checkpoint_every": a.stage1_steps}
    if variant == "classifier":
        cfg["stages"][1] = {"task": "classify", "num_classes": 10, "lr": 3e-3, "weight_decay": 0.05,
                            "label_smoothing": 0.0, **stage1,
                            "data": {"train": str(digits / "train"), "val": str(digits / "val"), "num_workers": 1}}
    elif variant == "generative":
        cfg["stages"][1] = {"task": "t2i", "lr": 1e-3, **stage1, "data": {"train": str(digits / "train"), "num_workers": 1}}
    s2 = cfg["stages"][2]
    s2.update(init_from=init, val_every=max(1, a.steps // 6), checkpoint_every=a.steps // 2, keep_checkpoints=2)
    return cfg


def val_curve(stage_dir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (stage_dir / "val.jsonl").read_text().splitlines()]
    return {r["step"]: r["val/loss"] for r in rows}


def experiment(a) -> dict:
    work = Path(a.work)
    t0 = time.time()
    shards = build_shards(write_dataset(work / "images", a.per_prompt, seed=0), work / "build")
    digits = write_digits(work / "digits", size=32, val_fraction=0.2)
    vae_dir = work / "vae"
    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for seed in range(a.seeds):
        outs = {v: work / "runs" / v.replace(" ", "_") / f"seed{seed}" for v in VARIANTS}
        configs = {v: outs[v] / "config.yaml" for v in VARIANTS}

        def write_config(variant: str, init: str) -> None:
            outs[variant].mkdir(parents=True, exist_ok=True)
            cfg = variant_config(variant, outs[variant], shards, vae_dir, digits, seed, init, a)
            configs[variant].write_text(yaml.safe_dump(cfg))

        for variant in ("scratch", "classifier", "generative"):
            write_config(variant, "none" if variant == "scratch" else "previous")
        if not (vae_dir / "config.json").exists():
            run(["train/stage.py", "--stage", "0", "--config", str(configs["scratch"])])
        # two runs side by side: each is one thread, the machine has two cores
        run(*(["train/stage.py", "--stage", "1", "--config", str(configs[v])] for v in ("classifier", "generative")))
        source = ckpt_io.final_checkpoint(outs["classifier"] / "stage1")
        write_config("shuffled classifier", str(shuffled_copy(source, outs["shuffled classifier"] / "shuffled_stage1", seed)))
        for pair in (VARIANTS[:2], VARIANTS[2:]):
            run(*(["train/stage.py", "--stage", "2", "--config", str(configs[v])] for v in pair))
        for variant in VARIANTS:
            stage2 = outs[variant] / "stage2"
            accuracy = {}
            for ckpt in ckpt_io.complete_checkpoints(stage2):
                step = ckpt_io.read_state(ckpt)["step"]
                accuracy[step] = sample_accuracy(ckpt, outs[variant] / "samples" / f"step{step}", 2, "model")["all"]
            runs[variant].append({"curve": val_curve(stage2), "accuracy": accuracy})
            print(f"{variant} seed {seed}: final val loss {val_curve(stage2)[a.steps]:.4f}, "
                  f"prompt accuracy {accuracy}", file=sys.stderr)
    return {"runs": runs, "seconds": time.time() - t0,
            "settings": {k: getattr(a, k) for k in ("per_prompt", "seeds", "stage1_steps", "steps", "vae_steps")}}


def mean_sd(values: list[float], digits: int = 3) -> str:
    m = f"{statistics.mean(values):.{digits}f}"
    return f"{m} ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else m


def report(res: dict) -> None:
    s, runs = res["settings"], res["runs"]
    steps = sorted(runs["scratch"][0]["curve"])
    print(f"machine: {machine()}")
    print(f"stage 1: {s['stage1_steps']} steps on scikit-learn digits (32 px); stage 2: {s['steps']} steps on "
          f"{s['per_prompt']} x 12 shape images (32 px, batch 32); {s['seeds']} seeds per row; mean ± sd; "
          f"{res['seconds'] / 60:.0f} min in all\n")
    print("| stage-2 init | " + " | ".join(f"val loss @{t}" for t in steps) + " |")
    print("|---|" + "---|" * len(steps))
    for variant in VARIANTS:
        print(f"| {variant} | " + " | ".join(mean_sd([r["curve"][t] for r in runs[variant]], 4) for t in steps) + " |")
    target = statistics.mean(r["curve"][steps[-1]] for r in runs["scratch"])
    half, full = steps[-1] // 2, steps[-1]
    print(f"\n| stage-2 init | steps to the scratch runs' final val loss ({target:.4f}) | prompt accuracy @{half} "
          f"| prompt accuracy @{full} |")
    print("|---|---|---|---|")
    for variant in VARIANTS:
        reach = [next((t for t in steps if r["curve"][t] <= target), None) for r in runs[variant]]
        reached = ", ".join("not reached" if t is None else str(t) for t in reach)
        acc = {k: [r["accuracy"][k] for r in runs[variant]] for k in (half, full)}
        print(f"| {variant} | {reached} | {mean_sd(acc[half])} | {mean_sd(acc[full])} |")


def main(argv=None) -> int:
    def options(p):
        p.add_argument("--seeds", type=int, default=3)
        p.add_argument("--stage1-steps", type=int, default=100)
        p.add_argument("--steps", type=int, default=240, help="stage-2 steps per run")

    return bench_main(argv, __doc__, __file__, {"vae_steps": 300, "work": "build/stage1_pretraining"}, options,
                      experiment, report)


if __name__ == "__main__":
    sys.exit(main())
