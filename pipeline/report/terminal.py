"""The terminal report: rich tables of what the summary, what-if and validation found.

Tables use a plain box (no vertical rules), so every line stays whitespace-separated:
`kept  32  82.1%` reads well in a terminal and in a log, and greps.
"""

from __future__ import annotations

import os
import sys

from rich import box
from rich.console import Console
from rich.table import Table


def console(file=None) -> Console:
    file = file or sys.stdout
    width = None if file.isatty() else int(os.environ.get("COLUMNS", "140"))
    return Console(file=file, width=width, highlight=False, soft_wrap=True)


def _table(title: str, *columns: str, right: tuple[str, ...] = ()) -> Table:
    t = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", title_style="bold", pad_edge=False)
    for c in columns:
        t.add_column(c, justify="right" if c in right else "left", overflow="fold")
    return t


def _num(x, fmt="{:.4g}") -> str:
    return "-" if x is None else fmt.format(x)


def render_summary(s: dict, con: Console) -> None:
    n = s["inputs"]
    con.print(f"[bold]{s['path']}[/]: {n} inputs, {s['shards']} shards; {s['state']}")
    if s["score_all"]:
        con.print("score_all: true (every filter scored every sample)")
    t = _table("Counts", "status", "reason", "count", "share", right=("count", "share"))
    for status, reason, k in s["counts"]:
        t.add_row(status if not reason else "", reason, str(k), f"{k / n:.1%}" if n else "-")
    con.print(t)

    t = _table("Filters (run order)", "filter", "scored", "passed", "pass rate", "rejected (first filter to reject)",
               right=("scored", "passed", "pass rate", "rejected (first filter to reject)"))
    for f in s["filters"]:
        t.add_row(f["name"], str(f["scored"]), str(f["passed"]), _num(f["pass_rate"], "{:.1%}"), str(f["rejected_first"]))
    con.print(t)
    t = _table("Scores", "score", "threshold", "p1", "p10", "p50", "p90", "p99", right=("p1", "p10", "p50", "p90", "p99"))
    for f in s["filters"]:
        for c in f["columns"]:
            q = c["quantiles"]
            thr = f"{c['field']}={_num(c['threshold'])}" if c["threshold"] is not None else "-"
            t.add_row(c["column"], thr, *(_num(q.get(p)) for p in (1, 10, 50, 90, 99)))
    con.print(t)

    if s["failures"]:
        t = _table("Failures", "reason", "count", "example source", "error", right=("count",))
        for f in s["failures"]:
            t.add_row(f["reason"], str(f["count"]), str(f["source"]), (f["detail"] or "")[:100])
        con.print(t)

    if s["steps"]:
        t = _table(f"Steps ({s['steps_source']})", "step", "busy s", "idle s", "images", "images/s",
                   right=("busy s", "idle s", "images", "images/s"))
        for r in s["steps"]:
            t.add_row(r["step"], _num(r.get("busy_s"), "{:.2f}"), _num(r.get("idle_s"), "{:.2f}"), _num(r.get("images"), "{}"),
                      _num(r.get("images_per_s"), "{:.1f}"))
        con.print(t)
    else:
        con.print(f"Steps: {s['steps_source']}")

    if s["annotations"]:
        t = _table("Captions and annotations (kept samples)", "what", "n", "mean", "min", "p10", "p50", "p90", "max",
                   right=("n", "mean", "min", "p10", "p50", "p90", "max"))
        for label, d in s["annotations"].items():
            t.add_row(label, str(d["n"]), f"{d['mean']:.1f}", *(_num(d[k], "{:.0f}") for k in ("min", "p10", "p50", "p90", "max")))
        con.print(t)
    render_duplicates(s.get("duplicates"), con)
    for w in s["warnings"]:
        con.print(f"warning: {w}")


def render_duplicates(d: dict | None, con: Console) -> None:
    if d is None:
        return
    from pipeline.report.duplicates import kind_label

    t = _table(f"Duplicates removed: {d['removed']} ({d['exact']} exact, {d['near']} near, {d.get('semantic', 0)} semantic; "
               "most distant copies first)",
               "removed", "kept (the copy it duplicates)", "kind", "bits", right=("bits",))
    for p in d["pairs"]:
        t.add_row(str(p["source"] or p["key"]), str(p["kept_source"] or p["kept_key"]), kind_label(p), str(p["distance"]))
    con.print(t)
    if d["removed"] > len(d["pairs"]):
        con.print(f"... {d['removed'] - len(d['pairs'])} more: filter-report OUT --export dups.csv --duplicates")


def render_what_if(w: dict, con: Console) -> None:
    settings = ", ".join(f"{name}.{k}={v}" for name, d in w["thresholds"].items() for k, v in d.items() if v is not None)
    t = _table(f"What if: {settings}", "status", "reason", "now", "what-if", "change", right=("now", "what-if", "change"))
    for r in w["rows"]:
        val = str(r["low"]) if r["exact"] else f"{r['low']}..{r['high']}"
        change = f"{r['low'] - r['now']:+d}" if r["exact"] else f"{r['low'] - r['now']:+d}..{r['high'] - r['now']:+d}"
        t.add_row(r["status"] if not r["reason"] else "", r["reason"], str(r["now"]), val, change)
    con.print(t)
    if w["unknown"]:
        at = ", ".join(f"{k} {v}" for k, v in w["unknown_at"].items())
        con.print(f"{w['unknown']} samples were never scored by a filter they would now reach (first unscored filter: {at}); "
                  "the ranges above are bounds. Build with score_all: true for exact counts.")
    else:
        con.print("exact: every sample was scored by every filter it reaches")


def render_validation(v, con: Console) -> None:
    t = _table("Shards", "shard", "samples", "MB", "readable", right=("samples", "MB"))
    for r in v.shards:
        t.add_row(r.path, str(r.samples), f"{r.bytes / 1e6:.2f}", "yes" if r.readable else "NO")
    con.print(t)
    total = sum(r.samples for r in v.shards)
    con.print(f"{len(v.shards)} shards, {total} samples, {sum(r.bytes for r in v.shards) / 1e6:.2f} MB")
    if v.ok:
        con.print("validate: OK")
    else:
        con.print(f"validate: {len(v.problems)} problem(s)")
        for p in v.problems:
            con.print(f"  PROBLEM {p}", markup=False)
