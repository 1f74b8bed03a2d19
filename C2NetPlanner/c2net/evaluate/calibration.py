"""Calibration of the predicted probability of high risk.

* Brier score: ``sklearn.metrics.brier_score_loss`` (mean squared error of the probability).
* Expected calibration error (ECE): ``n_bins`` equal-width bins on [0, 1] (bin i holds
  ``edges[i] <= p < edges[i+1]``, the last bin also holds p = 1);
  ECE = sum over non-empty bins of (n_bin / N) * |observed high-risk fraction - mean p|.
* Reliability table: per bin the count, mean predicted probability, observed fraction and its
  Wilson 95 % interval.
"""

from __future__ import annotations

from typing import Dict, List

import numpy as np
from sklearn.metrics import brier_score_loss

from .metrics import as_binary, proportion_ci


def bin_index(p, n_bins: int) -> np.ndarray:
    """Equal-width bin of each probability (0..n_bins-1); p exactly on an edge (e.g. 0.3 with
    10 bins) goes to the bin above it, p = 1 to the last bin."""
    scaled = np.round(np.asarray(p, dtype=float) * n_bins, 9)  # 0.3 * 10 -> 3, not 2.999..
    return np.clip(np.floor(scaled).astype(int), 0, n_bins - 1)


def reliability_table(y_true, p_high_risk, n_bins: int = 10) -> List[Dict[str, object]]:
    y = as_binary(y_true, "y_true")
    p = np.asarray(p_high_risk, dtype=float)
    idx = bin_index(p, n_bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    rows = []
    for b in range(n_bins):
        sel = idx == b
        count = int(sel.sum())
        k = int(y[sel].sum())
        lo, hi = proportion_ci(k, count, "wilson")
        rows.append({"bin": [float(edges[b]), float(edges[b + 1])], "count": count,
                     "mean_predicted": float(p[sel].mean()) if count else None,
                     "observed_fraction": (k / count) if count else None,
                     "observed_ci_wilson": [lo, hi]})
    return rows


def expected_calibration_error(y_true, p_high_risk, n_bins: int = 10) -> float:
    y = as_binary(y_true, "y_true")
    p = np.asarray(p_high_risk, dtype=float)
    idx = bin_index(p, n_bins)
    total = 0.0
    for b in np.unique(idx):
        sel = idx == b
        total += sel.sum() / y.size * abs(y[sel].mean() - p[sel].mean())
    return float(total)


def calibration(y_true, p_high_risk, n_bins: int = 10) -> Dict[str, object]:
    """Brier score, ECE and the reliability table."""
    y = as_binary(y_true, "y_true")
    p = np.asarray(p_high_risk, dtype=float)
    return {
        "brier": float(brier_score_loss(y, p)),
        "brier_reference_prevalence": float(np.mean((y - y.mean()) ** 2)),
        "ece": expected_calibration_error(y, p, n_bins),
        "ece_bins": n_bins,
        "ece_binning": "equal-width bins on [0, 1]",
        "reliability": reliability_table(y, p, n_bins),
    }
