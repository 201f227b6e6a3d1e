"""Shared helpers for the AsCAN tests: models are built once per session and reused."""

from __future__ import annotations

import functools

import pytest
import torch

import ascan

# Variants above this size are checked on the meta device only (params, layout, shapes):
# building ascan_xl (663M) or the 2.4B UNet for real would take minutes and gigabytes.
REAL_LIMIT_M = 100.0

CLASSIFIERS = ascan.list_models(kind="classifier")
UNETS = ascan.list_models(kind="unet")
REAL_CLASSIFIERS = [n for n in CLASSIFIERS if ascan.get_config(n).params_m < REAL_LIMIT_M]
REAL_UNETS = [n for n in UNETS if ascan.get_config(n).params_m < REAL_LIMIT_M]


@functools.cache
def built(name: str) -> torch.nn.Module:
    """A model as after some training: the UNet's zero-initialised layers (modulation,
    cross-attention output, conv_out) made non-zero, so outputs depend on every input."""
    torch.manual_seed(0)
    m = ascan.create_model(name)
    with torch.no_grad():
        for p in m.parameters():
            if not p.any():
                p.normal_(0.0, 0.02)
    return m


@pytest.fixture(autouse=True)
def _one_thread():
    # On the shared 2-core box, 2 OpenMP threads competing with other jobs run these small
    # ops 10-25x slower than 1 thread (spin-waiting); 1 thread keeps the suite fast.
    torch.set_num_threads(1)
