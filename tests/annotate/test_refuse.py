"""`python -m annotate.refuse`: re-fuse the captions of an existing build, no model."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from PIL import Image

from annotate.fuse import FusedConfig, fuse

ROOT = Path(__file__).resolve().parents[2]
ANNOTATIONS = [
    {"caption": {"model": "blip", "text": "a dog on a lawn"},
     "objects": {"model": "yolo11n.pt", "items": [{"label": "dog", "confidence": 0.9, "box": [0.0, 0.3, 0.3, 0.7]},
                                                  {"label": "dog", "confidence": 0.8, "box": [0.05, 0.4, 0.3, 0.6]}]}},
    {"caption": {"model": "blip", "text": "a bakery"},
     "ocr": {"model": "easyocr-en", "min_confidence": 0.5, "lines": [
         {"text": "BAKERY OPEN", "confidence": 0.9, "box": [0.2, 0.1, 0.7, 0.2]},
         {"text": "zz", "confidence": 0.1, "box": [0, 0, 0.1, 0.1]}]}},
    {},
]
ALTS = ["Two puppies", "Fresh bread", "Sunset"]
KEYS = ["k0", "k1", "k2"]


def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
def build(tmp_path):
    """A build_dataset-shaped output: 2 shards, ledgers (with a rejected row), a manifest."""
    (tmp_path / "shards").mkdir()
    (tmp_path / "ledger").mkdir()
    img = jpeg()
    for shard, idx in (("00000", [0, 1]), ("00001", [2])):
        with wds.TarWriter(str(tmp_path / "shards" / f"{shard}.tar")) as sink:
            for i in idx:
                ann = dict(ANNOTATIONS[i])
                ann["fused"] = fuse(ALTS[i], ann, FusedConfig())
                sample = {"key": KEYS[i], "source": {"url": f"http://x/{i}.jpg", "caption": ALTS[i]},
                          "annotations": ann, "pipeline_version": "t"}
                sink.write({"__key__": KEYS[i], "jpg": img, "txt": ann["fused"]["text"], "json": json.dumps(sample).encode()})
        rows = [KEYS[i] for i in idx] + [f"rej{shard}"]
        pq.write_table(pa.table({"key": rows, "status": ["kept"] * len(idx) + ["rejected"],
                                 "caption_words": pa.array([99] * len(idx) + [None], pa.int32())}),
                       tmp_path / "ledger" / f"{shard}.parquet")
    (tmp_path / "manifest.json").write_text(json.dumps({"config": {"annotate": {"fused": {"enabled": True, "max_words": 50}}}}))
    return tmp_path


def read_shards(out: Path) -> dict:
    ds = wds.WebDataset(sorted(str(p) for p in (out / "shards").glob("*.tar")), shardshuffle=False)
    return {s["__key__"]: s for s in ds}


def test_refuse_rewrites_txt_json_and_ledger(build):
    before = read_shards(build)
    assert before["k0"]["txt"].decode() == "Two puppies. A dog on a lawn, with two dogs on the left"
    template = "{caption}, with {objects}, {ocr}. {alt}"
    proc = subprocess.run([sys.executable, "-m", "annotate.refuse", str(build), "--template", template],
                          cwd=ROOT, capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert "re-fused 3 samples in 2 shards" in proc.stdout
    after = read_shards(build)
    expected = {"k0": "A dog on a lawn, with two dogs on the left. Two puppies",
                "k1": 'A bakery, with the text "BAKERY OPEN". Fresh bread',
                "k2": "Sunset"}
    for key, text in expected.items():
        assert after[key]["txt"].decode() == text
        meta = json.loads(after[key]["json"])
        assert meta["annotations"]["fused"] == {"template": template, "parts": meta["annotations"]["fused"]["parts"], "text": text}
        # everything else is untouched
        old = json.loads(before[key]["json"])
        assert {k: v for k, v in meta["annotations"].items() if k != "fused"} == \
            {k: v for k, v in old["annotations"].items() if k != "fused"}
        assert meta["source"] == old["source"] and after[key]["jpg"] == before[key]["jpg"]
    ledger = pa.concat_tables([pq.read_table(p) for p in sorted((build / "ledger").glob("*.parquet"))]).to_pydict()
    assert dict(zip(ledger["key"], ledger["caption_words"])) == {"k0": 13, "k1": 9, "k2": 1, "rej00000": None, "rej00001": None}
    manifest = json.loads((build / "manifest.json").read_text())
    assert manifest["refused"][0]["fused"]["template"] == template
    assert manifest["refused"][0]["fused"]["max_words"] == 50  # the build's own setting is kept
    assert not list(build.rglob("*.tmp"))


def test_refuse_word_cap_and_bad_input(build, capsys):
    from annotate.refuse import main

    assert main([str(build), "--max-words", "2"]) == 0
    assert {k: s["txt"].decode() for k, s in read_shards(build).items()} == {"k0": "Two puppies", "k1": "Fresh bread", "k2": "Sunset"}
    assert main([str(build), "--template", "{caption} {colour}"]) == 2
    assert "annotate.fused.template: unknown placeholder {colour}" in capsys.readouterr().err
    assert main([str(build / "nowhere")]) == 2
    assert "has no shards/*.tar" in capsys.readouterr().err
