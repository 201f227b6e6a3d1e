"""bench/gpu.sh --cpu: the prepared GPU benchmark runs end to end at tiny sizes on the CPU and
prints every section's table with real figures (the CI stand-in for the GPU run)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = {
    "Training step: AsCAN UNet vs UNet2DConditionModel": ["ascan_unet_tiny", "SD-1.x style", "SDXL style"],
    "Precompute and the step on precomputed latents": ["online:", "precomputed latents", "precompute:"],
    "Model pool: filters": ["| watermark |", "| nsfw |", "| text |"],
    "Model pool: annotators": ["| objects |", "| caption-blip |", "| caption-florence2 |"],
    "Classifiers: ascan_t vs coatnet_0": ["| ascan_t |", "| coatnet_0_224 |"],
}


@pytest.mark.timeout(400)
def test_gpu_sh_cpu_prints_every_table(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GPU_SH_LOG": str(tmp_path / "stderr.log")}
    proc = subprocess.run([str(ROOT / "bench" / "gpu.sh"), "--cpu"], env=env, capture_output=True, text=True,
                          timeout=380, check=False)
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + (tmp_path / "stderr.log").read_text()[-3000:]
    assert "not GPU figures" in out and "(section cut" not in out and "(failed" not in out
    parts = re.split(r"^## ", out, flags=re.M)[1:]
    assert [p.splitlines()[0] for p in parts] == list(SECTIONS)
    for part, rows in zip(parts, SECTIONS.values()):
        lines = part.splitlines()
        table = [line for line in lines if line.startswith("|")]
        assert table[1].startswith("|---"), part
        # a table is one block: no blank line inside it
        first = lines.index(table[0])
        assert lines[first:first + len(table)] == table, part
        heads = [h.strip() for h in table[0].strip("|").split("|")]
        for name in rows:
            row = next(line for line in table[2:] if name in line)
            cells = [c.strip() for c in row.strip("|").split("|")]
            # every figure but a load time (a cached model loads in under 0.05 s: "0.0")
            figures = [(h, re.match(r"[0-9]+\.[0-9]+", c)) for h, c in zip(heads, cells)]
            rates = [float(m.group()) for h, m in figures if m and not h.startswith("load")]
            assert rates and all(r > 0 for r in rates), row
