"""ROC analysis: AUC with DeLong variance, paired DeLong test, patient-clustered bootstrap.

DeLong, DeLong & Clarke-Pearson (1988), Biometrics 44:837-845, computed with the fast
midrank algorithm of Sun & Xu (2014), IEEE Signal Processing Letters 21:1389-1393: for m
positive (high risk) and n negative cases and K scores,

* V10 (one per positive)  = (rank among all - rank among positives) / n
* V01 (one per negative)  = 1 - (rank among all - rank among negatives) / m
* AUC_k = mean(V10_k);  Cov(AUC) = S10 / m + S01 / n, S = sample covariance (ddof 1).

Ties count one half (midranks), as in the Mann-Whitney statistic. A higher score means
higher risk. The bootstrap resamples *patients* with replacement (both sides together), so
the correlation between a patient's two pedicles is respected.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy.stats import norm, rankdata
from sklearn.metrics import roc_curve


def _split(y_true, scores) -> Tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(int)
    s = np.atleast_2d(np.asarray(scores, dtype=float))
    if s.shape[1] != y.shape[0]:
        raise ValueError("scores and labels differ in length")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    pos, neg = s[:, y == 1], s[:, y == 0]
    if pos.shape[1] == 0 or neg.shape[1] == 0:
        raise ValueError("AUC needs at least one high-risk and one low-risk case")
    return pos, neg


def delong_covariance(y_true, scores) -> Tuple[np.ndarray, np.ndarray]:
    """AUCs (K,) and their DeLong covariance matrix (K, K) for K score rows on the same cases.

    ``scores`` is (n_cases,) or (K, n_cases). Needs >= 2 cases of each class for a variance
    (otherwise the covariance is NaN).
    """
    pos, neg = _split(y_true, scores)
    m, n = pos.shape[1], neg.shape[1]
    tx = rankdata(pos, axis=1)
    ty = rankdata(neg, axis=1)
    tz = rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    aucs = (tz[:, :m].sum(axis=1) - m * (m + 1) / 2.0) / (m * n)
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    if m < 2 or n < 2:
        k = pos.shape[0]
        return aucs, np.full((k, k), np.nan)
    s10 = np.atleast_2d(np.cov(v10))
    s01 = np.atleast_2d(np.cov(v01))
    return aucs, s10 / m + s01 / n


def auc_delong(y_true, scores, alpha: float = 0.05) -> Dict[str, object]:
    """AUC, DeLong standard error and the Wald interval (clipped to 0..1, as pROC does)."""
    aucs, cov = delong_covariance(y_true, scores)
    auc, var = float(aucs[0]), float(cov[0, 0])
    se = float(np.sqrt(var)) if np.isfinite(var) else None
    if se is None:
        ci = [None, None]
    else:
        z = norm.ppf(1 - alpha / 2)
        ci = [float(max(0.0, auc - z * se)), float(min(1.0, auc + z * se))]
    return {"value": auc, "se_delong": se, "ci_delong": ci}


def delong_paired_test(y_true, scores_a, scores_b, alpha: float = 0.05) -> Dict[str, object]:
    """Two-sided DeLong test of AUC(a) = AUC(b) on the same cases (correlated ROC curves)."""
    aucs, cov = delong_covariance(y_true, np.vstack([scores_a, scores_b]))
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    out: Dict[str, object] = {"auc_a": float(aucs[0]), "auc_b": float(aucs[1]),
                              "difference": diff, "se": None, "z": None, "p_value": None,
                              "ci_difference": [None, None]}
    if not np.isfinite(var):
        return out
    var = max(var, 0.0)
    se = float(np.sqrt(var))
    out["se"] = se
    if se == 0.0:
        # identical placement values: the curves cannot differ on these cases
        out["z"] = 0.0 if diff == 0 else float(np.sign(diff) * np.inf)
        out["p_value"] = 1.0 if diff == 0 else 0.0
    else:
        z = diff / se
        out["z"] = float(z)
        out["p_value"] = float(2 * norm.sf(abs(z)))
    zc = norm.ppf(1 - alpha / 2)
    out["ci_difference"] = [diff - zc * se, diff + zc * se]
    return out


def fast_auc(y_true, scores) -> float:
    """Mann-Whitney AUC (ties count one half)."""
    y = np.asarray(y_true).astype(int)
    m = int(y.sum())
    n = y.shape[0] - m
    if m == 0 or n == 0:
        return float("nan")
    r = rankdata(np.asarray(scores, dtype=float))
    return float((r[y == 1].sum() - m * (m + 1) / 2.0) / (m * n))


def _psi(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Mann-Whitney kernel (m, n): 1 if pos > neg, 1/2 if tied, 0 otherwise."""
    diff = pos[:, None] - neg[None, :]
    return (diff > 0) + 0.5 * (diff == 0)


def bootstrap_auc_ci(y_true, scores, clusters: Sequence, n_boot: int = 2000, seed: int = 0,
                     alpha: float = 0.05, max_kernel: int = 4_000_000) -> Dict[str, object]:
    """Percentile CI of the AUC, resampling clusters (patients) with replacement.

    A resample gives every case the multiplicity of its cluster; the AUC of a resample is the
    weighted Mann-Whitney statistic sum_ij w_i w_j psi_ij / (sum_i w_i sum_j w_j), computed
    for all resamples at once from the kernel psi (falls back to a loop when the kernel would
    exceed ``max_kernel`` elements). Resamples with a single class are skipped and counted.
    """
    y = np.asarray(y_true).astype(int)
    s = np.asarray(scores, dtype=float)
    labels = np.asarray([str(c) for c in clusters])
    _, inverse = np.unique(labels, return_inverse=True)
    n_clusters = int(inverse.max()) + 1
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_clusters, (n_boot, n_clusters))
    offsets = (np.arange(n_boot) * n_clusters)[:, None]
    counts = np.bincount((draws + offsets).ravel(),
                         minlength=n_boot * n_clusters).reshape(n_boot, n_clusters)
    weights = counts[:, inverse].astype(float)           # (n_boot, n_cases)
    pos, neg = y == 1, y == 0
    w_pos, w_neg = weights[:, pos], weights[:, neg]
    denom = w_pos.sum(axis=1) * w_neg.sum(axis=1)
    if pos.sum() * neg.sum() <= max_kernel:
        psi = _psi(s[pos], s[neg])
        num = np.einsum("bi,ij,bj->b", w_pos, psi, w_neg, optimize=True)
    else:
        num = np.empty(n_boot)
        for b in range(n_boot):
            idx = np.repeat(np.arange(y.size), counts[b, inverse])
            value = fast_auc(y[idx], s[idx])
            num[b] = value * denom[b] if np.isfinite(value) else 0.0
    valid = denom > 0
    skipped = int(n_boot - valid.sum())
    if not valid.any():
        return {"ci_bootstrap": [None, None], "n_boot": n_boot, "n_skipped": skipped,
                "seed": seed, "n_clusters": n_clusters, "se_bootstrap": None}
    arr = num[valid] / denom[valid]
    lo, hi = np.quantile(arr, [alpha / 2, 1 - alpha / 2])
    return {"ci_bootstrap": [float(lo), float(hi)], "se_bootstrap": float(arr.std(ddof=1)),
            "n_boot": n_boot, "n_skipped": skipped, "seed": seed, "n_clusters": n_clusters}


def roc_points(y_true, scores) -> Dict[str, List[float]]:
    """Empirical ROC curve (false/true positive rates and thresholds) for plotting and JSON."""
    fpr, tpr, thr = roc_curve(np.asarray(y_true).astype(int), np.asarray(scores, dtype=float))
    thr = np.where(np.isfinite(thr), thr, np.nan)
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(),
            "thresholds": [None if np.isnan(t) else float(t) for t in thr]}


FPR_GRID = np.linspace(0.0, 1.0, 101)


def interpolate_roc(fpr: Sequence[float], tpr: Sequence[float],
                    grid: Optional[np.ndarray] = None) -> np.ndarray:
    """True positive rate on a common FPR grid (step curve, tpr(0) kept, tpr(1) = 1)."""
    grid = FPR_GRID if grid is None else grid
    fpr_a, tpr_a = np.asarray(fpr, dtype=float), np.asarray(tpr, dtype=float)
    out = np.interp(grid, fpr_a, tpr_a)
    out[0] = float(tpr_a[fpr_a == 0].max()) if np.any(fpr_a == 0) else 0.0
    out[-1] = 1.0
    return out


def mean_roc(curves: Sequence[Dict[str, List[float]]]) -> Dict[str, List[float]]:
    """Vertical average of ROC curves on :data:`FPR_GRID` with the SD across curves."""
    tprs = np.vstack([interpolate_roc(c["fpr"], c["tpr"]) for c in curves])
    mean = tprs.mean(axis=0)
    sd = tprs.std(axis=0, ddof=1) if len(curves) > 1 else np.zeros_like(mean)
    return {"fpr": FPR_GRID.tolist(), "tpr_mean": mean.tolist(), "tpr_sd": sd.tolist(),
            "auc_of_mean": float(np.trapezoid(mean, FPR_GRID)
                                 if hasattr(np, "trapezoid") else np.trapz(mean, FPR_GRID))}
