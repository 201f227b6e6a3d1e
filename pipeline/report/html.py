"""`--html FILE`: the report as ONE self-contained HTML file: images and plots are inline
base64, styles inline, no script and no network, so it opens from a mail attachment.

Sections (each always present, saying "none" when empty): counts, filters (statistics
and a histogram per score with its threshold), near-threshold images per filter,
duplicates (removed copy and kept sample side by side), captions, failures, steps.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from pipeline.report.duplicates import duplicate_images, duplicate_pairs
from pipeline.report.images import caption_samples, near_threshold
from pipeline.report.load import BuildOutput
from pipeline.report.plots import histogram_png
from pipeline.report.rules import FilterRule

SECTIONS = ("counts", "filters", "near-threshold", "duplicates", "captions", "failures", "steps")

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px} h2{border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0;font-size:13px} td,th{border:1px solid #ddd;padding:3px 8px;vertical-align:top}
th{background:#f3f3f3} td.n{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:flex;flex-wrap:wrap;gap:8px;margin:6px 0 16px} figure{margin:0;width:170px;font-size:11px}
figure img{max-width:160px;max-height:160px;display:block;border:3px solid #4c9a2a}
figure.rej img{border-color:#c0392b} figcaption{word-break:break-all}
.plots{display:flex;flex-wrap:wrap;gap:12px} .muted{color:#777} .warn{color:#a60}
"""


def _img(data: bytes, mime: str, alt: str, cls: str = "") -> str:
    return f'<img{cls} alt="{escape(alt)}" src="data:{mime};base64,{base64.b64encode(data).decode()}">'


def _table(headers: list[str], rows: list[list], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td{" class=n" if i in numeric else ""}>{c}</td>' for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _n(x, fmt="{:.4g}") -> str:
    return "-" if x is None else fmt.format(x)


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{escape(title)}</h2>{body}</section>'


def _counts(s: dict) -> str:
    n = s["inputs"] or 1
    rows = [[escape(st if not rs else ""), escape(rs), k, f"{k / n:.1%}"] for st, rs, k in s["counts"]]
    return _table(["status", "reason", "count", "share"], rows, {2, 3})


def _filters(s: dict, build: BuildOutput, rules: list[FilterRule]) -> str:
    rows = []
    for f in s["filters"]:
        for i, c in enumerate(f["columns"]):
            q = c["quantiles"]
            head = [escape(f["name"]), f["scored"], f["passed"], _n(f["pass_rate"], "{:.1%}"), f["rejected_first"]] if i == 0 else [""] * 5
            thr = f"{escape(c['field'] or '')}={_n(c['threshold'])}" if c["threshold"] is not None else "-"
            rows.append(head + [escape(c["column"]), thr] + [_n(q.get(p)) for p in (1, 10, 50, 90, 99)])
    table = _table(["filter", "scored", "passed", "pass rate", "rejected first", "score", "threshold", "p1", "p10", "p50", "p90", "p99"],
                   rows, {1, 2, 3, 4, 6, 7, 8, 9, 10, 11})
    plots = []
    for rule in rules:
        for col in rule.columns:
            png = histogram_png(build.ledger, rule, col)
            if png:
                plots.append(f"<div>{_img(png, 'image/png', f'histogram of {col}', ' class=plot')}</div>")
    note = "" if s["score_all"] else ('<p class="muted">score_all was off: a filter scored only the samples that reached it; '
                                      "histograms and pass rates cover those.</p>")
    return table + note + f'<div class="plots">{"".join(plots) or "<p>no scores</p>"}</div>'


def _figure(im: dict, rejected: bool) -> str:
    cap = f"{im['score']:.4g} {escape(im.get('detail') or '')}<br><span class=muted>{escape(str(im.get('source') or im['key']))}</span>"
    return f'<figure class="{"rej" if rejected else "kept"}">{_img(im["jpg"], "image/jpeg", im["key"])}<figcaption>{cap}</figcaption></figure>'


def _near(grids: list[dict]) -> str:
    parts = []
    for g in grids:
        parts.append(f"<h3>{escape(g['filter'])}: {escape(g['column'])}, threshold {g['threshold']:g}</h3>")
        rej = "".join(_figure(im, True) for im in g["rejected"])
        kept = "".join(_figure(im, False) for im in g["kept"])
        parts.append(f"<p>rejected nearest the threshold ({len(g['rejected'])} shown of {g['rejected_total']} rejected; "
                     "thumbnails from rejects/)</p>" + (f'<div class="grid">{rej}</div>' if rej else "<p class=muted>none</p>"))
        parts.append("<p>kept nearest the threshold</p>" + (f'<div class="grid">{kept}</div>' if kept else "<p class=muted>none</p>"))
    return "".join(parts) or "<p>no filter with a threshold ran</p>"


def _duplicates(d: dict | None, pairs: list[dict]) -> str:
    from pipeline.report.duplicates import kind_label

    if d is None:
        return "<p>the duplicate pass did not run (dedup.enabled: false) or has not finished</p>"
    head = (f"<p>{d['removed']} copies removed: {d['exact']} exact, {d['near']} near, {d.get('semantic', 0)} semantic "
            "(most distant copies first)</p>")

    def cell(jpg, label, cls):
        pic = _img(jpg, "image/jpeg", label) if jpg else "<span class=muted>no thumbnail</span>"
        return f'<figure class="{cls}">{pic}<figcaption>{escape(str(label))}</figcaption></figure>'

    rows = [[cell(p["removed_jpg"], p["source"] or p["key"], "rej"), cell(p["kept_jpg"], p["kept_source"] or p["kept_key"], "kept"),
             escape(kind_label(p)), p["distance"]] for p in pairs]
    return head + (_table(["removed copy", "kept", "kind", "bits apart"], rows, {3}) if rows else "<p>no duplicates</p>")


def _captions(samples: list[dict], ann: dict) -> str:
    if not samples:
        return "<p>no kept samples</p>"
    cols = ["image", "training caption (txt)", "alt text"]
    extra = [(k, label) for k, label in (("caption", "model caption"), ("objects", "objects"), ("ocr", "OCR"),
                                          ("fused_parts", "fused from")) if any(s[k] for s in samples)]
    rows = []
    for s in samples:
        thumb = _img(s["jpg"], "image/jpeg", s["key"])
        rows.append([thumb, escape(s["txt"]), escape(s["alt"])] + [escape(s[k]) for k, _ in extra])
    stats = ""
    if ann:
        stats = _table(["what", "n", "mean", "min", "p10", "p50", "p90", "max"],
                       [[escape(k), d["n"], f"{d['mean']:.1f}"] + [_n(d[x], "{:.0f}") for x in ("min", "p10", "p50", "p90", "max")]
                        for k, d in ann.items()], {1, 2, 3, 4, 5, 6, 7})
    note = "" if extra else '<p class="muted">no annotations in these samples (annotators off): the caption is the alt text</p>'
    return stats + note + _table(cols + [label for _, label in extra], rows)


def _failures(s: dict) -> str:
    if not s["failures"]:
        return "<p>no failures</p>"
    rows = [[escape(f["reason"]), f["count"], "<br>".join(escape(str(u)) for u in f["sources"]), escape((f["detail"] or "")[:300])]
            for f in s["failures"]]
    return _table(["reason", "count", "example sources", "error (first)"], rows, {1})


def _steps(s: dict) -> str:
    if not s["steps"]:
        return f"<p>{escape(s['steps_source'])}</p>"
    rows = [[escape(r["step"]), _n(r.get("busy_s"), "{:.2f}"), _n(r.get("idle_s"), "{:.2f}"), _n(r.get("images"), "{}"),
             _n(r.get("images_per_s"), "{:.1f}")] for r in s["steps"]]
    return f"<p class=muted>{escape(s['steps_source'])}</p>" + _table(["step", "busy s", "idle s", "images", "images/s"], rows, {1, 2, 3, 4})


def render_html(build: BuildOutput, summary: dict, rules: list[FilterRule]) -> str:
    grids = near_threshold(build.path, build.ledger, rules)
    samples = caption_samples(build.path, build.ledger)
    dup_images = duplicate_images(build.path, build.ledger, duplicate_pairs(build.path, build.ledger))
    warn = "".join(f"<p class=warn>warning: {escape(w)}</p>" for w in summary["warnings"])
    body = [
        f"<h1>filter-report: {escape(summary['path'])}</h1>",
        f"<p>{summary['inputs']} inputs, {summary['shards']} shards; {escape(summary['state'])}</p>{warn}",
        _section("counts", "Counts per status and reason", _counts(summary)),
        _section("filters", "Filters: scores and thresholds", _filters(summary, build, rules)),
        _section("near-threshold", "Images nearest each threshold", _near(grids)),
        _section("duplicates", "Duplicates: removed copy and the sample kept", _duplicates(summary.get("duplicates"), dup_images)),
        _section("captions", "Captions", _captions(samples, summary["annotations"])),
        _section("failures", "Failures", _failures(summary)),
        _section("steps", "Steps: time and throughput", _steps(summary)),
    ]
    return ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>filter-report</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>")


def write_html(build: BuildOutput, summary: dict, rules: list[FilterRule], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(build, summary, rules), encoding="utf-8")
    return path
