"""Tiny random models built from configs and saved the way real weights are shipped
(`save_pretrained` folders, an ultralytics .pt), so tests load them through the same
code path a user's real weights take. No download: tokenizers are built from word lists.
Used by the tests and by `bench/annotate_throughput.py --tiny` (the CPU smoke run of bench/gpu.sh)."""

from __future__ import annotations

from pathlib import Path

WORDS = (
    "a photo of the cat dog on left right with text sign open bakery red street man woman car describe with paragraph what is shown in image"
).split()


def _bert_tokenizer(folder: Path):
    from transformers import BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(WORDS))))
    return BertTokenizer(str(folder / "vocab.txt"))


def _bart_tokenizer(folder: Path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import BartTokenizer

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator([" ".join(WORDS)] * 4, trainer)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = bpe.model.save(str(folder))
    return BartTokenizer(vocab=vocab, merges=merges, extra_special_tokens={"image_token": "<image>"})


def save_tiny_blip(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import (
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    tok = _bert_tokenizer(folder / "_vocab")
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok)
    cfg = BlipConfig(
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32,
                           patch_size=8, initializer_range=0.5),
        text_config=dict(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                         encoder_hidden_size=16, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
                         sep_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id, initializer_range=0.5),
        projection_dim=16, initializer_range=0.5)
    torch.manual_seed(seed)
    BlipForConditionalGeneration(cfg).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def save_tiny_florence2(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import (
        CLIPImageProcessor,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
    )

    tok = _bart_tokenizer(folder / "_vocab")
    image_processor = CLIPImageProcessor(size={"height": 32, "width": 32}, do_center_crop=False)
    image_processor.image_seq_length = 17  # (32 / 4 / 2)^2 patches + 1 pooled token
    processor = Florence2Processor(image_processor=image_processor, tokenizer=tok)
    cfg = Florence2Config(
        vision_config=dict(depths=[1, 1], patch_size=[7, 3], patch_stride=[4, 2], patch_padding=[3, 1],
                           patch_prenorm=[False, True], embed_dim=[16, 32], num_heads=[2, 2], num_groups=[2, 2],
                           window_size=2, projection_dim=16, max_position_embeddings=8, initializer_range=0.5),
        text_config=dict(vocab_size=len(tok), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                         decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64,
                         bos_token_id=0, pad_token_id=1, eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=2, init_std=0.5),
        image_token_id=tok.image_token_id)
    torch.manual_seed(seed)
    Florence2ForConditionalGeneration(cfg).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def save_tiny_yolo(path: Path, labels=("person", "dog", "car")) -> Path:
    """yolo11n's architecture with random weights (2.6M parameters: small enough). One class
    bias per detection scale is raised so the random net reports objects of each label."""
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    model = YOLO("yolo11n.yaml")
    for i, branch in enumerate(model.model.model[-1].cv3):  # one scale (stride 8, 16, 32) per label
        branch[-1].bias.data[i % len(labels)] = 0.5
    model.model.names = {i: (labels[i] if i < len(labels) else f"class{i}") for i in range(len(model.model.names))}
    model.save(str(path))
    return path
