"""The precision a model step computes in, chosen in one place: the steps' autocast
reads it, and so do the tests, whose tolerance against float32 CPU references follows
it (tests/tolerance.py).

A step's `compute_dtype` is float16 on CUDA (torch.autocast's CUDA default: the convs and
matmuls run in half precision, the weights stay float32) and float32 elsewhere (no
autocast). Setting it on a set-up step changes what its next batch runs in (the tests
run a step in bfloat16 or float16 on CPU that way).
"""

from __future__ import annotations


def autocast_dtype(device):
    """The dtype a step on `device` computes in: float16 on CUDA, else float32."""
    import torch

    return torch.float16 if device.type == "cuda" else torch.float32


def autocast(device, dtype):
    """The forward's context: autocast to `dtype`, or none for float32."""
    import torch

    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
