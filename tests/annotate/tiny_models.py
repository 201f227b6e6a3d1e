"""The tiny random models live in annotate/tiny_models.py (the benchmarks' smoke runs use them too)."""

from annotate.tiny_models import WORDS, _bert_tokenizer, save_tiny_blip, save_tiny_florence2, save_tiny_yolo

__all__ = ["WORDS", "_bert_tokenizer", "save_tiny_blip", "save_tiny_florence2", "save_tiny_yolo"]
