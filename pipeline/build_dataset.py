"""Build a WebDataset from a workflow: sources -> img2dataset on Ray -> filters ->
shards + ledger + manifest.

    build-dataset --config workflows/demo.yaml [--input FILE] [--output DIR] [--resume]
    python pipeline/build_dataset.py ...    (the same; what `ray job submit` runs)

Runs on the Ray cluster in RAY_ADDRESS (set by `ray job submit`), else on an embedded
local Ray.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# No import-path shim: `pip install -e .` makes `pipeline` importable, and `ray job submit --working-dir .` puts the uploaded folder on the job's PYTHONPATH.
from pipeline.config import ConfigError, UrlListSource, WebDatasetSource, load_workflow
from pipeline.runner import OutputError, run_build
from pipeline.sources import SourceError
from pipeline.step_guard import BrokenStepError
from pipeline.writer import OutputFullError


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="workflow YAML, e.g. workflows/demo.yaml")
    p.add_argument("--input", help="replaces the workflow's sources: a URL list (parquet/csv/tsv/jsonl with a 'url' column) "
                   "or WebDataset shards (a .tar path or brace pattern, e.g. 'data/{00000..00009}.tar')")
    p.add_argument("--output", help="output folder (default: the workflow's output.dir)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in the same output folder")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p.parse_args(argv)


SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")  # what tarfile reads as a stream


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_workflow(args.config)
        if args.input:
            is_shards = args.input.lower().endswith(SHARD_SUFFIXES) or "{" in args.input
            cfg.sources = [WebDatasetSource(type="webdataset", path=args.input) if is_shards
                           else UrlListSource(type="url_list", path=args.input)]
        manifest = run_build(cfg, args.output or cfg.output.dir, resume=args.resume, show_progress=not args.no_progress)
    except (ConfigError, SourceError, OutputError, OutputFullError, BrokenStepError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    c = manifest["counts"]
    out = Path(manifest["output"])
    print(f"\ninputs {c['inputs']}: kept {c['status']['kept']}, rejected {c['status']['rejected']}, failed {c['status']['failed']}")
    for status, reasons in c["reasons"].items():
        print(f"  {status}: " + ", ".join(f"{r} {n}" for r, n in reasons.items()))
    print(f"shards:   {out / 'shards'} ({len(manifest['shards'])} files)")
    print(f"ledger:   {out / 'ledger'}")
    print(f"manifest: {out / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
