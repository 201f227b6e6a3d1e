"""The loader's shared memory (issue 26, finding 7): batches leave the workers as uint8 (a quarter
of float32's /dev/shm) and are normalised on the device to the same floats, and a /dev/shm too
small for workers x prefetch batches stops the stage at start, naming the numbers and the fix."""

from __future__ import annotations

import shutil

import pytest
import torch

from tests.train.conftest import tiny_config
from train.config import parse_config
from train.data import make_loader


def test_uint8_batches_give_the_loss_of_float_batches(shards, vae_dir, tmp_path):
    from train.tasks import T2ITask

    cfg = parse_config(tiny_config(tmp_path, vae_dir, shards=shards))
    task = T2ITask(cfg, cfg.stages[2], "cpu")
    batch = next(iter(make_loader([str(shards / "00000.tar")], "shards", task="t2i", train=False, batch_size=2,
                                  bucket_table=[(64, 64)], seed=0, rank=0, world=1, num_workers=0)))
    assert batch["pixels"].dtype == torch.uint8
    as_before = {**batch, "pixels": batch["pixels"].float().div(127.5).sub(1.0)}  # what the loader sent before
    losses = []
    for b in (batch, as_before):
        torch.manual_seed(0)
        losses.append(task.loss(task.model, b, torch.Generator().manual_seed(0)))
    assert torch.equal(losses[0], losses[1]) and losses[0] > 0


def test_a_small_dev_shm_stops_the_stage_before_the_loader_starts(shards, vae_dir, tmp_path, monkeypatch):
    from train.stage import StartError, train

    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=64 * 2**20) if p == "/dev/shm" else real(p))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")  # eight GPUs' processes share the node's /dev/shm
    cfg = tiny_config(tmp_path, vae_dir, shards=shards)
    cfg["stages"][2].update(init_from="none", batch_size=128, resolution=128)
    cfg["stages"][2]["data"].update(num_workers=10)  # prefetch 4 by default
    # 128 x 3 x 128 x 128 bytes x (10 x 4 + 1) batches = 246 MB per process, 1,968 MB for eight
    with pytest.raises(StartError, match=r"need ~1,968 MB of shared memory \(8 process\(es\) x 246 MB: "
                       r"stages.2.data.num_workers x stages.2.data.prefetch .* /dev/shm has 64 MB free.*--shm-size"):
        train(parse_config(cfg), 2, tmp_path, resume=False, max_steps=None)
