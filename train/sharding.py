"""FSDP2 for the big UNet: shard the trained network and its EMA across processes, and move
whole state dicts in and out of the shards, so checkpoints stay the same safetensors files
with or without sharding (train/checkpoint.py's format, any world size).

Sharding is on when `accelerate launch --config_file workflows/accelerate_fsdp_xl.yaml` set
accelerate's FSDP variables (ACCELERATE_USE_FSDP, FSDP_*); its `fsdp_config` says which block
classes are shard units and whether to reshard after forward. The trainer applies torch's
`fully_shard` itself, before the optimizer is built, rather than in `accelerator.prepare`:
the same code then runs on GPUs and on CPU processes (gloo), where accelerate has no FSDP.
"""

from __future__ import annotations

import os

import torch
from torch import nn

FULL = {"full_state_dict": True, "cpu_offload": True}


def fsdp_plugin(acc):
    """accelerate's FSDP settings when this run is sharded, else None."""
    if getattr(acc.state, "fsdp_plugin", None) is not None:
        return acc.state.fsdp_plugin
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true" or acc.num_processes < 2:
        return None
    from accelerate.utils import FullyShardedDataParallelPlugin

    return FullyShardedDataParallelPlugin()  # reads the FSDP_* variables accelerate launch exported


def wrap_targets(model: nn.Module, class_names) -> list[nn.Module]:
    """The submodules that become their own shard unit (the root holds the rest), innermost first."""
    names = set(class_names or ())
    found = {type(m).__name__ for m in model.modules()}
    if not names or not names & found:
        raise ValueError(f"fsdp_transformer_layer_cls_to_wrap {sorted(names)} names no module class of "
                         f"{type(model).__name__} (it has {', '.join(sorted(found))})")
    return [m for m in reversed(list(model.modules())) if type(m).__name__ in names and m is not model]


def shard(model: nn.Module, plugin, mixed_precision: str) -> nn.Module:
    """fully_shard each wrap target, then the root, in place."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    if mixed_precision == "fp16":
        raise ValueError("FSDP here supports accelerate.mixed_precision 'no' or 'bf16' (fp16 needs a sharded grad scaler)")
    dtype = torch.bfloat16 if mixed_precision == "bf16" else None
    policy = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32 if dtype else None)
    reshard = plugin.reshard_after_forward
    reshard = reshard if isinstance(reshard, bool) else str(reshard).upper() in ("TRUE", "FULL_SHARD", "1")
    for block in wrap_targets(model, plugin.transformer_cls_names_to_wrap):
        fully_shard(block, reshard_after_forward=reshard, mp_policy=policy)
    fully_shard(model, reshard_after_forward=reshard, mp_policy=policy)
    return model


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def local(t: torch.Tensor) -> torch.Tensor:
    """This rank's shard of a parameter (the tensor itself when not sharded)."""
    return t.to_local() if hasattr(t, "to_local") else t


def clip_grad_norm(params, max_norm: float) -> torch.Tensor:
    """The total gradient norm over all shards (a plain tensor), gradients clipped to max_norm."""
    norm = torch.nn.utils.clip_grad_norm_(list(params), max_norm)
    return norm.full_tensor() if hasattr(norm, "full_tensor") else norm


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole state dict on rank 0's CPU ({} on the others). Every rank must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(**FULL))


def load_full_model_state(model: nn.Module, sd: dict[str, torch.Tensor]) -> None:
    """Rank 0's whole state dict scattered into every rank's shards (others pass {})."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(model, sd, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))


def full_optimizer_state(model: nn.Module, opt) -> dict:
    """The optimizer's whole state dict on rank 0, keyed by parameter index like an unsharded
    optimizer's (so the files are the same either way); {} on the other ranks."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    sd = get_optimizer_state_dict(model, opt, options=StateDictOptions(**FULL))
    if not sd:
        return {}
    index = {name: i for i, (name, _) in enumerate(model.named_parameters())}
    return {"state": {index[name]: st for name, st in sd["state"].items()},
            "param_groups": [{**g, "params": [index[n] for n in g["params"]]} for g in sd["param_groups"]]}


def load_full_optimizer_state(model: nn.Module, opt, sd: dict) -> None:
    """Rank 0's whole optimizer state dict (index-keyed, as saved) into every rank's shards."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    if sd:
        names = [name for name, _ in model.named_parameters()]
        sd = {"state": {names[int(i)]: st for i, st in sd["state"].items()},
              "param_groups": [{**g, "params": [names[int(i)] for i in g["params"]]} for g in sd["param_groups"]]}
    set_optimizer_state_dict(model, opt, sd, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
