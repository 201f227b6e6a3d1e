"""The frozen text encoder's dtype is the config's, not the checkpoint's (issue 26, item 5):
a checkpoint saved in bfloat16 loads in float32 by default, and the tokens handed to the
UNet are float32 whatever the weights' dtype."""

from __future__ import annotations

import pytest
import torch

from tests.train.tiny_clip import build_tiny_clip, save_clip
from train.config import TextEncoderConfig
from train.encoders import TextEncoder


@pytest.fixture(scope="module")
def bf16_clip(tmp_path_factory):
    model, tok, processor = build_tiny_clip()
    path = save_clip(tmp_path_factory.mktemp("clip-bf16"), model.to(torch.bfloat16), tok, processor)
    assert '"bfloat16"' in (path / "config.json").read_text()  # the checkpoint records bf16
    return path


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_weights_in_the_configured_dtype_tokens_in_float32(bf16_clip, dtype):
    enc = TextEncoder(TextEncoderConfig(path=str(bf16_clip), kind="clip", max_length=16, dtype=dtype))
    assert {p.dtype for p in enc.model.parameters()} == {getattr(torch, dtype)}
    tokens, mask = enc(["a red square", "a blue triangle on the left"])
    assert tokens.dtype == torch.float32 and tokens.shape[:2] == mask.shape == (2, 16)
    assert torch.isfinite(tokens).all()
