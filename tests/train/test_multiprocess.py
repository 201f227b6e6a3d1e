"""Two processes on CPU (torchrun, gloo via accelerate): each rank trains on its own
shards, so the samples they see are disjoint."""

from __future__ import annotations

import subprocess
import sys

from tests.train.conftest import ROOT, SUBPROCESS_ENV, tiny_config, write_config


def test_two_processes_see_disjoint_samples(tmp_path, shards, vae_dir):
    cfg = tiny_config(tmp_path, vae_dir, shards=shards)
    cfg["stages"][2].update(init_from="none", max_steps=3, batch_size=1, checkpoint_every=100)
    cfg["stages"][2]["data"].update(num_workers=1, val_holdout_shards=0, record_keys=True)
    config = write_config(tmp_path / "t.yaml", cfg)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", "29517", str(ROOT / "train" / "stage.py"), "--stage", "2", "--config", str(config)]
    proc = subprocess.run(cmd, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-4000:]
    stage_dir = tmp_path / "stage2"
    keys = [(stage_dir / f"keys_rank{r}.txt").read_text().split() for r in (0, 1)]
    assert len(keys[0]) == len(keys[1]) == 3
    assert not set(keys[0]) & set(keys[1])
    log = (stage_dir / "train.log").read_text()
    assert "2 process(es)" in log
    assert (stage_dir / "final.json").exists() and (stage_dir / "metrics_rank1.jsonl").exists()
