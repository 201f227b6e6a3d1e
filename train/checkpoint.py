"""Checkpoints without pickle: weights, optimizer tensors and RNG states as safetensors,
everything else (step, data position, LR schedule, Python/NumPy RNG, what was trained)
as JSON.

    STAGE_DIR/checkpoints/step_00000040/  model.safetensors, ema.safetensors (T2I),
        optimizer.safetensors + optimizer.json, rng_rank{R}.safetensors, state.json
    STAGE_DIR/final.json                  {"checkpoint": "checkpoints/step_...", "step": N}

A checkpoint is written into `step_N.tmp/` and renamed to `step_N/` when every file is
on disk, so a run killed mid-write leaves only a `.tmp` folder, which is never loaded
and is deleted at the next start. `state.json` is written last inside it.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

STEP_RE = re.compile(r"^step_(\d+)$")


def _fsync_write_json(path: Path, data: dict) -> None:
    with open(path, "w") as fh:
        json.dump(data, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())


def save_weights(module_or_sd, path: Path) -> None:
    sd = module_or_sd if isinstance(module_or_sd, dict) else module_or_sd.state_dict()
    save_file({k: v.detach().contiguous().cpu() for k, v in sd.items()}, str(path))


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def optimizer_to_files(opt_or_sd, folder: Path) -> None:
    """An optimizer (or its state dict, e.g. gathered from FSDP shards) -> safetensors + JSON."""
    sd = opt_or_sd if isinstance(opt_or_sd, dict) else opt_or_sd.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(pid), {})[k] = v
    save_file(tensors, str(folder / "optimizer.safetensors"))
    _fsync_write_json(folder / "optimizer.json", {"param_groups": sd["param_groups"], "scalars": scalars})


def optimizer_from_files(opt: torch.optim.Optimizer, folder: Path) -> None:
    opt.load_state_dict(read_optimizer_files(folder))


def read_optimizer_files(folder: Path) -> dict:
    """The optimizer state dict `optimizer_to_files` wrote (parameters by index)."""
    meta = json.loads((folder / "optimizer.json").read_text())
    state: dict[int, dict] = {}
    for key, v in load_file(str(folder / "optimizer.safetensors")).items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    for pid, st in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(st)
    return {"state": state, "param_groups": meta["param_groups"]}


def rng_state(gen: torch.Generator) -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"torch": torch.get_rng_state(), "train_generator": gen.get_state()}
    if torch.cuda.is_available():
        tensors["cuda"] = torch.cuda.get_rng_state()
    np_state = np.random.get_state()
    py = random.getstate()
    return tensors, {"python": [py[0], list(py[1]), py[2]], "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]]}


def set_rng_state(folder: Path, rank: int, gen: torch.Generator, py_np: dict) -> None:
    t = load_file(str(folder / f"rng_rank{rank}.safetensors"))
    torch.set_rng_state(t["torch"])
    gen.set_state(t["train_generator"])
    if "cuda" in t and torch.cuda.is_available():
        torch.cuda.set_rng_state(t["cuda"])
    py = py_np["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = py_np["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), *n[2:]))


def complete_checkpoints(stage_dir: Path) -> list[Path]:
    """Finished checkpoints, oldest first (a folder counts only once renamed and with state.json)."""
    root = stage_dir / "checkpoints"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := STEP_RE.match(p.name)) and (p / "state.json").is_file()]
    return [p for _, p in sorted(found)]


def remove_partial(stage_dir: Path) -> None:
    for p in (stage_dir / "checkpoints").glob("*.tmp"):
        shutil.rmtree(p, ignore_errors=True)


def tmp_dir_for(stage_dir: Path, step: int) -> Path:
    return stage_dir / "checkpoints" / f"step_{step:08d}.tmp"


def commit(tmp: Path, state: dict, keep: int) -> Path:
    """Write state.json last, rename the folder into place, prune old checkpoints."""
    _fsync_write_json(tmp / "state.json", state)
    final = tmp.with_name(tmp.name.removesuffix(".tmp"))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    dir_fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    for old in complete_checkpoints(final.parent.parent)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def mark_final(stage_dir: Path, ckpt: Path, step: int) -> None:
    tmp = stage_dir / "final.json.tmp"
    _fsync_write_json(tmp, {"checkpoint": str(ckpt.relative_to(stage_dir)), "step": step})
    os.replace(tmp, stage_dir / "final.json")


def final_checkpoint(stage_dir: Path) -> Path | None:
    marker = stage_dir / "final.json"
    if not marker.is_file():
        return None
    path = stage_dir / json.loads(marker.read_text())["checkpoint"]
    return path if (path / "state.json").is_file() else None


def read_state(ckpt: Path) -> dict:
    return json.loads((ckpt / "state.json").read_text())


def load_same_task(model, ckpt: Path, prev_task: str, task: str, what: str) -> tuple[str, list[str]]:
    """Load `model` from a checkpoint of the same task (the classifier from a classify stage, the
    VAE from a vae stage) -> (log line, tensor names); another task's checkpoint is refused."""
    if prev_task != task:
        raise ValueError(f"a {task} stage cannot start from a {prev_task} checkpoint ({ckpt}); set init_from: none")
    sd = load_weights(ckpt / "model.safetensors")
    model.load_state_dict(sd)
    return f"loaded the {what} ({len(sd)} tensors) from {ckpt}", sorted(sd)
