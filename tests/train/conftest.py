"""Fixtures for the trainer tests: real data (sklearn digits in ImageNet layout, shards
written by the pipeline) and the tiny workflow with its paths pointed at them."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
# One thread per process: on a small shared CPU, more threads only spin (and the resume
# test compares losses bit for bit, so every run must use the same thread count).
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def digits(tmp_path_factory) -> Path:
    from train.make_digits import write_digits

    return write_digits(tmp_path_factory.mktemp("digits"), size=32, val_fraction=0.2)


@pytest.fixture(scope="session")
def shards(tmp_path_factory) -> Path:
    from tests.train.shards import build_shards

    return build_shards(tmp_path_factory.mktemp("pipeline"))


@pytest.fixture(scope="session")
def vae_dir(tmp_path_factory, shards) -> Path:
    """The tiny VAE as a user gets it: trained by stage 0 on pipeline shards (briefly) and
    saved with its measured scaling factor."""
    from train.config import parse_config
    from train.stage import train

    out = tmp_path_factory.mktemp("vae")
    cfg = tiny_config(out, out / "tiny-vae", shards=shards)
    cfg["stages"] = {0: {**cfg["stages"][0], "max_steps": 30, "checkpoint_every": 30, "resolution": 32}}
    assert train(parse_config(cfg), 0, out, resume=False, max_steps=None) == 0
    return out / "tiny-vae"


def tiny_config(out: Path, vae_dir: Path, digits: Path | None = None, shards: Path | None = None) -> dict:
    """workflows/train_tiny.yaml with its data, VAE and output paths in the test's folders."""
    cfg = yaml.safe_load((ROOT / "workflows" / "train_tiny.yaml").read_text())
    cfg = copy.deepcopy(cfg)
    cfg["out_dir"] = str(out)
    cfg["vae"]["path"] = str(vae_dir)
    cfg["logging"].update(progress_bar=False, tensorboard=False)
    if digits is not None:
        cfg["stages"][1]["data"].update(train=str(digits / "train"), val=str(digits / "val"))
    if shards is not None:
        for s in (0, 2, 3, 4):
            cfg["stages"][s]["data"]["train"] = str(shards / "*.tar")
    return cfg


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def launch_two(config: Path, out: Path, *extra: str, launcher: tuple[str, ...], port: int, timeout: float = 300):
    """`accelerate launch` of train/stage.py --stage 2 on two CPU processes (gloo); `launcher`:
    how accelerate distributes (--multi_gpu for DDP, --config_file for FSDP). A hang fails at `timeout`."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *launcher, "--num_processes", "2", "--mixed_precision", "no",
           "--main_process_ip", "127.0.0.1", "--main_process_port", str(port), str(ROOT / "train" / "stage.py"),
           "--stage", "2", "--config", str(config), "--out", str(out), *extra]
    return subprocess.run(cmd, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=timeout, check=False)
