"""The trainer stops at start when the run wants GPUs torch cannot use (issue 26, finding 2),
saying why: a CPU-only build, a driver too old for the CUDA build, a compute capability the build
has no kernels for. What no CPU can show (a driver, a GPU) is monkeypatched into torch.cuda."""

from __future__ import annotations

import pytest
import torch

from tests.train.conftest import tiny_config, write_config
from train import cuda_check
from train.cuda_check import GPUUnusable, build_runs_on, train_on_cpu

ARCH = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]  # torch 2.14.1's CUDA 13 build


def _machine(monkeypatch, tmp_path, *, cuda="13.0", available=True, init_error="", capability=(9, 0), driver=True):
    def init():
        raise RuntimeError(init_error)

    monkeypatch.setattr(torch.version, "cuda", cuda)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "init", init)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ARCH)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Tesla V100-SXM2-32GB")
    version = tmp_path / "nvidia_version"
    if driver:
        version.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15\n")
    monkeypatch.setattr(cuda_check, "NVIDIA_DRIVER", str(version))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a usable GPU")
def test_without_a_gpu_auto_trains_on_cpu_and_cuda_says_why_not():
    assert train_on_cpu("auto") and train_on_cpu("cpu")
    with pytest.raises(GPUUnusable, match="accelerate.device is cuda, but .*accelerate.device: cpu"):
        train_on_cpu("cuda")


def test_a_driver_too_old_for_the_cuda_build_stops_the_run(monkeypatch, tmp_path):
    _machine(monkeypatch, tmp_path, available=False, init_error="The NVIDIA driver on your system is too old "
             "(found version 12040). Please update your GPU driver by downloading and installing a new version")
    for device in ("auto", "cuda"):  # auto too: the machine has a driver, so it has GPUs to use
        with pytest.raises(GPUUnusable, match=r"cannot use a GPU: The NVIDIA driver on your system is too old \(found "
                           r"version 12040\).*R580 or newer"):
            train_on_cpu(device)
    assert train_on_cpu("cpu")


def test_a_cpu_only_torch_on_a_gpu_machine_stops_the_run(monkeypatch, tmp_path):
    _machine(monkeypatch, tmp_path, cuda=None, available=False)
    with pytest.raises(GPUUnusable, match=r"this machine has an NVIDIA driver .* is a CPU-only build"):
        train_on_cpu("auto")


def test_no_driver_and_no_gpu_is_a_cpu_machine(monkeypatch, tmp_path):
    _machine(monkeypatch, tmp_path, available=False, init_error="Found no NVIDIA driver on your system.", driver=False)
    assert train_on_cpu("auto")


def test_a_gpu_the_build_has_no_kernels_for_stops_the_run(monkeypatch, tmp_path):
    _machine(monkeypatch, tmp_path, capability=(7, 0))  # V100
    with pytest.raises(GPUUnusable, match=r"GPU 0 \(Tesla V100-SXM2-32GB\) has compute capability 7.0.*no kernel "
                       r"image.*sm_70"):
        train_on_cpu("auto")
    for ok in ((7, 5), (8, 9), (9, 0), (12, 0)):  # T4, L4 (runs sm_86 code), H100, RTX 50xx
        _machine(monkeypatch, tmp_path, capability=ok)
        assert not train_on_cpu("auto") and not train_on_cpu("cuda")


def test_kernel_compatibility_rule():
    assert build_runs_on(8, 9, ["sm_80"]) and not build_runs_on(8, 0, ["sm_86"])  # same major, minor up only
    assert not build_runs_on(10, 0, ["sm_90"]) and build_runs_on(10, 0, ["sm_90", "compute_90"])  # PTX JIT
    assert build_runs_on(9, 0, ["sm_90a"])


def test_the_stage_stops_before_building_anything(monkeypatch, tmp_path, capsys):
    import tarfile

    from train.stage import main

    _machine(monkeypatch, tmp_path, capability=(7, 0))
    tarfile.open(tmp_path / "00000.tar", "w").close()  # data is checked first: a shard must exist
    cfg = tiny_config(tmp_path, tmp_path / "vae", shards=tmp_path)  # never loaded: the check comes first
    cfg["stages"][2]["init_from"] = "none"
    cfg["stages"][2]["data"]["val_holdout_shards"] = 0
    cfg["accelerate"] = {"device": "cuda"}
    assert main(["--stage", "2", "--config", str(write_config(tmp_path / "t.yaml", cfg))]) == 2
    assert "error: accelerate.device is cuda, but GPU 0 (Tesla V100-SXM2-32GB) has compute capability 7.0" in \
        capsys.readouterr().err
    assert not (tmp_path / "stage2").exists()
