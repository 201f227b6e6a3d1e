"""What a set-up step actually runs on, read from the models it holds (not from its
settings): each torch module's device and dtype, each ONNX Runtime session's providers
and threads. And the check a model pool runs on it: a step that should be on a GPU but
runs on CPU is an error naming why (or, when the workflow allows it, a warning)."""

from __future__ import annotations

import os
import sys

from steps.devices import cuda_problem, ort_fallback_problem

_MAX_DEPTH = 4  # step -> helper (e.g. a detector wrapper) -> its model; deeper is library internals
_MAX_ITEMS = 16  # of a list or dict: models live in short lists, vocabularies in long dicts


def placements(step) -> list[dict]:
    """One entry per distinct model found under `step`: {"model", "device", "dtype",
    "provider"} (and "threads" for an ONNX Runtime session)."""
    torch = sys.modules.get("torch")
    ort = sys.modules.get("onnxruntime")
    found: list[dict] = []
    seen: set[int] = set()

    def visit(obj, depth: int) -> None:
        if id(obj) in seen or depth > _MAX_DEPTH or obj is None or isinstance(obj, (str, bytes, int, float, bool, type)):
            return
        seen.add(id(obj))
        if torch is not None and isinstance(obj, torch.nn.Module):
            found.append(_torch_entry(torch, obj))
        elif ort is not None and isinstance(obj, ort.InferenceSession):
            found.append(_ort_entry(obj))
        elif isinstance(obj, (list, tuple)):
            for x in obj[:_MAX_ITEMS]:
                visit(x, depth + 1)
        elif isinstance(obj, dict):
            for x in list(obj.values())[:_MAX_ITEMS]:
                visit(x, depth + 1)
        elif hasattr(obj, "__dict__") and not (torch is not None and isinstance(obj, torch.Tensor)):
            for x in list(vars(obj).values()):
                visit(x, depth + 1)

    visit(step, 0)
    return [e for i, e in enumerate(found) if e is not None and e not in found[:i]]


def _torch_entry(torch, module) -> dict | None:
    tensor = next(iter(module.parameters()), None)
    if tensor is None:
        tensor = next(iter(module.buffers()), None)
    if tensor is None:
        return None
    return {"model": type(module).__name__, "device": str(tensor.device), "dtype": str(tensor.dtype).removeprefix("torch."),
            "provider": "torch"}


def _ort_entry(session) -> dict:
    provider = session.get_providers()[0]
    opts = session.get_session_options()
    dtype = session.get_inputs()[0].type.removeprefix("tensor(").removesuffix(")")
    path = getattr(session, "_model_path", None)
    return {"model": os.path.basename(path) if isinstance(path, str) else "onnx",
            "device": "cuda" if provider == "CUDAExecutionProvider" else "cpu", "dtype": dtype,
            "provider": provider, "threads": {"intra_op": opts.intra_op_num_threads, "inter_op": opts.inter_op_num_threads},
            "_session": session}


def check_placement(step, gpus_given: int, allow_cpu_fallback: bool, warnings: list[str]) -> list[dict]:
    """What `step` runs on (placements(), JSON-able). A step asked for a GPU (`device:
    cuda...`, or `auto` in a process given `gpus_given` GPUs) that holds a model on CPU
    raises naming why, unless `allow_cpu_fallback`: then why is appended to `warnings`."""
    found = placements(step)
    asked = getattr(step.cfg, "device", None)
    wants_gpu = isinstance(asked, str) and (asked.startswith("cuda") or (asked == "auto" and gpus_given > 0))
    on_cpu = [p for p in found if p["device"] == "cpu"]
    if wants_gpu and on_cpu:
        why = "; ".join(dict.fromkeys(
            ort_fallback_problem(p["_session"]) if "_session" in p else (cuda_problem() or f"{p['model']} was left on CPU by the step")
            for p in on_cpu))
        section = "filters" if step.kind == "filter" else "annotate"
        given = f" on a model actor Ray gave {gpus_given} GPU(s)" if gpus_given else ""
        msg = f"{section}.{step.name}: device: {asked}{given}, but it runs on CPU: {why}"
        if not allow_cpu_fallback:
            raise RuntimeError(f"{msg}. Fix that, or set ray.allow_cpu_fallback: true to run it on CPU anyway")
        warnings.append(f"{msg} (running on CPU: ray.allow_cpu_fallback is true)")
    return [{k: v for k, v in p.items() if k != "_session"} for p in found]
