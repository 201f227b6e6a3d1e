"""The README's example filter, exactly as printed there, written to a folder outside the
repository and registered the way a user does it ($ASCAN_T2I_STEPS + PYTHONPATH): a real
build (`python pipeline/build_dataset.py`, its own local Ray) runs it in the CPU workers,
the ledger holds its score, and `filter-report --what-if` replays it with other thresholds."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import yaml

from filter_dev.photos import load_rgb, skimage_photos
from tests.pipeline.conftest import photo_folder

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")
MIN_MEAN = 40.0


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"```python\n(# brightness_filter\.py.*?)```", text, flags=re.S)
    return block


def _run(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


def test_readme_filter_registered_from_outside_built_and_replayed(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "brightness_filter.py").write_text(readme_example())
    photos = photo_folder(tmp_path / "photos", PHOTOS)
    for name in ("astronaut.png", "chelsea.png"):  # the same real photos, far too dark
        rgb = load_rgb(next(p for p in skimage_photos() if p.name == name))
        cv2.imwrite(str(photos / f"dark_{Path(name).stem}.png"), cv2.cvtColor((rgb * 0.08).astype(np.uint8), cv2.COLOR_RGB2BGR))
    wf = tmp_path / "wf.yaml"
    wf.write_text(yaml.safe_dump({
        "name": "example-filter",
        "sources": [{"type": "folder", "path": str(photos)}],
        "images": {"image_size": 256},
        "output": {"shard_size": 3},
        "ray": {"num_workers": 1},
        "dedup": {"enabled": False},  # the folder holds near-copies (chessboard_GRAY/RGB, ...)
        "filters": {"resolution": {"min_side": 64}, "blur": {"enabled": False},
                    "brightness": {"enabled": True, "min_mean": MIN_MEAN}},
    }))
    env = {**os.environ, "ASCAN_T2I_STEPS": "brightness_filter",
           "PYTHONPATH": os.pathsep.join([str(plugins), str(ROOT)]),
           "RAY_TMPDIR": tempfile.mkdtemp(prefix="rt-ex-", dir="/tmp")}  # short: Ray's socket paths
    out = tmp_path / "out"
    _run([sys.executable, "pipeline/build_dataset.py", "--config", str(wf), "--output", str(out), "--no-progress"], env, ROOT)

    ledger = pd.concat([pd.read_parquet(f) for f in sorted((out / "ledger").glob("*.parquet"))])
    assert len(ledger) == len(PHOTOS) + 2
    mean = ledger.set_index(ledger["source"].map(lambda s: Path(s).name))["brightness_mean"]
    assert (mean.filter(like="dark_") < 20).all() and (mean.drop(mean.filter(like="dark_").index) > 60).all(), mean
    dark = ledger["source"].str.contains("dark_")
    assert (ledger.loc[dark, "status"] == "rejected").all() and (ledger.loc[dark, "reason"] == "brightness").all()
    assert (ledger.loc[~dark, "status"] == "kept").all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["reasons"]["rejected"] == {"brightness": 2}

    # the report's what-if replays the filter's own keep() with the new threshold
    def what_if(setting: str) -> dict[str, int]:
        """The command's what-if column: kept, and rejected per filter."""
        proc = _run([str(Path(sys.executable).parent / "filter-report"), str(out), "--what-if", setting],
                    {**env, "COLUMNS": "200"}, tmp_path)
        assert "exact" in proc.stdout and f"brightness.min_mean={float(setting.split('=')[1])}" in proc.stdout
        rows = {ln.split()[0]: ln.split() for ln in proc.stdout.splitlines() if ln.strip()}
        return {k: int(rows[k][2]) for k in ("kept", "brightness")}

    assert what_if("brightness.min_mean=0") == {"kept": len(PHOTOS) + 2, "brightness": 0}
    assert what_if(f"brightness.min_mean={MIN_MEAN}") == {"kept": len(PHOTOS), "brightness": 2}
    strict = float(mean.max()) + 1  # above every photo's mean: all of them rejected
    assert what_if(f"brightness.min_mean={strict}") == {"kept": 0, "brightness": len(PHOTOS) + 2}
