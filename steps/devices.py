"""Shared helpers for the model filters: device choice and model-file checks.

`device` settings take "auto" (CUDA when present, else CPU), "cpu", "cuda" or "cuda:N".
"""

from __future__ import annotations

import os


def torch_device(device: str = "auto"):
    """The torch device for a filter's `device` setting."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={device!r} was asked for but torch sees no CUDA device; use 'auto' or 'cpu'")
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        # under Ray a model actor sees only the GPU(s) it was given, numbered from 0
        raise RuntimeError(f"device={device!r} was asked for but this process sees {torch.cuda.device_count()} CUDA "
                           "device(s), numbered from 0 (a Ray actor sees only its own); use 'auto' or 'cuda'")
    return dev


def half_dtype():
    """bfloat16 where the GPU runs it natively (Ampere and later), else float16: torch's
    plain is_bf16_supported() counts emulation, which on a T4 or V100 is slow."""
    import torch

    return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16


def ort_providers(device: str = "auto") -> list[str]:
    """ONNX Runtime execution providers for a `device` setting, best first.

    "auto" uses CUDAExecutionProvider when this onnxruntime build has it (onnxruntime-gpu),
    falling back to CPU inside the session for any op CUDA lacks.
    """
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in available:
            raise RuntimeError(
                f"device={device!r} was asked for but onnxruntime has no CUDAExecutionProvider "
                f"(available: {available}); install onnxruntime-gpu or use 'auto'/'cpu'"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return (["CUDAExecutionProvider"] if "CUDAExecutionProvider" in available else []) + ["CPUExecutionProvider"]


def require_file(path: str | os.PathLike, setting: str, hint: str) -> str:
    """Return `path` as a string if it is a readable file, else raise naming the setting.

    `setting` is the YAML path of the option (e.g. "filters.watermark.model_path");
    `hint` says what to set it to instead.
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise FileNotFoundError(f"{setting}: {p} does not exist; {hint}")
    if not os.path.isfile(p):
        raise FileNotFoundError(f"{setting}: {p} is not a file; {hint}")
    if not os.access(p, os.R_OK):
        raise PermissionError(f"{setting}: {p} is not readable; {hint}")
    return p


def model_load_error(setting: str, path: str, exc: Exception, hint: str) -> RuntimeError:
    """A build-time error for a model file that exists but cannot be loaded."""
    return RuntimeError(f"{setting}: could not load {path} ({type(exc).__name__}: {exc}); {hint}")
