"""Score histograms with the threshold marked (matplotlib), as PNG bytes for inlining."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pipeline.report.rules import FilterRule


def histogram_png(ledger: pd.DataFrame, rule: FilterRule, column: str) -> bytes | None:
    """Histogram of one score over the rows the filter scored, split into the rows this
    filter passes and the rows it rejects; a dashed line at the threshold."""
    scored, keep = rule.keep_rows(ledger)
    if not scored.any() or column not in ledger.columns:
        return None
    vals = ledger[column].to_numpy(dtype=np.float64)
    finite = scored & np.isfinite(vals)
    if not finite.any():
        return None
    thr = rule.threshold(column)
    v = vals[finite]
    log = v.min() > 0 and v.max() / v.min() > 100
    lo, hi = v.min(), v.max()
    if thr is not None and (not log or thr > 0):
        lo, hi = min(lo, thr), max(hi, thr)
    if hi == lo:
        hi = lo + 1
    bins = np.geomspace(lo, hi, 31) if log else np.linspace(lo, hi, 31)
    fig, ax = plt.subplots(figsize=(5.2, 2.6), dpi=96)
    ax.hist([vals[finite & keep], vals[finite & ~keep]], bins=bins, stacked=True, color=["#4c9a2a", "#c0392b"],
            label=[f"passes {rule.name} ({int((finite & keep).sum())})", f"rejected by {rule.name} ({int((finite & ~keep).sum())})"])
    if log:
        ax.set_xscale("log")
    if thr is not None:
        ax.axvline(thr, color="black", linestyle="--", linewidth=1.5, label=f"threshold {thr:g}")
    ax.set_xlabel(column)
    ax.set_ylabel("samples")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
