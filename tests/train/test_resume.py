"""kill -9 during a stage, then --resume: the steps after the last checkpoint have exactly
the losses of an uninterrupted run (same batches in the same order, same noise, the same
drop-path draws). Stage 1 with drop path and its crop/flip augmentations; stage 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.train.conftest import ROOT, SUBPROCESS_ENV, tiny_config, write_config

STEPS, EVERY = 14, 4


def _run(stage, config, out, *extra):
    cmd = [sys.executable, str(ROOT / "train" / "stage.py"), "--stage", str(stage), "--config", str(config), "--out", str(out), *extra]
    return subprocess.Popen(cmd, env=SUBPROCESS_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def _losses(stage_dir) -> dict[int, float]:
    rows = [json.loads(line) for line in (stage_dir / "metrics_rank0.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows}  # a resumed run rewrites the steps after the checkpoint: last wins


@pytest.mark.parametrize("stage", [1, 2])
def test_kill_minus_9_then_resume_gives_identical_losses(tmp_path, stage, request):
    if stage == 1:  # drop path draws from the global torch RNG every step
        cfg = tiny_config(tmp_path, tmp_path / "unused-vae", digits=request.getfixturevalue("digits"))
        cfg["models"]["classifier"]["overrides"]["drop_path"] = 0.2
    else:
        cfg = tiny_config(tmp_path, request.getfixturevalue("vae_dir"), shards=request.getfixturevalue("shards"))
    # validation every 3 steps: reading the held-out data must not shift any training stream
    cfg["stages"] = {stage: cfg["stages"][stage]}
    cfg["stages"][stage].update(init_from="none", max_steps=STEPS, checkpoint_every=EVERY, batch_size=2, val_every=3)
    cfg["stages"][stage]["data"]["num_workers"] = 2  # 2 workers: the round-robin must resume too
    config = write_config(tmp_path / "t.yaml", cfg)

    whole = _run(stage, config, tmp_path / "whole")
    killed = _run(stage, config, tmp_path / "killed")
    stage_dir = tmp_path / "killed" / f"stage{stage}"
    try:
        # kill -9 once the killed run is past its second checkpoint, between checkpoints
        metrics = stage_dir / "metrics_rank0.jsonl"
        deadline = time.time() + 300
        while time.time() < deadline:
            assert killed.poll() is None, killed.stderr.read().decode()[-3000:]
            if metrics.exists() and len(metrics.read_text().splitlines()) >= 2 * EVERY + 2:
                break
            time.sleep(0.05)
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
        assert whole.wait(timeout=300) == 0, whole.stderr.read().decode()[-3000:]
    finally:
        for p in (whole, killed):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    before = _losses(stage_dir)
    assert 2 * EVERY + 2 <= max(before) < STEPS
    assert not (stage_dir / "final.json").exists()

    resumed = _run(stage, config, tmp_path / "killed", "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()[-3000:]
    log = (stage_dir / "train.log").read_text()
    assert "resumed from" in log and "step_00000008" in log

    expected, got = _losses(tmp_path / "whole" / f"stage{stage}"), _losses(stage_dir)
    assert sorted(expected) == sorted(got) == list(range(1, STEPS + 1))
    assert [got[s] for s in range(1, STEPS + 1)] == [expected[s] for s in range(1, STEPS + 1)]
    assert len(set(expected.values())) > STEPS // 2  # real, varying losses
