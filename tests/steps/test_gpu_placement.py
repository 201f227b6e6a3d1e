"""A model step that should run on a GPU but would run on CPU stops at start-up, saying
why (issue 26, item 1), or with ray.allow_cpu_fallback is a warning; each ONNX Runtime
session uses the CPUs this process was given. What a CPU cannot show is patched in:
torch's CUDA build, driver, compute capability, and ORT's providers. The models are real
(the bundled open_nsfw ONNX, the watermark CNN) and really load."""

from __future__ import annotations

import onnxruntime as ort
import pytest
import torch

from filters.nsfw import NsfwFilter
from filters.watermark import WatermarkFilter
from steps import devices
from steps.devices import cuda_problem, ort_cuda_problem, ort_providers, torch_device
from steps.placement import check_placement, placements

ONNX_GPU_BUILD = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]  # onnxruntime-gpu, even on a CPU host


def _gpu(monkeypatch, capability=(9, 0), archs=("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"), cuda="13.0"):
    monkeypatch.setattr(torch.version, "cuda", cuda)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: list(archs))


def test_torch_reasons(monkeypatch):
    _gpu(monkeypatch)
    assert cuda_problem() is None
    _gpu(monkeypatch, capability=(8, 9))  # an L4: sm_86 kernels run on it
    assert cuda_problem() is None
    _gpu(monkeypatch, capability=(7, 0))  # a V100 under torch 2.14's CUDA 13 build
    assert "compute capability sm_70 is not in this torch build's kernels" in cuda_problem()
    _gpu(monkeypatch, capability=(7, 0), archs=("compute_70",))  # PTX is compiled for it at load time
    assert cuda_problem() is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a driver older than the build's CUDA
    assert "torch.cuda.is_available() is False; the NVIDIA driver is too old for CUDA 13.0 (" in cuda_problem()
    monkeypatch.setattr(torch.version, "cuda", None)
    assert "is a CPU-only build" in cuda_problem()
    with pytest.raises(RuntimeError, match="device='cuda' was asked for but torch .* is a CPU-only build"):
        torch_device("cuda")


def test_ort_reason_reports_what_get_available_providers_says(monkeypatch):
    assert "CUDAExecutionProvider" not in ort.get_available_providers()  # the CPU wheel, installed by `make setup`
    assert "has no CUDAExecutionProvider (get_available_providers(): " in ort_cuda_problem()
    assert "install onnxruntime-gpu in its place" in ort_cuda_problem()
    monkeypatch.setattr(ort, "get_available_providers", lambda: ONNX_GPU_BUILD)
    assert ort_cuda_problem() is None
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # a Ray actor given one GPU
    assert ort_providers("cuda:0") == [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
    with pytest.raises(RuntimeError, match=r"device='cuda:1' .* this process sees 1 CUDA device\(s\)"):
        ort_providers("cuda:1")


def test_torch_step_on_a_gpu_actor_left_on_cpu_is_an_error_or_a_warning(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # driver too old: `auto` falls to CPU
    step = WatermarkFilter.ready(enabled=True, defer_text_area=None)
    with pytest.raises(RuntimeError, match=r"filters.watermark: device: auto on a model actor Ray gave 1 GPU\(s\), but it runs "
                                           r"on CPU: .*is_available\(\) is False.*set ray.allow_cpu_fallback: true"):
        check_placement(step, 1, False, [])
    warnings = []
    assert check_placement(step, 1, True, warnings) == [{"model": "WatermarkNet", "device": "cpu", "dtype": "float32", "provider": "torch"}]
    assert len(warnings) == 1 and "is_available() is False" in warnings[0] and "allow_cpu_fallback is true" in warnings[0]
    assert check_placement(step, 0, False, []) and check_placement(WatermarkFilter.ready(enabled=True, defer_text_area=None,
                                                                                        device="cpu"), 1, False, [])


def test_onnx_session_that_falls_back_to_cpu_is_caught_after_it_is_made(monkeypatch):
    step = NsfwFilter.ready(enabled=True)  # the CPU wheel: auto asks only for CPU
    with pytest.raises(RuntimeError, match="filters.nsfw: device: auto on a model actor Ray gave 1 GPU.* has no CUDAExecutionProvider"):
        check_placement(step, 1, False, [])
    # onnxruntime-gpu that cannot load its CUDA libraries: the session asks for CUDA and silently gets CPU
    monkeypatch.setattr(ort, "get_available_providers", lambda: ONNX_GPU_BUILD)
    step = NsfwFilter.ready(enabled=True)
    with pytest.raises(RuntimeError, match="runs on CPUExecutionProvider although CUDAExecutionProvider is installed"):
        check_placement(step, 1, False, [])
    with pytest.raises(RuntimeError, match="filters.nsfw.model_path: device='cuda' was asked for but the ONNX Runtime session runs on CPU"):
        NsfwFilter.ready(enabled=True, device="cuda")
    monkeypatch.setattr(devices, "_cpu_fallback", True)  # ray.allow_cpu_fallback: true
    warnings = []
    (entry,) = check_placement(NsfwFilter.ready(enabled=True, device="cuda"), 0, True, warnings)
    assert (entry["model"], entry["device"], entry["provider"], entry["dtype"]) == ("open-nsfw.onnx", "cpu", "CPUExecutionProvider", "float")
    assert "filters.nsfw: device: cuda, but it runs on CPU" in warnings[0]


@pytest.mark.parametrize("omp, num_threads, expected", [("2", 0, 2), ("2", 3, 3), (None, 0, None)])
def test_onnx_threads_follow_the_cpus_this_process_was_given(monkeypatch, omp, num_threads, expected):
    # Ray sets OMP_NUM_THREADS to an actor's num_cpus; ORT's own default (0) is one thread per core of the machine
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        expected = len(__import__("os").sched_getaffinity(0))
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    from filters.nsfw import OpenNsfwOnnx

    (entry,) = placements(OpenNsfwOnnx(num_threads=num_threads))
    assert entry["threads"] == {"intra_op": expected, "inter_op": 1}
