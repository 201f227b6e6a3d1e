"""The GPU-ready step on CPU: torch.compile and channels_last train to the same losses as
the eager NCHW step, and every step's loss reaches metrics_rankR.jsonl although it is read
back from the device only at log steps and checkpoints."""

from __future__ import annotations

import json

import pytest

from tests.train.conftest import tiny_config
from train.config import parse_config
from train.stage import train

STEPS = 4


def _rows(stage_dir):
    return [json.loads(line) for line in (stage_dir / "metrics_rank0.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def eager(tmp_path_factory, shards, vae_dir):
    out = tmp_path_factory.mktemp("eager")
    return out, _run(out, shards, vae_dir)


def _run(out, shards, vae_dir, **accelerate):
    cfg = tiny_config(out, vae_dir, shards=shards)
    cfg["stages"] = {2: {**cfg["stages"][2], "init_from": "none", "max_steps": STEPS, "checkpoint_every": 3,
                         "batch_size": 2}}
    cfg["stages"][2]["data"].update(num_workers=0, val_holdout_shards=0)  # no validation: the step only
    cfg["accelerate"] = accelerate
    cfg["logging"].update(sample_prompts=["astronaut"], sample_seeds=1, sample_guidance_scales=[2.0])
    cfg["logging"]["log_every"] = 100  # only the checkpoint (step 3) and the end read losses back
    assert train(parse_config(cfg), 2, out, resume=False, max_steps=None) == 0
    return [r["loss"] for r in _rows(out / "stage2")]


def test_every_step_is_logged_without_a_per_step_read(eager):
    _, losses = eager
    assert len(losses) == STEPS and len(set(losses)) == STEPS
    assert all(isinstance(v, float) and v > 0 for v in losses)


@pytest.mark.parametrize("accelerate", [{"channels_last": True}, {"compile": True}],
                         ids=["channels_last", "compile"])
def test_fast_step_matches_the_eager_step(eager, tmp_path, shards, vae_dir, accelerate):
    _, expected = eager
    got = _run(tmp_path, shards, vae_dir, **accelerate)
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-5)
    if accelerate.get("compile"):
        assert "accelerate.compile: torch.compile" in (tmp_path / "stage2" / "train.log").read_text()


def test_frozen_encoders_run_under_autocast_with_mixed_precision(shards, vae_dir, tmp_path):
    """bf16 on: the VAE encoder and the text encoder's matmuls compute in bf16; the UNet gets float32."""
    import torch

    from train.data import make_loader
    from train.tasks import T2ITask

    cfg = tiny_config(tmp_path, vae_dir, shards=shards)
    cfg["accelerate"] = {"mixed_precision": "bf16"}
    parsed = parse_config(cfg)
    task = T2ITask(parsed, parsed.stages[2], "cpu")
    seen = {}

    def record(name):
        def hook(module, args, out):  # returns None: the output is left as it is
            seen.setdefault(name, out.dtype)
        return hook

    task.vae.encoder.register_forward_hook(record("vae"))
    # its first Linear: the last hidden state leaves a LayerNorm, which autocast keeps in float32
    next(m for m in task.text_encoder.model.modules() if isinstance(m, torch.nn.Linear)).register_forward_hook(record("text"))
    batch = next(iter(make_loader([str(shards / "00000.tar")], "shards", task="t2i", train=False, batch_size=2,
                                  bucket_table=[(64, 64)], seed=0, rank=0, world=1, num_workers=0)))
    latents, tokens, mask = task.encode(batch, torch.Generator().manual_seed(0), 0.5)
    assert seen == {"vae": torch.bfloat16, "text": torch.bfloat16}
    assert latents.dtype == tokens.dtype == torch.float32 and mask.dtype == torch.bool
