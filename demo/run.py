"""`make demo`: build a small dataset from real photos, for real.

Serves scikit-image's photos (plus a blurred copy, a tiny thumbnail and a link to a
missing file, so every status shows up) from a loopback HTTP server, makes a short
video from them, and runs `python pipeline/build_dataset.py --config workflows/demo.yaml`
against both. Then prints where the shards, ledger and manifest are, and the counts,
and writes the filter report as one HTML file (build/demo/report.html), printing its path.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2

from demo.inputs import make_video, with_shop_sign
from demo.loopback_server import LoopbackServer
from filter_dev.photos import load_rgb, skimage_photos

ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = ROOT / "build" / "demo"  # workflows/demo.yaml reads its inputs here


def prepare_inputs(demo_dir: Path) -> list[str]:
    """Copy the photos into demo_dir/images; return the file names to list as URLs."""
    images = demo_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    names = []
    for p in skimage_photos():
        shutil.copy(p, images / p.name)
        names.append(p.name)
    astronaut = load_rgb(images / "astronaut.png")
    cv2.imwrite(str(images / "astronaut_blurred.jpg"), cv2.cvtColor(cv2.GaussianBlur(astronaut, (0, 0), 6), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(images / "coffee_thumbnail.jpg"), cv2.cvtColor(cv2.resize(load_rgb(images / "coffee.png"), (96, 64)), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(images / "coffee_shop_sign.png"), cv2.cvtColor(with_shop_sign(load_rgb(images / "coffee.png")), cv2.COLOR_RGB2BGR))
    return names + ["astronaut_blurred.jpg", "coffee_thumbnail.jpg", "coffee_shop_sign.png", "missing_photo.jpg"]


def print_captions(out: Path) -> None:
    """Which annotators ran (and which were skipped, why), and the sign photo's caption."""
    import webdataset as wds

    manifest = json.loads((out / "manifest.json").read_text())
    ran = [n for n, st in manifest["steps"].items() if n in manifest["config"]["annotate"] and st["images"]]
    print(f"annotators: ran {', '.join(ran) or 'none'}")
    for w in manifest.get("warnings", []):
        print(f"  {w.splitlines()[0][:200]}")
    for tar in sorted((out / "shards").glob("*.tar")):
        for s in wds.WebDataset(str(tar), shardshuffle=False):
            if json.loads(s["json"])["source"].get("url", "").endswith("coffee_shop_sign.png"):
                print(f"caption of coffee_shop_sign.png: {s['txt'].decode()}")


def main() -> int:
    if DEMO_DIR.exists():
        shutil.rmtree(DEMO_DIR)
    names = prepare_inputs(DEMO_DIR)
    photos = [DEMO_DIR / "images" / n for n in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png")]
    make_video(DEMO_DIR / "demo.mp4", photos, seconds_per_photo=2.0)
    with LoopbackServer(DEMO_DIR / "images") as server:
        with open(DEMO_DIR / "urls.jsonl", "w") as fh:
            for n in names:
                fh.write(json.dumps({"url": server.url(n), "caption": Path(n).stem.replace("_", " "), "license": "scikit-image data"}) + "\n")
        print(f"demo: serving {len(names)} URLs from {server.url('')} and a video {DEMO_DIR / 'demo.mp4'}", flush=True)
        cmd = [sys.executable, str(ROOT / "pipeline" / "build_dataset.py"), "--config", str(ROOT / "workflows" / "demo.yaml")]
        rc = subprocess.call(cmd, cwd=ROOT)
    if rc != 0:
        return rc
    print_captions(DEMO_DIR / "output")
    return write_report(DEMO_DIR / "output", DEMO_DIR / "report.html")


def write_report(out_dir: Path, html: Path) -> int:
    """The build's report: tables in the terminal, everything (with images) in one HTML file."""
    from pipeline.report import main as filter_report

    print(f"\nfilter-report {out_dir} --html {html}", flush=True)
    rc = filter_report([str(out_dir), "--html", str(html)])
    if rc == 0:
        print(f"\nreport: {html}  (open it in a browser; one self-contained file)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
