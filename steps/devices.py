"""Shared helpers for the model filters: device choice and model-file checks.

`device` settings take "auto" (CUDA when present, else CPU), "cpu", "cuda" or "cuda:N".
"""

from __future__ import annotations

import os

# Set by the model pool from `ray.allow_cpu_fallback`: a step asked for CUDA that cannot
# have it then runs on CPU (the pool records a warning) instead of failing at set-up.
_cpu_fallback = False


def set_cpu_fallback(allowed: bool) -> None:
    global _cpu_fallback
    _cpu_fallback = bool(allowed)


def cuda_problem() -> str | None:
    """Why torch cannot run on a GPU in this process (the fix included), or None when it can."""
    import torch

    if torch.version.cuda is None:
        return (f"torch {torch.__version__} is a CPU-only build (torch.version.cuda is None); "
                "install the CUDA build (README.md, GPU install: make setup-gpu)")
    if not torch.cuda.is_available():
        return (f"torch {torch.__version__} (built for CUDA {torch.version.cuda}) sees no usable GPU: torch.cuda.is_available() "
                f"is False; the NVIDIA driver is too old for CUDA {torch.version.cuda} (nvidia-smi shows the CUDA version it "
                "supports; CUDA 13 needs driver R580 or later), there is no NVIDIA GPU or driver on this machine, or no GPU "
                "is visible to this process (CUDA_VISIBLE_DEVICES)")
    major, minor = torch.cuda.get_device_capability()
    archs = torch.cuda.get_arch_list()
    if not _has_kernels_for(major, minor, archs):
        return (f"the GPU's compute capability sm_{major}{minor} is not in this torch build's kernels ({' '.join(archs)}): "
                "every batch would fail with 'no kernel image'; use a torch build for this GPU (README.md, GPU install)")
    return None


def _has_kernels_for(major: int, minor: int, archs: list[str]) -> bool:
    """CUDA binary compatibility: sm_XY code runs on sm_XZ for Z >= Y; compute_XY (PTX)
    is compiled at load time for any later GPU."""
    for arch in archs:
        kind, _, num = arch.partition("_")
        if not num.isdigit():
            continue
        m, n = int(num[:-1]), int(num[-1])
        if (kind == "sm" and m == major and n <= minor) or (kind == "compute" and (m, n) <= (major, minor)):
            return True
    return False


def ort_cuda_problem() -> str | None:
    """Why ONNX Runtime cannot run on a GPU here, or None when its CUDA provider is installed."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if "CUDAExecutionProvider" in available:
        return None
    return (f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (get_available_providers(): {', '.join(available)}): "
            "the CPU-only `onnxruntime` wheel is installed; install onnxruntime-gpu in its place (README.md, GPU install: make setup-gpu)")


def torch_device(device: str = "auto"):
    """The torch device for a filter's `device` setting."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and (why := cuda_problem()):
        if _cpu_fallback:
            return torch.device("cpu")
        raise RuntimeError(f"device={device!r} was asked for but {why}; or use 'auto' or 'cpu'")
    if dev.type == "cuda":
        _check_cuda_index(device, dev.index or 0)
    return dev


def _check_cuda_index(device: str, index: int) -> None:
    """Under Ray a model actor sees only the GPU(s) it was given, numbered from 0."""
    import torch

    if index >= torch.cuda.device_count():
        raise RuntimeError(f"device={device!r} was asked for but this process sees {torch.cuda.device_count()} CUDA "
                           "device(s), numbered from 0 (a Ray actor sees only its own); use 'auto' or 'cuda'")


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
    if device.startswith("cuda") and (why := ort_cuda_problem()):
        if _cpu_fallback:
            return ["CPUExecutionProvider"]
        raise RuntimeError(f"device={device!r} was asked for but {why}; or use 'auto' or 'cpu'")
    if "CUDAExecutionProvider" in available:
        index = device.partition(":")[2]
        if index:
            _check_cuda_index(device, int(index))  # ORT would not say: its CUDA provider fails, the session runs on CPU
            return [("CUDAExecutionProvider", {"device_id": int(index)}), "CPUExecutionProvider"]
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def process_cpus() -> int:
    """CPUs this process should use: Ray sets OMP_NUM_THREADS to the CPUs it gave an actor
    or task; elsewhere, the CPUs this process may run on."""
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        return len(os.sched_getaffinity(0))


def ort_session(path: str, device: str, setting: str, hint: str, num_threads: int = 0, optimize: bool = True):
    """An ONNX Runtime session for a model file, on the providers `device` asks for, using
    `num_threads` threads (0: the CPUs this process was given, process_cpus(); ORT's own
    default is one per core of the machine, too many inside an actor Ray gave one CPU).

    The session's actual providers are checked once it exists: onnxruntime-gpu falls back
    to CPU, only logging, when it cannot load its CUDA libraries."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = num_threads or process_cpus()
    opts.inter_op_num_threads = 1  # sequential execution (ORT's default mode) uses no inter-op pool
    providers = ort_providers(device)
    if providers[0] != "CPUExecutionProvider":
        # onnxruntime-gpu finds its CUDA libraries (cuBLAS, cuDNN) only once loaded: torch
        # loads the same CUDA 13 ones from the nvidia-* wheels at import. Without this, a
        # session asking for CUDA falls back to CPU ("libcublasLt.so.13: cannot open").
        import torch  # noqa: F401
    try:
        session = ort.InferenceSession(path, sess_options=opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise model_load_error(setting, path, exc, hint) from exc
    if device.startswith("cuda") and session.get_providers()[0] != "CUDAExecutionProvider" and not _cpu_fallback:
        raise RuntimeError(f"{setting}: device={device!r} was asked for but {ort_fallback_problem(session)}; or use 'auto' or 'cpu'")
    return session


def ort_fallback_problem(session) -> str:
    """Why a session that asked for CUDA runs on CPU."""
    return ort_cuda_problem() or (
        f"the ONNX Runtime session runs on {', '.join(session.get_providers())} although CUDAExecutionProvider is installed: "
        "onnxruntime-gpu could not load its CUDA libraries (their CUDA major version must match the one onnxruntime-gpu "
        "was built for; its log above names the missing library); install it with make setup-gpu (README.md, GPU install)")


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
