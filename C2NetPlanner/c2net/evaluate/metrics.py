"""Binary classification metrics with exact and score confidence intervals.

Positive class = high risk (label 1). Proportions carry two 95 % intervals: Wilson score
(``statsmodels.stats.proportion.proportion_confint(method="wilson")``) and Clopper-Pearson
exact (``method="beta"``). The Youden-optimal threshold comes from ``sklearn.metrics.roc_curve``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
from sklearn.metrics import roc_curve
from statsmodels.stats.proportion import proportion_confint

#: metric name -> (numerator, denominator) of the confusion counts
PROPORTIONS = {
    "accuracy": ("tp+tn", "n"),
    "sensitivity": ("tp", "tp+fn"),
    "specificity": ("tn", "tn+fp"),
    "ppv": ("tp", "tp+fp"),
    "npv": ("tn", "tn+fn"),
}


@dataclass(frozen=True)
class Confusion:
    """2x2 counts with high risk as the positive class."""

    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    def counts(self, metric: str) -> Tuple[int, int]:
        """(successes, trials) of a proportion in :data:`PROPORTIONS`."""
        c = {"tp": self.tp, "fp": self.fp, "tn": self.tn, "fn": self.fn, "n": self.n}
        num, den = PROPORTIONS[metric]
        return (sum(c[t] for t in num.split("+")), sum(c[t] for t in den.split("+")))

    def to_dict(self) -> Dict[str, int]:
        return {"tp": self.tp, "fp": self.fp, "tn": self.tn, "fn": self.fn}


def as_binary(values, name: str = "values") -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if not np.all(np.isin(arr, (0, 1))):
        raise ValueError(f"{name} must contain only 0 and 1")
    return arr.astype(int)


def confusion(y_true, y_pred) -> Confusion:
    """Confusion counts of binary calls ``y_pred`` against ``y_true`` (1 = high risk)."""
    t, p = as_binary(y_true, "y_true"), as_binary(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError("y_true and y_pred differ in length")
    return Confusion(tp=int(np.sum((t == 1) & (p == 1))), fp=int(np.sum((t == 0) & (p == 1))),
                     tn=int(np.sum((t == 0) & (p == 0))), fn=int(np.sum((t == 1) & (p == 0))))


def proportion_ci(successes: int, trials: int, method: str = "wilson",
                  alpha: float = 0.05) -> Tuple[Optional[float], Optional[float]]:
    """Two-sided ``1 - alpha`` interval of a binomial proportion; (None, None) when trials = 0.

    ``method``: ``"wilson"`` (score interval) or ``"beta"`` (Clopper-Pearson exact).
    """
    if trials == 0:
        return (None, None)
    lo, hi = proportion_confint(successes, trials, alpha=alpha, method=method)
    return (float(max(lo, 0.0)), float(min(hi, 1.0)))


def proportion(successes: int, trials: int, alpha: float = 0.05) -> Dict[str, object]:
    """Value, counts and both intervals of one proportion."""
    return {
        "value": (successes / trials) if trials else None,
        "successes": int(successes),
        "trials": int(trials),
        "ci_wilson": list(proportion_ci(successes, trials, "wilson", alpha)),
        "ci_clopper_pearson": list(proportion_ci(successes, trials, "beta", alpha)),
    }


def binary_metrics(y_true, y_pred, alpha: float = 0.05) -> Dict[str, object]:
    """Accuracy, sensitivity, specificity, PPV and NPV with Wilson and Clopper-Pearson CIs."""
    cm = confusion(y_true, y_pred)
    out: Dict[str, object] = {"confusion": cm.to_dict(), "n": cm.n}
    for metric in PROPORTIONS:
        out[metric] = proportion(*cm.counts(metric), alpha=alpha)
    return out


def dichotomise(p_high_risk, threshold: float = 0.5) -> np.ndarray:
    """High risk (1) when the probability is at least ``threshold``."""
    return (np.asarray(p_high_risk, dtype=float) >= threshold).astype(int)


def youden_threshold(y_true, scores) -> Dict[str, float]:
    """Threshold maximising Youden's J = sensitivity + specificity - 1 (calls: score >= t).

    Ties in J keep the first (highest) threshold from ``roc_curve``. The threshold is chosen on
    the data it is reported on, so its sensitivity/specificity are optimistic.
    """
    y = as_binary(y_true, "y_true")
    if y.min() == y.max():
        raise ValueError("Youden threshold needs both classes")
    fpr, tpr, thresholds = roc_curve(y, np.asarray(scores, dtype=float), drop_intermediate=False)
    j = tpr - fpr
    finite = np.isfinite(thresholds)
    j_masked = np.where(finite, j, -np.inf)
    i = int(np.argmax(j_masked))
    return {"threshold": float(thresholds[i]), "sensitivity": float(tpr[i]),
            "specificity": float(1.0 - fpr[i]), "youden_j": float(j[i])}
