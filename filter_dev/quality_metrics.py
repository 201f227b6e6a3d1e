"""The one place a filter's quality figures are computed (the watermark trainer's
evaluation and bench/filter_quality.py both use it)."""

from __future__ import annotations

import numpy as np


def binary_metrics(y, score, rejected) -> dict:
    """y: 1 where the filter should reject; score: higher = more likely rejected (for the
    ROC-AUC, threshold-free); rejected: the filter's decisions. AUC is nan when y holds
    one class only."""
    from sklearn.metrics import roc_auc_score

    y, rejected = np.asarray(y).astype(int), np.asarray(rejected, bool)
    tp, fp = int((rejected & (y == 1)).sum()), int((rejected & (y == 0)).sum())
    fn = int((~rejected & (y == 1)).sum())
    auc = float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else float("nan")
    return {"auc": auc, "precision": tp / max(1, tp + fp), "recall": tp / max(1, tp + fn),
            "pos": int(y.sum()), "neg": int((y == 0).sum()), "false_positive_rate": fp / max(1, int((y == 0).sum()))}
