"""`python -m steps.gpu_report`: what this install can run on a GPU, and why not where it
cannot (the reasons a model step would give at start-up). `make setup-gpu` runs it last.
Exit status 1 when torch or ONNX Runtime cannot use a GPU here."""

from __future__ import annotations

import sys


def gpu_report() -> tuple[list[str], list[str]]:
    """(lines describing the install, the problems: empty when both libraries can use a GPU)."""
    import onnxruntime as ort
    import torch

    from steps.devices import cuda_problem, ort_cuda_problem

    lines = [f"torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none (CPU-only build)'}, "
             f"kernels for {' '.join(torch.cuda.get_arch_list()) or 'none'}",
             f"onnxruntime {ort.__version__}: get_available_providers() = {', '.join(ort.get_available_providers())}"]
    torch_why, ort_why = cuda_problem(), ort_cuda_problem()
    if torch_why is None:
        for i in range(torch.cuda.device_count()):
            major, minor = torch.cuda.get_device_capability(i)
            lines.append(f"cuda:{i}: {torch.cuda.get_device_name(i)}, compute capability sm_{major}{minor}")
    return lines, [why for why in (torch_why, ort_why) if why]


def main() -> int:
    lines, problems = gpu_report()
    print("\n".join(lines))
    for why in problems:
        print(f"no GPU: {why}")
    if not problems:
        print("GPU ready: model steps with device auto or cuda will run on it")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
