"""filter-report OUTPUT_DIR [--html FILE] [--what-if F=V ...] [--export FILE --status S
[--reason R,..] [--filter F,..]] [--validate [--shards PATTERN]]

Exit status: 0 done, 1 --validate found problems, 2 bad input (named in the message).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.report.load import NotABuildError, load_build

EPILOG = """examples:
  filter-report out/ds                                   what was kept, rejected and failed, and why
  filter-report out/ds --html report.html                the same as one HTML file, with images
  filter-report out/ds --what-if blur=0.3 watermark=0.7 resolution.min_side=300
  filter-report out/ds --export retry.parquet --status failed --reason timeout,http_503
  filter-report out/ds --export rejudge.parquet --status rejected --filter watermark
  filter-report out/ds --export dups.csv --duplicates     every removed copy and the key it duplicates
  filter-report out/ds --validate [--shards 'out/ds/shards/{00000..00009}.tar']
"""


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="filter-report", description="What a dataset build kept and dropped, and why.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("output_dir", help="a build_dataset output folder (holding ledger/, shards/, manifest.json)")
    p.add_argument("--html", metavar="FILE", help="also write the report as one self-contained HTML file")
    p.add_argument("--what-if", nargs="+", metavar="FILTER[.FIELD]=VALUE", default=[],
                   help="counts under other thresholds, from the stored scores (no model runs)")
    p.add_argument("--export", metavar="FILE", help="write the selected rows as a URL list (parquet/csv/tsv/jsonl) for build_dataset.py --input")
    p.add_argument("--status", choices=["kept", "rejected", "failed"], help="with --export: rows of this status")
    p.add_argument("--reason", type=_csv, default=[], help="with --export: comma-separated reasons (e.g. timeout,http_404)")
    p.add_argument("--filter", type=_csv, default=[], help="with --export: rows rejected by these filters")
    p.add_argument("--duplicates", action="store_true", help="with --export: the duplicate pairs (key, source, kept_key, "
                   "kept_source, kind, distance) instead of a URL list")
    p.add_argument("--validate", action="store_true", help="check the shards (readable, unique keys, parts, decode, schema, ledger)")
    p.add_argument("--shards", metavar="PATTERN", help="with --validate: shards to check, brace patterns allowed")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from pipeline.report.terminal import console

    con, err = console(), console(sys.stderr)
    if (args.status or args.reason or args.filter or args.duplicates) and not args.export:
        err.print("error: --status/--reason/--filter/--duplicates select rows for --export; add --export FILE")
        return 2
    if args.shards and not args.validate:
        err.print("error: --shards names the shards for --validate; add --validate")
        return 2
    try:
        build = load_build(args.output_dir)
    except NotABuildError as e:
        if not (args.validate and args.shards):
            err.print(f"error: {e}", markup=False)
            return 2
        build = None  # validating given shards without a build folder: no ledger checks
    try:
        if args.validate:
            return _validate(build, args, con)
        return _report(build, args, con, err)
    except (ValueError, FileNotFoundError) as e:
        err.print(f"error: {e}", markup=False)
        return 2


def _report(build, args, con, err) -> int:
    from pipeline.report.rules import apply_overrides, build_rules
    from pipeline.report.summary import summarize
    from pipeline.report.terminal import render_summary, render_what_if

    rules = build_rules(build.config)
    if args.what_if:
        from pipeline.report.whatif import what_if

        new_rules = apply_overrides(rules, args.what_if)  # a bad setting fails before any output
        from pipeline.report.duplicates import duplicate_pairs

        pairs = duplicate_pairs(build.path, build.ledger)
        render_what_if(what_if(build.ledger, new_rules, build.config.get("dedup"), pairs), con)
        return 0
    if args.export and args.duplicates:
        from pipeline.report.duplicates import export_duplicates

        n = export_duplicates(build.path, build.ledger, args.export)
        con.print(f"exported {n} duplicate pairs to {args.export}")
        return 0
    if args.export:
        from pipeline.report.export import export

        r = export(build.ledger, args.export, args.status, args.reason, args.filter)
        con.print(f"exported {r['rows']} rows to {r['path']} (build_dataset.py --input reads it)")
        if r["left_out_not_urls"]:
            con.print(f"left out {r['left_out_not_urls']} rows that are local files or video frames, not URLs")
        if r["note"]:
            con.print(f"note: {r['note']}")
        return 0
    summary = summarize(build, rules)
    render_summary(summary, con)
    if args.html:
        from pipeline.report.html import write_html

        path = write_html(build, summary, rules, args.html)
        con.print(f"html report: {path.resolve()}")
    return 0


def _validate(build, args, con) -> int:
    from pipeline.report.terminal import render_validation
    from pipeline.report.validate import shard_paths, validate

    out = Path(args.output_dir)
    ledger = build.ledger if build is not None else None
    if build is None:
        con.print(f"{out} is not a build output: checking the shards alone (no ledger agreement)")
    v = validate(shard_paths(out, args.shards), ledger, out if build is not None else None)
    render_validation(v, con)
    return 0 if v.ok else 1
