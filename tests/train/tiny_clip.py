"""A tiny random CLIPModel with a real CLIPTokenizer, saved like a hub checkpoint: the
evaluation tests and the trainer tests load it through the path a user's CLIP takes."""

from __future__ import annotations

from pathlib import Path

import torch


def byte_level_clip_tokenizer():
    """A CLIPTokenizer with one token per byte and no merges: the real tokenizer class and
    file format (vocab.json + merges.txt), with a 514-entry vocabulary instead of 49408."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[])


def build_tiny_clip():
    """(model, tokenizer, image processor), random weights, 32 px images."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tok = byte_level_clip_tokenizer()
    text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=77, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8)
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return model, tok, processor


def save_clip(path: Path, model, tok, processor) -> Path:
    model.save_pretrained(path)
    tok.save_pretrained(path)
    processor.save_pretrained(path)
    return path
