"""A two-node Ray cluster on loopback (a head and a second `ray start --address` node)
where the second node is killed mid-job: the job finishes by itself (no resume), every
input has its row, and nothing good is lost. Lives in its own PID namespace so
`ray stop` reaches only this cluster."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from filter_dev import hostile
from pipeline.ledger import read_ledger
from tests.pipeline.conftest import write_jsonl
from tests.pipeline.test_job_submit import _pid_namespace

ROOT = Path(__file__).resolve().parents[2]
N_URLS = 24

SCRIPT = r"""
set -u
common="--node-ip-address=127.0.0.1 --temp-dir={tmp} --disable-usage-stats"
ray start --head --port={gcs} --include-dashboard=false --num-cpus=1 $common \
  --dashboard-agent-listen-port={p[0]} --dashboard-agent-grpc-port={p[1]} --metrics-export-port={p[2]} \
  --runtime-env-agent-port={p[3]} --ray-client-server-port={p[4]} >{tmp}/head.log 2>&1 || {{ cat {tmp}/head.log; exit 97; }}
ray start --address=127.0.0.1:{gcs} --num-cpus=2 --node-manager-port={p[5]} --object-manager-port={p[6]} $common \
  --dashboard-agent-listen-port={p[7]} --dashboard-agent-grpc-port={p[8]} --metrics-export-port={p[9]} \
  --runtime-env-agent-port={p[10]} >{tmp}/node2.log 2>&1 || {{ cat {tmp}/node2.log; exit 98; }}
RAY_ADDRESS=127.0.0.1:{gcs} python {root}/pipeline/build_dataset.py --config {wf} --output {out} --no-progress \
  >{tmp}/build.log 2>&1 &
build=$!
# kill the second node (its raylet, SIGKILL) once the job is under way on both nodes
for i in $(seq 1 600); do
  [ "$(ls {out}/ledger 2>/dev/null | grep -c parquet)" -ge 2 ] && break
  sleep 0.1
done
raylet=$(pgrep -f "raylet.*node_manager_port={p[5]}")
echo "killing node 2 raylet $raylet after $(ls {out}/ledger | grep -c parquet) units"
kill -9 $raylet
wait $build
rc=$?
cat {tmp}/build.log | tail -20
ray stop --force >/dev/null 2>&1
exit $rc
"""


def test_second_node_killed_mid_job_the_job_finishes(served, tmp_path):
    server, photos = served
    rows = [{"url": server.url(f"delay/{photos[i % len(photos)]}"), "caption": f"item {i}"} for i in range(N_URLS)]
    urls = write_jsonl(tmp_path / "urls.jsonl", rows)
    wf = tmp_path / "wf.yaml"
    wf.write_text(yaml.safe_dump({
        "name": "node-loss-test",
        "sources": [{"type": "url_list", "path": str(urls)}],
        # the test server is on 127.0.0.1, which a build refuses by default
        "images": {"image_size": 128}, "download": {"timeout": 10, "thread_count": 2, "allow_private_networks": True},
        "output": {"shard_size": 2},
        "filters": {"resolution": {"min_side": 64}},
        "dedup": {"enabled": False},  # the inputs reuse photos
    }))
    ray_tmp = tempfile.mkdtemp(prefix="rn-", dir="/tmp")
    out = tmp_path / "out"
    ports = [hostile.closed_port() for _ in range(12)]
    script = SCRIPT.format(gcs=ports[0], p=ports[1:], tmp=ray_tmp, root=ROOT, wf=wf, out=out)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_TMPDIR", None)
    try:
        proc = subprocess.run([*_pid_namespace(), "bash", "-c", script], env=env, capture_output=True, text=True, timeout=500)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    log = proc.stdout[-4000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, log
    assert "killing node 2 raylet" in log and "after 12 units" not in log, log
    ledger = read_ledger(out).to_pandas()
    assert len(ledger) == N_URLS and ledger["key"].is_unique
    assert (ledger["status"] == "kept").sum() == N_URLS, ledger[ledger["status"] != "kept"][["reason", "detail"]]
    manifest = yaml.safe_load((out / "manifest.json").read_text())
    assert manifest["units"]["processed_now"] == N_URLS // 2
    assert manifest["worker_deaths"], "the killed node was running units: their workers died and they ran again"
