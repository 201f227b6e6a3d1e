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
from train import checkpoint as ckpt_io
from train.config import parse_config
from train.stage import train


def _losses(stage_dir):
    by_step = {}
    for line in open(stage_dir / "metrics_rank0.jsonl"):
        row = json.loads(line)
        by_step[row["step"]] = row["loss"]
    return [by_step[k] for k in sorted(by_step)]


@pytest.fixture(scope="module")
def run(tmp_path_factory, digits, shards, vae_dir):
    out = tmp_path_factory.mktemp("stages")
    cfg = tiny_config(out, vae_dir, digits=digits, shards=shards)
    cfg["stages"][1].update(max_steps=100, checkpoint_every=50)
    cfg["stages"][1]["data"]["num_workers"] = 1
    # Stage 2 overfits one shard (4 captioned samples), validates on another.
    cfg["diffusion"]["caption_dropout"] = 0.0
    cfg["stages"][2].update(max_steps=40, lr=2e-3, warmup_steps=0, batch_size=4, checkpoint_every=20)
    cfg["stages"][2]["data"].update(train=str(shards / "00000.tar"), val=str(shards / "00001.tar"),
                                    val_holdout_shards=0, num_workers=0)
    parsed = parse_config(cfg)
    assert train(parsed, 1, out, resume=False, max_steps=None) == 0
    assert train(parsed, 2, out, resume=False, max_steps=None) == 0
    return parsed, out


def test_stage1_classifier_learns_digits(run):
    _, out = run
    val = [json.loads(line) for line in open(out / "stage1" / "val.jsonl")]
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
    assert last < 0.7 * first, (first, last)
    val = [json.loads(line) for line in open(out / "stage2" / "val.jsonl")]
    assert val and val[-1]["val/samples"] == 4
    assert (out / "stage2" / "samples" / "step_00000040.png").is_file()


def test_sample_py_writes_images(run, tmp_path):
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
