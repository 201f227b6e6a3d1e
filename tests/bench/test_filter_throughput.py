"""bench/filter_throughput.py on a device its filters cannot load on (here: --device cuda on a
CPU machine, as on a GPU machine without onnxruntime-gpu): every filter gets a row saying why
it did not run, the bench goes on to the next filter, and it exits non-zero."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the filters would run")
@pytest.mark.timeout(200)
def test_filters_that_cannot_load_on_the_device_get_a_row_and_the_rest_still_run():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "filter_throughput.py"), "--device", "cuda",
                           "--only", "blur", "watermark", "nsfw", "--batch-sizes", "2", "--seconds", "0", "--threads", "1"],
                          env=env, capture_output=True, text=True, timeout=180, check=False, cwd=ROOT)
    rows = {line.split("|")[1].strip(): line for line in proc.stdout.splitlines() if line.startswith("| ") and "---" not in line}
    assert proc.returncode == 1 and "not run on cuda: watermark, nsfw" in proc.stderr, proc.stdout + proc.stderr[-2000:]
    # nsfw comes after watermark: the first filter that cannot load does not stop the bench
    for name in ("watermark", "nsfw"):  # each names the device it was asked for and why it cannot have it
        assert "| not run: device='cuda' was asked for but" in rows[name], rows
    # blur needs no model and no device: it runs and is timed
    assert list(rows)[1:] == ["blur", "watermark", "nsfw"] and float(rows["blur"].split("|")[3]) > 0, rows
