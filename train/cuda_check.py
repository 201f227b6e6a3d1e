"""Can this process train on its GPUs, and if not, why not: checked before the Accelerator is made.

torch from PyPI (2.14.1) is a CUDA 13 build: kernels for compute capability 7.5 (Turing) and newer
only, and it needs an NVIDIA driver of the R580 series or newer. On an older driver
`torch.cuda.is_available()` is False, so without this check an 8-GPU `accelerate launch` silently
trains as 8 CPU processes; on a V100 (7.0) every step fails with "no kernel image"."""

from __future__ import annotations

import logging
import os

log = logging.getLogger("train")

NVIDIA_DRIVER = "/proc/driver/nvidia/version"  # present where the NVIDIA kernel driver is loaded (also in GPU containers)


class GPUUnusable(ValueError):
    """The run wants its GPUs and torch cannot use them; the message says why and what to install."""


def _arch_version(arch: str) -> int:  # "sm_90a" -> 90
    return int(arch.split("_", 1)[1].rstrip("af"))


def build_runs_on(major: int, minor: int, arch_list: list[str]) -> bool:
    """Whether a build with these kernels (torch.cuda.get_arch_list()) runs on a GPU of this
    capability: a cubin for the same major version and an equal or lower minor, or PTX (compute_XY)
    for an equal or lower capability, which the driver compiles."""
    cc = 10 * major + minor
    return any((a.startswith("sm_") and _arch_version(a) // 10 == major and _arch_version(a) <= cc)
               or (a.startswith("compute_") and _arch_version(a) <= cc) for a in arch_list)


def cuda_problem() -> str | None:
    """None when torch can run kernels on every GPU this process sees, else why it cannot."""
    import torch

    if torch.version.cuda is None:
        return (f"this torch ({torch.__version__}) is a CPU-only build; install a CUDA build "
                "(`pip install torch==2.14.1` from PyPI: CUDA 13, NVIDIA driver R580 or newer, GPUs sm_75 and newer)")
    if not torch.cuda.is_available():
        try:
            torch.cuda.init()  # raises with the driver's reason: none found, or too old for this CUDA
            reason = "it sees no CUDA device (CUDA_VISIBLE_DEVICES?)"
        except Exception as err:  # noqa: BLE001 - its message is the reason we report
            reason = str(err).strip().splitlines()[0]
        return (f"torch {torch.__version__} (CUDA {torch.version.cuda}) cannot use a GPU: {reason}; a CUDA "
                f"{torch.version.cuda.split('.')[0]} build needs an NVIDIA driver that supports it (R580 or newer for "
                "CUDA 13): update the driver, or install a torch build for the CUDA your driver has")
    arch = torch.cuda.get_arch_list()
    for i in range(torch.cuda.device_count()):
        major, minor = torch.cuda.get_device_capability(i)
        if not build_runs_on(major, minor, arch):
            return (f"GPU {i} ({torch.cuda.get_device_name(i)}) has compute capability {major}.{minor}, which this "
                    f"torch {torch.__version__} build has no kernels for (it has {' '.join(arch)}): every step would "
                    f"fail with 'no kernel image'; install a torch build that includes sm_{major}{minor}")
    return None


def train_on_cpu(device: str) -> bool:
    """`accelerate.device`: "cuda" needs usable GPUs; "auto" uses them and, on a machine with an
    NVIDIA driver loaded, also requires them to work (no silent CPU run); "cpu" never uses them."""
    if device == "cpu":
        return True
    problem = cuda_problem()
    if problem is None:
        return False
    if device == "cuda" or os.path.exists(NVIDIA_DRIVER):
        why = "accelerate.device is cuda" if device == "cuda" else f"this machine has an NVIDIA driver ({NVIDIA_DRIVER})"
        raise GPUUnusable(f"{why}, but {problem}. To train on the CPU instead, set accelerate.device: cpu")
    log.info("no usable GPU (%s): training on the CPU", problem)
    return True
