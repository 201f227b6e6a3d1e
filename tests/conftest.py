"""Settings every test needs (no network beyond loopback, no hub downloads) and the
session's one local Ray, bound to 127.0.0.1 (`make test` also runs the suite in a
private network namespace)."""

import os
import shutil
import tempfile

import pytest

import pipeline  # noqa: F401  sets the offline defaults (pipeline/__init__.py) before any test imports img2dataset
from pipeline.worker_env import worker_env

for _k, _v in {
    "HF_HUB_OFFLINE": "1",
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "false",
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    # test-only steps (probe, explode, kill_worker), registered like a user's own step module
    "ASCAN_T2I_STEPS": "tests.steps_for_tests",
}.items():
    os.environ.setdefault(_k, _v)

# Subprocesses the tests start (build_dataset.py, filter-report, Ray workers) import the
# test-only step module named above: put the repository root on their path.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p)


@pytest.fixture(scope="session")
def ray_session():
    import ray

    tmp = tempfile.mkdtemp(prefix="rt-", dir="/tmp")  # short: Ray's socket paths have a length limit
    os.environ["RAY_TMPDIR"] = tmp
    ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False, _temp_dir=tmp,
             log_to_driver=False, runtime_env={"env_vars": worker_env()})  # what a build passes its workers
    yield ray
    ray.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)
