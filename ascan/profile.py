"""Parameter and MAC counts, shared by the README table, the tests and the benchmark."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: torch.nn.Module, *inputs) -> int:
    """MACs (= FLOPs / 2) of one forward pass.

    Counted on the meta device: the CPU kernel behind F.scaled_dot_product_attention is
    not registered with FlopCounterMode (it counts 0), the meta one is. Inputs and model
    move to meta, so nothing is computed or allocated. Pass a meta-built model to avoid a copy.
    """
    meta = model if next(model.parameters()).is_meta else _to_meta(model)
    meta_inputs = [x.to("meta") if isinstance(x, torch.Tensor) else x for x in inputs]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta(*meta_inputs)
    return counter.get_total_flops() // 2


def _to_meta(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(model).to("meta")
