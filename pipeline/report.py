"""`filter-report OUTPUT_DIR`: what the filters kept and dropped, and why.

Reads the ledger (one row per input) and prints counts per status and per reason.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.manifest import ledger_counts


def format_report(out_dir: Path) -> str:
    c = ledger_counts(out_dir)
    n = c["inputs"]
    lines = [f"{out_dir}: {n} inputs, {len(c['shards'])} shards", "", f"{'status':<10} {'reason':<28} {'count':>8} {'share':>7}"]
    for status in ("kept", "rejected", "failed"):
        k = c["status"][status]
        lines.append(f"{status:<10} {'':<28} {k:>8} {k / n:>7.1%}")
        for reason, m in c["reasons"].get(status, {}).items():
            lines.append(f"{'':<10} {reason:<28} {m:>8} {m / n:>7.1%}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="filter-report", description=__doc__)
    p.add_argument("output_dir", help="a build_dataset output folder (holding ledger/)")
    args = p.parse_args(argv)
    try:
        print(format_report(Path(args.output_dir)))
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
