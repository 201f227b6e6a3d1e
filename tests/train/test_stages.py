"""Stage 1 then stage 2 on real data, in one process: the classifier learns digits, the
UNet starts from it (copied tensors equal), overfits a few captioned pipeline samples,
and sample.py draws from the stage-2 checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tests.train.conftest import tiny_config
from tests.train.tiny_clip import build_tiny_clip, save_clip
from train import checkpoint as ckpt_io
from train.config import parse_config
from train.stage import train


def _losses(stage_dir):
    by_step = {}
    for line in (stage_dir / "metrics_rank0.jsonl").read_text().splitlines():
        row = json.loads(line)
        by_step[row["step"]] = row["loss"]
    return [by_step[k] for k in sorted(by_step)]


@pytest.fixture(scope="module")
def run(tmp_path_factory, digits, shards, vae_dir):
    out = tmp_path_factory.mktemp("stages")
    cfg = tiny_config(out, vae_dir, digits=digits, shards=shards)
    cfg["logging"]["tensorboard"] = True
    cfg["stages"][1].update(max_steps=100, checkpoint_every=50)
    cfg["stages"][1]["data"]["num_workers"] = 1
    # Stage 2 overfits one shard (4 captioned samples), validates on another.
    cfg["diffusion"]["caption_dropout"] = 0.0
    cfg["stages"][2].update(max_steps=40, lr=2e-3, warmup_steps=0, batch_size=4, checkpoint_every=20)
    cfg["stages"][2]["data"].update(train=str(shards / "00000.tar"), val=str(shards / "00001.tar"),
                                    val_holdout_shards=0, num_workers=0)
    clip = save_clip(out / "tiny-clip", *build_tiny_clip())  # random, loaded by path like a real CLIP
    cfg["evaluation"] = {"prompts": ["astronaut", "a cat", "coffee"], "clip_model": str(clip), "fid_model": str(clip)}
    parsed = parse_config(cfg)
    assert train(parsed, 1, out, resume=False, max_steps=None) == 0
    assert train(parsed, 2, out, resume=False, max_steps=None) == 0
    return parsed, out


def test_stage1_classifier_learns_digits(run):
    _, out = run
    val = [json.loads(line) for line in (out / "stage1" / "val.jsonl").read_text().splitlines()]
    assert val[-1]["val/samples"] == 359
    assert val[-1]["val/top1"] > 0.4, val  # chance is 0.1
    assert ckpt_io.final_checkpoint(out / "stage1").name == "step_00000100"


def test_stage2_starts_from_stage1_weights(run):
    from train.tasks import T2ITask

    cfg, out = run
    stage1 = ckpt_io.final_checkpoint(out / "stage1")
    report = json.loads((out / "stage2" / "init_report.json").read_text())
    assert report["from"] == str(stage1) and len(report["tensors"]) > 20
    assert "warm start from the classifier" in (out / "stage2" / "train.log").read_text()
    # Rebuild stage 2's UNet the way the trainer does and check every reported tensor equals stage 1's.
    task = T2ITask(cfg, cfg.stages[2], "cpu")
    _, names = task.init_from(stage1, "classify")
    assert names == report["tensors"]
    clf = ckpt_io.load_weights(stage1 / "model.safetensors")
    unet = task.model.state_dict()
    for dst in names:
        assert torch.equal(unet[dst], clf["stages." + dst.removeprefix("down.")]), dst
    assert not torch.equal(unet["conv_in.weight"], torch.zeros_like(unet["conv_in.weight"]))


def test_stage2_loss_falls_on_a_few_pipeline_samples(run):
    _, out = run
    losses = _losses(out / "stage2")
    assert len(losses) == 40
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.8 * first, (first, last)  # the trained VAE makes it a real task; tests/train/test_t2i_learning.py measures learning
    val = [json.loads(line) for line in (out / "stage2" / "val.jsonl").read_text().splitlines()]
    assert val and val[-1]["val/samples"] == 4
    # raw and EMA weights both validated; CLIP score and FID of EMA samples for the held-out prompts
    assert val[-1]["val/loss"] != val[-1]["val/loss_ema"]
    assert 0 <= val[-1]["eval/clip_score"] <= 100 and val[-1]["eval/fid"] > 0
    rows = [json.loads(line) for line in (out / "stage2" / "metrics_rank0.jsonl").read_text().splitlines()]
    assert all(r["grad_norm"] > 0 for r in rows)
    # the grid: 2 guidance scales x 2 seeds rows of 3 prompts, 64 px tiles with 2 px padding
    grid = Image.open(out / "stage2" / "samples" / "step_00000040.png")
    assert grid.size == (3 * 66 + 2, 4 * 66 + 2)


def test_sample_py_writes_images(run, tmp_path, capsys):
    from train.sample import main

    _, out = run
    rc = main(["--checkpoint", str(out / "stage2"), "--prompt", "astronaut", "--prompt", "a cat",
               "--steps", "4", "--size", "96x64", "--seed", "3", "--out", str(tmp_path)])
    assert rc == 0
    pngs = sorted(tmp_path.glob("*.png"))
    assert len(pngs) == 2
    im = Image.open(pngs[0])
    assert im.size == (96, 64)
    assert len(np.unique(np.asarray(im.convert("L")))) > 10  # an image, not a constant
    # --device: explicit CPU works; a CUDA device this process cannot see is a clear error
    rc = main(["--checkpoint", str(out / "stage2"), "--prompt", "astronaut", "--steps", "2", "--size", "64x64",
               "--device", "cpu", "--out", str(tmp_path / "cpu")])
    assert rc == 0 and len(list((tmp_path / "cpu").glob("*.png"))) == 1
    rc = main(["--checkpoint", str(out / "stage2"), "--prompt", "astronaut", "--device", "cuda:7", "--out", str(tmp_path)])
    assert rc == 2 and "--device cuda:7: this process sees 0 CUDA device(s)" in capsys.readouterr().err


def test_tensorboard_gets_losses_validation_and_sample_grids(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, out = run
    events = EventAccumulator(str(out / "stage2" / "tiny-stage2")).Reload()
    tags = events.Tags()
    assert {"train/loss", "train/lr", "train/images_per_s", "val/loss"} <= set(tags["scalars"])
    assert "samples" in tags["images"]
    assert len(events.Scalars("train/loss")) == 40 // 5  # logging.log_every: 5
