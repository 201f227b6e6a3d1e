"""Real pipeline shards for the trainer tests: scikit-image photos (and one 3:1 panorama
cut from one of them) served on 127.0.0.1, downloaded and written by the pipeline itself
(img2dataset on a local Ray). Tests may import pipeline/; train/ never does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2

WIDE_NAME = "wide_astronaut.jpg"  # 3:1 (width:height)
N_PHOTOS = 12


def build_shards(root: Path, shard_size: int = 4) -> Path:
    from demo.loopback_server import LoopbackServer
    from filter_dev.photos import load_rgb, skimage_photos
    from pipeline.config import parse_workflow
    from pipeline.runner import run_build

    images = root / "images"
    images.mkdir(parents=True)
    photos = [p for p in skimage_photos() if min(cv2.imread(str(p)).shape[:2]) >= 128][:N_PHOTOS]
    for p in photos:
        shutil.copy(p, images / p.name)
    astronaut = load_rgb(next(p for p in skimage_photos() if p.name == "astronaut.png"))
    wide = cv2.resize(astronaut[:170], (510, 170))  # 3:1
    cv2.imwrite(str(images / WIDE_NAME), cv2.cvtColor(wide, cv2.COLOR_RGB2BGR))
    names = [p.name for p in photos] + [WIDE_NAME]
    with LoopbackServer(images) as server:
        urls = root / "urls.jsonl"
        urls.write_text("".join(json.dumps({"url": server.url(n), "caption": Path(n).stem.replace("_", " ")}) + "\n"
                                for n in names))
        cfg = parse_workflow({
            "name": "train-test",
            "sources": [{"type": "url_list", "path": str(urls)}],
            # the loopback server is on 127.0.0.1, which a build refuses by default
            "images": {"image_size": 256}, "download": {"timeout": 10, "thread_count": 4, "allow_private_networks": True},
            "output": {"shard_size": shard_size},
            "filters": {"resolution": {"min_side": 100, "max_aspect_ratio": 4.0}, "blur": {"enabled": False}},
            "ray": {"num_workers": 1},
            "dedup": {"enabled": False},  # scikit-image's photos hold near-copies (chessboard_GRAY/RGB, ...)
        })
        run_build(cfg, root / "out", show_progress=False)
    return root / "out" / "shards"


def corrupt_copy(shard: Path, dest: Path) -> Path:
    """`shard` with every JPEG replaced by bytes no decoder reads; the json (and its stored size)
    intact, so the samples reach a batch and fail only at decode."""
    import io
    import tarfile

    with tarfile.open(shard) as src, tarfile.open(dest, "w") as out:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name.endswith(".jpg"):
                data = b"\xff\xd8 not a jpeg" + bytes(64)
            member.size = len(data)
            out.addfile(member, io.BytesIO(data))
    return dest


if __name__ == "__main__":  # python -m tests.train.shards DIR: shards for trying the trainer by hand
    import sys

    print(build_shards(Path(sys.argv[1])))
