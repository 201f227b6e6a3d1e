"""Counting the calls a step's real model gets, to check that `process()` honours the
step's `batch_size` (steps/base.py): N samples at batch size b make ceil(N/b) model
calls of at most b samples each, and give what one call over all N gives."""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import pytest


@contextmanager
def counted(obj, attr: str, size):
    """Records `size(*args, **kwargs)` (the batch one call got) for every call of `obj.attr`
    (a torch module's forward, a model's generate, an ONNX Runtime session's run)."""
    sizes: list[int] = []
    original = getattr(obj, attr)
    own = attr in vars(obj)

    def call(*args, **kwargs):
        sizes.append(int(size(*args, **kwargs)))
        return original(*args, **kwargs)

    setattr(obj, attr, call)  # an instance attribute shadows the method (nn.Module.__call__ reads self.forward)
    try:
        yield sizes
    finally:
        if own:
            setattr(obj, attr, original)
        else:
            delattr(obj, attr)


def assert_close(got, want, atol: float, where: str = "result") -> None:
    """Same structure and strings; numbers within atol."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), where
        for k in want:
            assert_close(got[k], want[k], atol, f"{where}.{k}")
    elif isinstance(want, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, atol, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(want, bool):
        assert got == pytest.approx(want, abs=atol, nan_ok=True), where
    else:
        assert got == want, where


def assert_honours_batch_size(step, images: list[np.ndarray], meta: list[dict], calls: list[int], b: int,
                              atol: float = 1e-5) -> None:
    """`calls`: the list `counted()` fills for the step's model. Each run gets fresh copies
    of the images (the shared CLIP encoder caches embeddings by array)."""
    n = len(images)
    assert 0 < b < n and n % b, "use a batch size that splits the images unevenly"
    runs, configured = {}, step.cfg.batch_size
    try:
        for size in (n, b):
            calls.clear()
            step.cfg.batch_size = size
            runs[size] = step.process([im.copy() for im in images], [dict(m) for m in meta])
            assert calls == [min(size, n - s) for s in range(0, n, size)], (size, calls)
            assert len(calls) == math.ceil(n / size)
    finally:
        step.cfg.batch_size = configured  # the step is a module fixture
    assert_close(runs[b], runs[n], atol)
