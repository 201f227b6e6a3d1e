"""How close a model's scores must come to a float32 CPU reference: the tolerance follows
the dtype and device the model actually ran in, so `make test` on a GPU workstation
(steps on `device: auto` run there under float16 autocast) checks the same things as on CPU.

`ran_in(obj)` reads it from what ran: an object with `compute_dtype` and `device` (a
step, a CLIP encoder, a detector: steps/precision.py) or with an ONNX Runtime `session`.
Float32 on CUDA is TF32 for convolutions (cuDNN's default in torch, and ONNX Runtime's
CUDA provider): not float32 CPU either.

The half-precision tolerances cover the largest differences measured on the filters
(bench/half_precision_scores.py, bench/README.md), with room; scores are probabilities
or cosines (0..1, -1..1): absolute tolerances.
"""

from __future__ import annotations

import numpy as np

ATOL = {"float32": 1e-5, "tf32": 5e-3, "float16": 1e-2, "bfloat16": 5e-2}


def ran_in(obj) -> str:
    """"float32", "tf32", "float16" or "bfloat16": what `obj`'s model computed in."""
    session = getattr(obj, "session", None)
    if session is not None and hasattr(session, "get_providers"):  # ONNX Runtime runs the float32 graph
        return "tf32" if session.get_providers()[0] == "CUDAExecutionProvider" else "float32"
    dtype = str(getattr(obj, "compute_dtype", None) or "float32").removeprefix("torch.")
    device = getattr(obj, "device", None)
    on_cuda = getattr(device, "type", str(device)) == "cuda"
    return "tf32" if dtype == "float32" and on_cuda else dtype


def score_atol(obj, float32: float = ATOL["float32"]) -> float:
    """The tolerance for `obj`'s scores; `float32`: the test's own, where the reference
    is not computed exactly as the step computes it (it never shrinks the others)."""
    ran = ran_in(obj)
    return float32 if ran == "float32" else max(ATOL[ran], float32)


def assert_scores_close(got, want, obj, float32: float = ATOL["float32"], scale: float = 1.0) -> None:
    """`got` (from `obj`) matches the float32 CPU `want`; `scale`: the score's range when
    it is not about 1 (10 for the aesthetic 0..10 rating)."""
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64),
                               rtol=0, atol=score_atol(obj, float32) * scale, err_msg=f"ran in {ran_in(obj)}")
