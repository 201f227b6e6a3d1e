"""Device choices a CPU run never exercises (issue 26, items 8 and 10), with what the CPU
cannot show patched in: the GPUs a process sees and whether bf16 is native."""

from __future__ import annotations

import pytest
import torch

from annotate.captioner import pick_dtype
from steps.devices import torch_device


def _gpus(monkeypatch, n: int):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))  # an H100: in the build's kernels


def test_cuda_index_checked_against_the_devices_this_process_sees(monkeypatch):
    _gpus(monkeypatch, 1)  # a Ray model actor given one GPU sees it as cuda:0
    assert torch_device("cuda:0") == torch.device("cuda:0") and torch_device("cuda") == torch.device("cuda")
    with pytest.raises(RuntimeError, match=r"device='cuda:1' .* this process sees 1 CUDA device\(s\)"):
        torch_device("cuda:1")
    _gpus(monkeypatch, 0)
    with pytest.raises(RuntimeError, match=r"sees no usable GPU: torch.cuda.is_available\(\) is False"):
        torch_device("cuda:0")
    assert torch_device("auto") == torch.device("cpu")


@pytest.mark.parametrize("native, expected", [(True, torch.bfloat16), (False, torch.float16)])
def test_captioner_uses_bf16_only_where_it_is_native(monkeypatch, native, expected):
    # a T4 reports is_bf16_supported() True through emulation; only native support counts
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: native or including_emulation)
    assert pick_dtype("auto", torch.device("cuda")) == expected
    assert pick_dtype("auto", torch.device("cpu")) == torch.float32
    assert pick_dtype("float32", torch.device("cuda")) == torch.float32
