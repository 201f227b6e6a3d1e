"""A real `ray start --head` + `ray job submit --working-dir . -- python
pipeline/build_dataset.py ...`, as a user runs it on a cluster. The cluster lives in
its own PID namespace so `ray stop` reaches only the processes this test started."""

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

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
set -u
# Every port explicit: the session's other Ray shares this network namespace, and two
# dashboard agents on the default ports leave this head with "No available agent".
ray start --head --node-ip-address=127.0.0.1 --port={gcs} --dashboard-host=127.0.0.1 --dashboard-port={dash} \
  --dashboard-agent-listen-port={p[0]} --dashboard-agent-grpc-port={p[1]} --metrics-export-port={p[2]} \
  --runtime-env-agent-port={p[3]} --ray-client-server-port={p[4]} \
  --temp-dir={tmp} --num-cpus=2 --disable-usage-stats >{tmp}/start.log 2>&1 || {{ cat {tmp}/start.log; exit 97; }}
# The head's job agent can come up a few seconds after `ray start` returns: retry
# only that answer, anything else is the result.
for attempt in $(seq 1 15); do
  ray job submit --address http://127.0.0.1:{dash} --working-dir {root} -- \
    python pipeline/build_dataset.py --config {wf} --input {urls} --output {out} --no-progress >{tmp}/submit.log 2>&1
  rc=$?
  grep -q "No available agent" {tmp}/submit.log || break
  sleep 2
done
cat {tmp}/submit.log
ray stop --force >/dev/null 2>&1
exit $rc
"""


def _pid_namespace() -> list[str]:
    if os.geteuid() == 0:
        return ["unshare", "--pid", "--fork", "--mount-proc"]
    return ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount-proc"]


def test_ray_job_submit_builds_the_dataset(served, tmp_path):
    server, photos = served
    rows = [{"url": server.url(f"photos/{n}"), "caption": n} for n in photos] + [{"url": server.url("missing.jpg")}]
    urls = write_jsonl(tmp_path / "urls.jsonl", rows)
    wf = tmp_path / "wf.yaml"
    wf.write_text(yaml.safe_dump({
        "name": "job-submit-test",
        "sources": [{"type": "url_list", "path": "replaced-by---input.jsonl"}],
        # the test server listens on 127.0.0.1, which a build refuses by default
        "images": {"image_size": 128}, "download": {"timeout": 5, "allow_private_networks": True},
        "output": {"shard_size": 4},
        "filters": {"resolution": {"min_side": 64}},
    }))
    ray_tmp = tempfile.mkdtemp(prefix="rj-", dir="/tmp")
    out = tmp_path / "out"
    ports = [hostile.closed_port() for _ in range(7)]
    script = SCRIPT.format(gcs=ports[0], dash=ports[1], p=ports[2:], tmp=ray_tmp, root=ROOT, wf=wf, urls=urls, out=out)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_TMPDIR", None)  # the session fixture's; this cluster has its own --temp-dir
    try:
        proc = subprocess.run([*_pid_namespace(), "bash", "-c", script], env=env, capture_output=True, text=True, timeout=400)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    log = proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, log
    assert "succeeded" in log
    ledger = read_ledger(out).to_pandas()
    assert len(ledger) == len(rows)
    assert (ledger["status"] == "kept").sum() == len(photos)
    assert ledger[ledger["source"].str.endswith("missing.jpg")]["reason"].tolist() == ["http_404"]
    assert (out / "manifest.json").exists()
