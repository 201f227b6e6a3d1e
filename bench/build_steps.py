"""End to end: a dataset build with every filter and every annotator, through Ray, and
the per-step busy/idle table its manifest records (which step is the bottleneck).

    python bench/build_steps.py [--n 40] [--no-caption]

Serves scikit-image's real photos (plus one with a shop sign) from a loopback server
under --n URLs. Detector and captioner are full-size architectures with random weights
(none ship offline; a random net costs what a trained one does), saved and loaded by
path exactly like a user's weights: YOLO11n (.pt) and BLIP-base (save_pretrained
folder; every caption is --new-tokens long). OCR and the filters use their real models.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import ray

from demo.inputs import with_shop_sign
from demo.loopback_server import LoopbackServer
from filter_dev.photos import load_rgb, skimage_photos
from pipeline.bench_report import add_readme_option, readme_section
from pipeline.config import parse_workflow
from pipeline.runner import run_build


def save_random_blip_base(folder: Path, new_tokens: int) -> Path:
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    cfg = BlipConfig()  # the blip-image-captioning-base architecture
    folder.mkdir(parents=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(cfg.text_config.vocab_size - 5)]
    (folder / "vocab.txt").write_text("\n".join(vocab))
    tok = BertTokenizer(str(folder / "vocab.txt"))
    model = BlipForConditionalGeneration(cfg)
    model.generation_config.min_new_tokens = new_tokens  # fixed length: random weights may stop at any step
    model.save_pretrained(folder)
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 384, "width": 384}), tokenizer=tok).save_pretrained(folder)
    return folder


def save_random_yolo11n(path: Path) -> Path:
    from ultralytics import YOLO

    YOLO("yolo11n.yaml").save(str(path))
    return path


def serve_dir(tmp: Path) -> list[str]:
    images = tmp / "www"
    images.mkdir()
    names = []
    for p in skimage_photos():
        rgb = load_rgb(p)
        if min(rgb.shape[:2]) >= 256:
            shutil.copy(p, images / p.name)
            names.append(p.name)
    coffee = load_rgb(next(p for p in skimage_photos() if p.name == "coffee.png"))
    cv2.imwrite(str(images / "shop_sign.png"), cv2.cvtColor(with_shop_sign(coffee), cv2.COLOR_RGB2BGR))
    return names + ["shop_sign.png"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=40)
    p.add_argument("--new-tokens", type=int, default=20)
    p.add_argument("--no-caption", action="store_true", help="skip the captioner (the slowest step on CPU)")
    add_readme_option(p, __file__)
    args = p.parse_args()
    with readme_section(args.readme, __file__):
        run(args)


def run(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-steps-"))
    names = serve_dir(tmp)
    annotate = {"objects": {"enabled": True, "weights": str(save_random_yolo11n(tmp / "yolo11n-random.pt"))},
                "ocr": {"enabled": True}, "fused": {"enabled": True}}
    if not args.no_caption:
        annotate["caption"] = {"enabled": True, "model": str(save_random_blip_base(tmp / "blip-base-random", args.new_tokens)),
                               "max_new_tokens": args.new_tokens}
    ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    with LoopbackServer(tmp / "www") as server:
        (tmp / "urls.jsonl").write_text("".join(
            json.dumps({"url": server.url(names[i % len(names)]) + f"?copy={i}", "caption": names[i % len(names)]}) + "\n"
            for i in range(args.n)))
        cfg = parse_workflow({
            "name": "bench-steps", "sources": [{"type": "url_list", "path": str(tmp / "urls.jsonl")}],
            "images": {"image_size": 512}, "download": {"allow_private_networks": True},  # the loopback server
            "output": {"shard_size": 16},
            "filters": {"resolution": {"min_side": 128}, "watermark": {"enabled": True}, "nsfw": {"enabled": True},
                        "text": {"enabled": True}},
            "annotate": annotate,
            "ray": {"model_batch_size": 16},
        })
        t0 = time.perf_counter()
        manifest = run_build(cfg, tmp / "out", show_progress=False)
        wall = time.perf_counter() - t0
    ray.shutdown()
    c = manifest["counts"]["status"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}, no GPU; "
          f"pool: {manifest['pool']}\n")
    print(f"build: {args.n} URLs in {wall:.1f} s = {args.n / wall:.2f} inputs/s end to end "
          f"(kept {c['kept']}, rejected {c['rejected']}, failed {c['failed']}); CPU workers waited "
          f"{manifest['pool'].get('cpu_waiting_for_models_s', 0):.1f} s on the model pool\n")
    print("| step | pool | images | busy s | idle s | images/s while busy |")
    print("|---|---|---|---|---|---|")
    for name, st in sorted(manifest["steps"].items(), key=lambda kv: -kv[1]["busy_s"]):
        print(f"| {name} | {st['pool']} | {st['images']} | {st['busy_s']:.2f} | {st['idle_s']:.2f} | {st['images_per_s'] or '-'} |")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
