"""Throughput of each annotator in images/s, at batch sizes 1 and 16, on 512 px photos.

    python bench/annotate_throughput.py                      # CPU (CUDA instead when present)
    python bench/annotate_throughput.py --only caption-blip --batch-sizes 1 16 --seconds 30

Full-size architectures with random weights (a random net costs what a trained one
does), built from their configs because no detector or captioner weights exist offline:
- objects: YOLO11n (`yolo11n.yaml`, 640 px input);
- caption-blip: BLIP-base (`BlipConfig()`: ViT-B/16 at 384 px + BERT-base decoder);
- caption-florence2: Florence-2-base (DaViT at 768 px + 6+6-layer BART, d_model 768);
- ocr: the real EasyOCR English models (CRAFT detection at 1280 px + recognition), and
  `ocr-boxes`: recognition only, in boxes handed over by the text filter;
- fused: caption fusion (no model).
Captioners generate exactly `--new-tokens` tokens (end-of-text suppressed until then),
greedy unless `--num-beams`. Each (annotator, batch size) runs a one-image warm-up, then
batches for at least `--seconds` (at least one batch). Load time is paid once per actor.
img/s is wall-clock; "per CPU-s" divides by the process's CPU time instead (all its
threads), which stays meaningful on a machine shared with other jobs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from filter_dev.photos import CLEAN_PHOTOS, load_photo
from pipeline.bench_report import add_readme_option, cpu_model, readme_section


def _bert_tokenizer(vocab_size: int):
    from transformers import BertTokenizer

    path = os.path.join(tempfile.mkdtemp(prefix="bench-ann-"), "vocab.txt")
    with open(path, "w") as fh:
        fh.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(vocab_size - 5)]))
    return BertTokenizer(path)


def _bart_tokenizer(vocab_size: int):
    from transformers import BartTokenizer

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    vocab = {t: i for i, t in enumerate(specials + [f"w{i}" for i in range(vocab_size - len(specials) - 1)])}
    return BartTokenizer(vocab=vocab, merges=[], extra_special_tokens={"image_token": "<image>"})  # <image> = last id


def _saved(processor, model) -> str:
    """Save a random-weight model and its processor, so it loads through the captioner's own path."""
    path = tempfile.mkdtemp(prefix="bench-ann-model-")
    processor.save_pretrained(path)
    model.save_pretrained(path)
    return path


def config_blip(device, args):
    from transformers import (
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    from annotate.captioner import Captioner, CaptionerConfig

    cfg = BlipConfig()  # the blip-image-captioning-base architecture
    tok = _bert_tokenizer(cfg.text_config.vocab_size)
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 384, "width": 384}), tokenizer=tok)
    model = BlipForConditionalGeneration(cfg)
    model.generation_config.min_new_tokens = args.new_tokens
    return Captioner, CaptionerConfig(model=_saved(processor, model), max_new_tokens=args.new_tokens, num_beams=args.num_beams,
                                      device=device, batch_size=max(args.batch_sizes))


def config_florence2(device, args):
    from transformers import (
        CLIPImageProcessor,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
    )

    from annotate.captioner import Captioner, CaptionerConfig

    vocab = 51289
    tok = _bart_tokenizer(vocab)
    image_processor = CLIPImageProcessor(size={"height": 768, "width": 768}, do_center_crop=False)
    image_processor.image_seq_length = 577  # (768 / 32)^2 + 1
    processor = Florence2Processor(image_processor=image_processor, tokenizer=tok)
    cfg = Florence2Config(  # Florence-2-base: DaViT (defaults) + BART-base-sized encoder/decoder
        text_config=dict(vocab_size=vocab, d_model=768, encoder_layers=6, decoder_layers=6, encoder_attention_heads=12,
                         decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072, max_position_embeddings=1024,
                         bos_token_id=0, pad_token_id=1, eos_token_id=2, decoder_start_token_id=2),
        vision_config=dict(projection_dim=768), image_token_id=tok.image_token_id)
    model = Florence2ForConditionalGeneration(cfg)
    model.generation_config.min_new_tokens = args.new_tokens
    return Captioner, CaptionerConfig(model=_saved(processor, model), max_new_tokens=args.new_tokens, num_beams=args.num_beams,
                                      device=device, batch_size=max(args.batch_sizes))


def tiny_captioner(save, device, args):
    """--tiny: a tiny random captioner of the same family (annotate/tiny_models.py), a smoke run."""
    from annotate.captioner import Captioner, CaptionerConfig
    from annotate.tiny_models import save_tiny_blip, save_tiny_florence2

    folder = {"blip": save_tiny_blip, "florence2": save_tiny_florence2}[save](Path(tempfile.mkdtemp(prefix="bench-ann-")))
    return Captioner, CaptionerConfig(model=str(folder), max_new_tokens=args.new_tokens, num_beams=args.num_beams,
                                      device=device, batch_size=max(args.batch_sizes))


def config_yolo(device, args):
    from ultralytics import YOLO

    from annotate.detector import DetectorConfig, ObjectDetector

    path = os.path.join(tempfile.mkdtemp(prefix="bench-ann-yolo-"), "yolo11n-random.pt")
    YOLO("yolo11n.yaml").save(path)
    return ObjectDetector, DetectorConfig(weights=path, device=device, batch_size=max(args.batch_sizes))


def config_ocr(device, args):
    from annotate.ocr import OcrAnnotator, OcrConfig

    return OcrAnnotator, OcrConfig(device=device)


def config_fused(device, args):
    from annotate.fuse import CaptionFuser, FusedConfig

    return CaptionFuser, FusedConfig()


CONFIGS = {"objects": config_yolo, "caption-blip": config_blip, "caption-florence2": config_florence2,
           "ocr": config_ocr, "ocr-boxes": config_ocr, "fused": config_fused}


def make_meta(name, images):
    """Per-image meta as the pipeline hands it over; `ocr-boxes` gets the text filter's boxes."""
    ann = {"caption": {"text": "a photo of a cat sitting on a red sofa next to a window"},
           "objects": {"items": [{"label": "cat", "confidence": 0.9, "box": [0.1, 0.2, 0.4, 0.9]},
                                 {"label": "sofa", "confidence": 0.8, "box": [0.0, 0.4, 1.0, 1.0]}]},
           "ocr": {"min_confidence": 0.4, "lines": [{"text": "OPEN", "confidence": 0.9, "box": [0, 0, 0.2, 0.1]}]}}
    meta = []
    for im in images:
        m = {"caption": "my cat", "annotations": ann, "filter_outputs": {}}
        if name == "ocr-boxes":
            h, w = im.shape[:2]
            m["filter_outputs"]["text"] = {"boxes": [[w // 10, h // 10, w // 2, h // 5], [w // 3, h // 2, 9 * w // 10, 3 * h // 5]]}
        meta.append(m)
    return meta


def measure(step, name, images, batch_size, seconds):
    n = len(images)

    def batch(k):
        ims = [images[(k * batch_size + j) % n] for j in range(batch_size)]
        return ims, make_meta(name, ims)

    step.annotate(*(x[:1] for x in batch(0)))  # warm-up (one image: the slow captioners need minutes a batch here)
    done, k, t0, c0 = 0, 1, time.perf_counter(), time.process_time()
    while True:
        step.annotate(*batch(k))
        done += batch_size
        k += 1
        el = time.perf_counter() - t0
        if el >= seconds:
            return done / el, done / max(time.process_time() - c0, 1e-9)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--seconds", type=float, default=0.0, help="minimum timed seconds per cell")
    ap.add_argument("--new-tokens", type=int, default=20, help="tokens each captioner generates")
    ap.add_argument("--num-beams", type=int, default=1)
    ap.add_argument("--tiny", action="store_true", help="tiny captioners instead of the full-size ones (a smoke run)")
    ap.add_argument("--only", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    add_readme_option(ap, __file__)
    args = ap.parse_args(argv)
    with readme_section(args.readme, __file__):
        run(args)


def run(args) -> None:
    import torch

    images = [load_photo(n, 512) for n in CLEAN_PHOTOS]
    dev = "cuda" if (args.device == "auto" and torch.cuda.is_available()) else ("cpu" if args.device == "auto" else args.device)
    where = torch.cuda.get_device_name(0) if dev.startswith("cuda") else f"{cpu_model()}, {torch.get_num_threads()} torch threads"
    print(f"device: {dev} ({where}); images: {len(images)} real photos, long side 512; captioners"
          f"{' (TINY, --tiny)' if args.tiny else ''}: "
          f"{args.new_tokens} new tokens, {args.num_beams} beam(s); load average {os.getloadavg()[0]:.1f}\n")
    built = {}  # random weights saved to temporary folders, before the table (tokenizer training prints)
    for name in args.only:
        tiny = args.tiny and name.startswith("caption-")
        built[name] = tiny_captioner(name.removeprefix("caption-"), dev, args) if tiny else CONFIGS[name](dev, args)
    print("| annotator | load s | " + " | ".join(f"batch {b} img/s (per CPU-s)" for b in args.batch_sizes) + " |")
    print("|---|---|" + "---|" * len(args.batch_sizes))
    rows = {}
    for name, (cls, cfg) in built.items():
        t = time.perf_counter()
        step = cls.ready(cfg)  # loaded as a build loads them
        load = time.perf_counter() - t
        rows[name] = [measure(step, name, images, b, args.seconds) for b in args.batch_sizes]
        print(f"| {name} | {load:.1f} | " + " | ".join(f"{w:.2f} ({c:.2f})" for w, c in rows[name]) + " |", flush=True)
        del step
    print("\nmachine: " + " ".join(f"{k}@b{b}={v[0]:.3f}" for k, vs in rows.items() for b, v in zip(args.batch_sizes, vs))
          + f" device={dev} threads={torch.get_num_threads()} loadavg={os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
