"""Settings every test needs: no network beyond loopback, no hub downloads."""

import os

for _k, _v in {
    "HF_HUB_OFFLINE": "1",
    "NO_ALBUMENTATIONS_UPDATE": "1",
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "false",
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    # test-only stages (probe, explode), registered like a user's own stage module
    "ASCAN_T2I_STAGES": "tests.stages_for_tests",
}.items():
    os.environ.setdefault(_k, _v)

# Subprocesses the tests start (build_dataset.py, filter-report, Ray workers) import the
# test-only stage module named above: put the repository root on their path.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p)

