"""kill -9 during stage 2, then --resume: the steps after the last checkpoint have exactly
the losses of an uninterrupted run (same batches in the same order, same noise)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.train.conftest import ROOT, SUBPROCESS_ENV, tiny_config, write_config

STEPS, EVERY = 14, 4


def _run(config, out, *extra):
    cmd = [sys.executable, str(ROOT / "train" / "stage.py"), "--stage", "2", "--config", str(config), "--out", str(out), *extra]
    return subprocess.Popen(cmd, env=SUBPROCESS_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def _losses(out) -> dict[int, float]:
    rows = [json.loads(line) for line in open(out / "stage2" / "metrics_rank0.jsonl")]
    return {r["step"]: r["loss"] for r in rows}  # a resumed run rewrites the steps after the checkpoint: last wins


def test_kill_minus_9_then_resume_gives_identical_losses(tmp_path, shards, vae_dir):
    cfg = tiny_config(tmp_path, vae_dir, shards=shards)
    cfg["stages"][2].update(init_from="none", max_steps=STEPS, checkpoint_every=EVERY, batch_size=2)
    cfg["stages"][2]["data"].update(num_workers=2, val_holdout_shards=0)  # 2 workers: the round-robin must resume too
    config = write_config(tmp_path / "t.yaml", cfg)

    whole = _run(config, tmp_path / "whole")
    killed = _run(config, tmp_path / "killed")
    try:
        # kill -9 once the killed run is past its second checkpoint, between checkpoints
        metrics = tmp_path / "killed" / "stage2" / "metrics_rank0.jsonl"
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
    before = _losses(tmp_path / "killed")
    assert 2 * EVERY + 2 <= max(before) < STEPS
    assert not (tmp_path / "killed" / "stage2" / "final.json").exists()

    resumed = _run(config, tmp_path / "killed", "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()[-3000:]
    log = (tmp_path / "killed" / "stage2" / "train.log").read_text()
    assert "resumed from" in log and "step_00000008" in log

    expected, got = _losses(tmp_path / "whole"), _losses(tmp_path / "killed")
    assert sorted(expected) == sorted(got) == list(range(1, STEPS + 1))
    assert [got[s] for s in range(1, STEPS + 1)] == [expected[s] for s in range(1, STEPS + 1)]
    assert len(set(expected.values())) > STEPS // 2  # real, varying losses
