"""A tiny random open_clip model (32-d embeddings, 32 px images) built from a config,
saved, and given back as the settings a user writes (clip_model + clip_config +
clip_weights), so tests load it through the real path (filters/clip_encoder.py).
Random weights: tests with it check mechanics, not what real CLIP would score."""

from __future__ import annotations

import json
from pathlib import Path

TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def save_tiny_open_clip(folder: Path, name: str, seed: int = 0) -> dict:
    """-> {"clip_model", "clip_config", "clip_weights", "model"} (model: the saved torch module)."""
    import open_clip
    import torch

    folder = Path(folder)
    cfg = folder / f"{name}.json"
    cfg.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(str(cfg))
    torch.manual_seed(seed)
    model = open_clip.create_model(name, pretrained=None).eval()
    torch.save(model.state_dict(), folder / f"{name}.pt")
    return {"clip_model": name, "clip_config": str(cfg), "clip_weights": str(folder / f"{name}.pt"), "model": model}
