"""Re-fuse the captions of a finished build, without running any model.

    python -m annotate.refuse OUTPUT [--template "{caption}, with {objects}. {alt}"]
        [--parts caption objects ocr alt] [--max-words 60] [--tokenizer PATH --max-tokens 77]

For every sample of OUTPUT/shards/*.tar: fuse a new caption from its alt text
(`json.source.caption`) and its stored annotations, and rewrite `txt` and
`json.annotations.fused`; every other member is copied byte for byte. Then the
`caption_words` column of OUTPUT/ledger/*.parquet. Each file is written to a temporary
name and renamed over the old one, so a killed run leaves every file whole (old or new).

Settings not given on the command line come from the build's own `annotate.fused`
section (manifest.json), else the defaults.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from annotate.figures import ledger_figures
from annotate.fuse import PARTS, FusedConfig, fuse
from pipeline.output_layout import LEDGER_DIR, MANIFEST_FILE, SHARD_DIR, atomic_write, atomic_write_bytes
from pipeline.shard_reader import member_key_ext
from pipeline.shard_rewrite import read_members, write_members


def refuse_shard(path: Path, cfg: FusedConfig) -> dict[str, int]:
    """Rewrite one shard's txt + json.annotations.fused; -> {key: caption_words}."""
    members = read_members(path)
    by_key: dict[str, dict[str, int]] = {}
    for i, (m, _) in enumerate(members):
        split = member_key_ext(m.name) if m.isfile() else None
        if split:
            by_key.setdefault(split[0], {})[split[1]] = i
    data = [d for _, d in members]
    words: dict[str, int] = {}
    for key, exts in by_key.items():
        if "json" not in exts:
            raise ValueError(f"{path}: sample {key} has no json member; is this a build_dataset shard?")
        sample = json.loads(data[exts["json"]])
        annotations = sample.setdefault("annotations", {})
        annotations["fused"] = fuse((sample.get("source") or {}).get("caption"), annotations, cfg)
        data[exts["json"]] = json.dumps(sample).encode("utf-8")
        if "txt" in exts:
            data[exts["txt"]] = annotations["fused"]["text"].encode("utf-8")
        words[key.rsplit("/", 1)[-1]] = ledger_figures(annotations)["caption_words"]

    write_members(path, [(m, d) for (m, _), d in zip(members, data)])
    return words


def refuse_ledger(path: Path, caption_words: dict[str, int]) -> int:
    """Set `caption_words` for the ledger rows whose key was re-fused; -> rows changed."""
    table = pq.read_table(path)
    keys = table.column("key").to_pylist()
    if "caption_words" in table.column_names:
        old = table.column("caption_words").to_pylist()
        kind = table.schema.field("caption_words").type
    else:
        old, kind = [None] * len(keys), pa.int32()
    new = [caption_words.get(k, o) for k, o in zip(keys, old)]
    changed = sum(k in caption_words for k in keys)
    column = pa.array(new, type=kind)
    if "caption_words" in table.column_names:
        table = table.set_column(table.column_names.index("caption_words"), "caption_words", column)
    else:
        table = table.append_column("caption_words", column)
    with atomic_write(path) as fh:
        pq.write_table(table, fh)
    return changed


def build_config(out_dir: Path, overrides: dict) -> FusedConfig:
    manifest = out_dir / MANIFEST_FILE
    base = {}
    if manifest.is_file():
        base = ((json.loads(manifest.read_text()).get("config") or {}).get("annotate") or {}).get("fused") or {}
    return FusedConfig.model_validate({**base, **{k: v for k, v in overrides.items() if v is not None}})


def refuse(out_dir: str | Path, cfg: FusedConfig) -> dict:
    out_dir = Path(out_dir)
    shards = sorted((out_dir / SHARD_DIR).glob("*.tar"))
    if not shards:
        raise FileNotFoundError(f"{out_dir} has no {SHARD_DIR}/*.tar; give a build_dataset output folder")
    caption_words: dict[str, int] = {}
    for shard in shards:
        caption_words.update(refuse_shard(shard, cfg))
    rows = sum(refuse_ledger(p, caption_words) for p in sorted((out_dir / LEDGER_DIR).glob("*.parquet")))
    manifest = out_dir / MANIFEST_FILE
    if manifest.is_file():  # provenance: the captions no longer come from the build's own config
        m = json.loads(manifest.read_text())
        m.setdefault("refused", []).append({"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                            "fused": cfg.model_dump(mode="json")})
        atomic_write_bytes(manifest, json.dumps(m, indent=2).encode("utf-8"))
    return {"shards": len(shards), "samples": len(caption_words), "ledger_rows": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m annotate.refuse", description=__doc__.split("\n\n")[0])
    p.add_argument("output", help="a build_dataset output folder (shards/, ledger/)")
    p.add_argument("--template", help="format string with {alt} {caption} {objects} {ocr}")
    p.add_argument("--parts", nargs="+", choices=PARTS, help="parts to use, in order")
    p.add_argument("--max-words", type=int)
    p.add_argument("--tokenizer", help="tokenizer (path or hub id) for --max-tokens")
    p.add_argument("--max-tokens", type=int)
    a = p.parse_args(argv)
    try:
        cfg = build_config(Path(a.output), {"template": a.template, "parts": a.parts, "max_words": a.max_words,
                                            "tokenizer": a.tokenizer, "max_tokens": a.max_tokens})
        from annotate.fuse import CaptionFuser

        CaptionFuser.ready(cfg)  # a bad template or tokenizer fails before any file is touched
        done = refuse(a.output, cfg)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"annotate.refuse: {err}", file=sys.stderr)
        return 2
    print(f"re-fused {done['samples']} samples in {done['shards']} shards; caption_words updated in {done['ledger_rows']} ledger rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
