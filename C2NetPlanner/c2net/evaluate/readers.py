"""Paired comparisons of binary calls and inter-rater agreement.

* Exact McNemar test (``statsmodels.stats.contingency_tables.mcnemar(exact=True)``: a binomial
  test on the discordant pairs) for paired accuracy (all cases), sensitivity (high-risk cases
  only) and specificity (low-risk cases only).
* Cohen's kappa (``sklearn.metrics.cohen_kappa_score``) for every pair of raters and Fleiss'
  kappa (``statsmodels.stats.inter_rater.fleiss_kappa``) across all readers.
"""

from __future__ import annotations

import warnings
from itertools import combinations
from typing import Dict, List, Mapping, Optional

import numpy as np
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from .metrics import as_binary


def mcnemar_exact(correct_a, correct_b) -> Dict[str, object]:
    """Exact McNemar test of paired proportions (booleans: a/b was right on each case).

    ``b`` = a right and b wrong, ``c`` = a wrong and b right; p = two-sided binomial test of
    b vs c with probability 1/2 (1.0 when there are no discordant pairs).
    """
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError("paired vectors differ in length")
    table = [[int(np.sum(a & b)), int(np.sum(a & ~b))], [int(np.sum(~a & b)), int(np.sum(~a & ~b))]]
    n_disc = table[0][1] + table[1][0]
    p = 1.0 if n_disc == 0 else float(mcnemar(table, exact=True).pvalue)
    return {"table": table, "a_only": table[0][1], "b_only": table[1][0], "n": int(a.size),
            "p_value": min(p, 1.0), "test": "exact McNemar (binomial)"}


def paired_binary_tests(y_true, calls_a, calls_b) -> Dict[str, Dict[str, object]]:
    """Exact McNemar tests of accuracy, sensitivity and specificity of two raters' calls."""
    y = as_binary(y_true, "y_true")
    a = as_binary(calls_a, "calls_a")
    b = as_binary(calls_b, "calls_b")
    out = {"accuracy": mcnemar_exact(a == y, b == y)}
    pos, neg = y == 1, y == 0
    out["sensitivity"] = mcnemar_exact(a[pos] == 1, b[pos] == 1)
    out["specificity"] = mcnemar_exact(a[neg] == 0, b[neg] == 0)
    return out


def cohen_kappa(calls_a, calls_b) -> Optional[float]:
    """Cohen's kappa of two binary raters; None when undefined (both raters constant)."""
    a = as_binary(calls_a, "calls_a")
    b = as_binary(calls_b, "calls_b")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(cohen_kappa_score(a, b, labels=[0, 1]))
    return value if np.isfinite(value) else None


def pairwise_kappa(calls: Mapping[str, np.ndarray]) -> List[Dict[str, object]]:
    """Cohen's kappa and raw agreement for every pair of named raters."""
    out = []
    for name_a, name_b in combinations(list(calls), 2):
        a, b = np.asarray(calls[name_a]), np.asarray(calls[name_b])
        out.append({"a": name_a, "b": name_b, "cohen_kappa": cohen_kappa(a, b),
                    "percent_agreement": float(np.mean(a == b))})
    return out


def fleiss(calls: Mapping[str, np.ndarray]) -> Optional[float]:
    """Fleiss' kappa across >= 2 raters (subjects x raters); None when undefined."""
    if len(calls) < 2:
        return None
    data = np.column_stack([as_binary(v, name) for name, v in calls.items()])
    table, _ = aggregate_raters(data, n_cat=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(fleiss_kappa(table, method="fleiss"))
    return value if np.isfinite(value) else None
