"""Batches none of whose samples decode (issue 26, finding 6). A rank skips such a batch and
reads the next: under DDP the ranks' gradient all-reduces pair up by order, not by batch, so a
rank that skips more only makes the others wait (two gloo processes below, one shard corrupt).
A stream that never decodes again stops with an error instead of reading forever."""

from __future__ import annotations

import json

import pytest

from tests.train.conftest import launch_two, tiny_config, write_config
from tests.train.shards import corrupt_copy
from train.config import parse_config
from train.data import DataError


def _metrics(stage_dir, rank) -> list[dict]:
    return [json.loads(line) for line in (stage_dir / f"metrics_rank{rank}.jsonl").read_text().splitlines()]


def _config(tmp_path, shards, vae_dir, train: list[str], **stage) -> dict:
    cfg = tiny_config(tmp_path, vae_dir, shards=shards)
    cfg["stages"] = {2: cfg["stages"][2]}
    cfg["stages"][2].update(init_from="none", checkpoint_every=100, batch_size=2, **stage)
    cfg["stages"][2]["data"].update(train=train, val_holdout_shards=0, num_workers=1)
    cfg["logging"].update(sample_prompts=["a cat"], sample_seeds=1, sample_guidance_scales=[1.0], log_every=1)
    cfg["diffusion"]["sample_steps"] = 2
    return cfg


def test_two_ranks_skip_undecodable_batches_and_stay_in_step(tmp_path, shards, vae_dir):
    # Two shards for two ranks: each epoch deals one to each, so the ranks take turns on the
    # corrupt one (2 batches of 2 samples that all fail to decode) while the other trains.
    bad = corrupt_copy(shards / "00000.tar", tmp_path / "corrupt.tar")
    cfg = _config(tmp_path, shards, vae_dir, [str(shards / "00001.tar"), str(bad)], max_steps=4)
    proc = launch_two(write_config(tmp_path / "t.yaml", cfg), tmp_path, launcher=("--multi_gpu",), port=29553,
                      timeout=150)  # a hang fails here
    assert proc.returncode == 0, proc.stderr[-4000:]
    stage_dir = tmp_path / "stage2"
    rows = [_metrics(stage_dir, r) for r in (0, 1)]
    assert [r["step"] for r in rows[0]] == [r["step"] for r in rows[1]] == [1, 2, 3, 4]
    # Both ranks skipped at least one whole batch (counted), and still took every step together:
    # the gradient each step applied, all-reduced over both, is the same on both (so are the weights).
    assert all(r[-1]["skipped_unreadable"] >= 2 for r in rows)
    assert [r["grad_norm"] for r in rows[0]] == [r["grad_norm"] for r in rows[1]]
    assert [r["loss"] for r in rows[0]] != [r["loss"] for r in rows[1]]  # each rank's own batches
    assert "skipped samples: unreadable" in (stage_dir / "train.log").read_text()


def test_a_stream_that_never_decodes_stops_with_an_error(tmp_path, shards, vae_dir, monkeypatch):
    from train import stage

    monkeypatch.setattr(stage, "EMPTY_BATCH_LIMIT", 5)
    bad = corrupt_copy(shards / "00000.tar", tmp_path / "corrupt.tar")
    cfg = parse_config(_config(tmp_path, shards, vae_dir, [str(bad)], max_steps=2))
    with pytest.raises(DataError, match=r"rank 0: the last 5 batches of stages.2.data.train could not be decoded "
                       r"at all \(unreadable 10 so far\)"):
        stage.train(cfg, 2, tmp_path, resume=False, max_steps=None)
