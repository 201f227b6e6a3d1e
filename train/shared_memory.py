"""The training loader's shared memory, checked against /dev/shm before any worker starts.

Loader workers hand their batches to the training process through shared memory (/dev/shm on
Linux): up to num_workers x prefetch batches wait there per process, plus the one in use. A
container's default /dev/shm (64 MB under docker) gives a bus error on the first batches of a
GPU recipe instead of an error at start; this names the numbers and the fix first."""

from __future__ import annotations

import os
import shutil

SHM = "/dev/shm"


def loader_bytes(batch_bytes: int, num_workers: int, prefetch: int) -> int:
    """Shared memory one process's loader can hold at once (no workers: none)."""
    return batch_bytes * (num_workers * prefetch + 1) if num_workers else 0


def processes_on_this_machine() -> int:
    """Training processes sharing this machine's /dev/shm (torchrun / accelerate launch set it)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def shm_problem(per_process: int, processes: int, setting: str, path: str = SHM) -> str | None:
    """Why the loaders would not fit in `path`, with the fix; None when they fit (or there is no /dev/shm)."""
    if not per_process or not os.path.isdir(path):
        return None
    free, need = shutil.disk_usage(path).free, per_process * processes
    if need <= free:
        return None
    return (f"the training data loaders need ~{need / 2**20:,.0f} MB of shared memory ({processes} process(es) x "
            f"{per_process / 2**20:,.0f} MB: {setting}.num_workers x {setting}.prefetch batches waiting, plus one in use) "
            f"but {path} has {free / 2**20:,.0f} MB free: use fewer workers, a smaller prefetch or batch size, or give "
            f"the machine more shared memory (docker run --shm-size=16g; Kubernetes: an emptyDir with medium: Memory "
            f"mounted at /dev/shm)")
