"""The GPU install (`make setup-gpu`, constraints-gpu.txt) checked offline: onnxruntime-gpu
pinned to the same version as the CPU onnxruntime it replaces, its CUDA library needs met
by torch's own pins (one CUDA major for both), and the report `make setup-gpu` ends with
saying what each library can use, from torch.cuda and get_available_providers()."""

from __future__ import annotations

import re
from pathlib import Path

import onnxruntime as ort
import torch
from packaging.specifiers import SpecifierSet

from steps.gpu_report import gpu_report

ROOT = Path(__file__).resolve().parents[2]


def _pins(name: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            pkg, version = line.split("#")[0].strip().split("==")
            pins[pkg.lower()] = version
    return pins


def test_gpu_constraints_agree_with_the_cpu_ones():
    cpu, gpu = _pins("constraints.txt"), _pins("constraints-gpu.txt")
    assert gpu["onnxruntime-gpu"] == cpu["onnxruntime"]  # the same ONNX Runtime, with CUDA
    assert all(cpu.get(p, v) == v for p, v in gpu.items())  # nothing pinned twice differently
    (requires,) = re.findall(r"^# requires: (.*)$", (ROOT / "constraints-gpu.txt").read_text(), re.M)
    for req in requires.split():
        pkg, spec = re.match(r"([A-Za-z0-9_.-]+)(.*)", req).groups()
        assert cpu[pkg.lower()] in SpecifierSet(spec), (pkg, spec, cpu.get(pkg.lower()))  # torch's copy serves both
    # onnxruntime-gpu's CUDA runtime is torch's: the same major as the build torch reports
    assert cpu["nvidia-cuda-runtime"].split(".")[0] == torch.version.cuda.split(".")[0]


def test_setup_gpu_removes_the_cpu_wheel_before_installing_the_gpu_one():
    recipe = (ROOT / "Makefile").read_text().split("$(GPU_STAMP): $(STAMP) constraints-gpu.txt\n")[1].split("\n\n")[0]
    assert recipe.index("pip uninstall --quiet -y onnxruntime") < recipe.index("'onnxruntime-gpu[cuda,cudnn]'")


def test_report_says_what_each_library_can_use(monkeypatch):
    lines, problems = gpu_report()  # this CPU host, CPU onnxruntime
    assert f"get_available_providers() = {', '.join(ort.get_available_providers())}" in lines[1]
    assert len(problems) == 2 and "install onnxruntime-gpu in its place" in problems[1]
    # a GPU host after make setup-gpu
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    lines, problems = gpu_report()
    assert problems == [] and lines[-1] == "cuda:0: NVIDIA H200, compute capability sm_90"
