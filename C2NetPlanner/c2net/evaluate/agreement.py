"""Agreement of two measurements of the same pedicles (e.g. automatic vs reader MPD, mm).

* Bland-Altman (1986, Lancet i:307-310): differences d = a - b, bias = mean(d), 95 % limits
  of agreement bias +/- 1.96 SD(d); CI of the bias bias +/- t(n-1) SD/sqrt(n); approximate CI
  of each limit +/- t(n-1) SD sqrt(3/n) (Bland & Altman 1986, section 5). Proportional bias:
  least-squares slope of d on (a + b) / 2 with its p-value.
* ICC(2,1): two-way random effects, absolute agreement, single rater (Shrout & Fleiss 1979
  case 2; McGraw & Wong 1996 ICC(A,1)) from the two-way ANOVA mean squares, with the
  F-based confidence interval using Satterthwaite's degrees of freedom.
"""

from __future__ import annotations

from typing import Dict

import numpy as np
from scipy import stats


def bland_altman(a, b, alpha: float = 0.05) -> Dict[str, object]:
    """Bias and limits of agreement of paired measurements ``a`` and ``b`` (same unit)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("paired measurements must be 1-D and of equal length")
    n = a.size
    if n < 3:
        raise ValueError("Bland-Altman needs at least 3 pairs")
    d = a - b
    mean_ab = (a + b) / 2.0
    bias = float(d.mean())
    sd = float(d.std(ddof=1))
    z = stats.norm.ppf(1 - alpha / 2)
    t = stats.t.ppf(1 - alpha / 2, n - 1)
    se_bias = sd / np.sqrt(n)
    se_loa = sd * np.sqrt(3.0 / n)
    lower, upper = bias - z * sd, bias + z * sd
    slope = stats.linregress(mean_ab, d) if np.ptp(mean_ab) > 0 else None
    return {
        "n": int(n),
        "bias": bias,
        "sd_difference": sd,
        "bias_ci": [float(bias - t * se_bias), float(bias + t * se_bias)],
        "loa_lower": float(lower),
        "loa_upper": float(upper),
        "loa_lower_ci": [float(lower - t * se_loa), float(lower + t * se_loa)],
        "loa_upper_ci": [float(upper - t * se_loa), float(upper + t * se_loa)],
        "proportional_bias_slope": None if slope is None else float(slope.slope),
        "proportional_bias_p": None if slope is None else float(slope.pvalue),
        "differences": d.tolist(),
        "means": mean_ab.tolist(),
        "definition": "difference = first - second (automatic - reference)",
    }


def icc_2_1(ratings, alpha: float = 0.05) -> Dict[str, float]:
    """ICC(2,1) with its ``1 - alpha`` CI for an (n subjects x k raters) array without gaps."""
    y = np.asarray(ratings, dtype=float)
    if y.ndim != 2 or y.shape[0] < 2 or y.shape[1] < 2:
        raise ValueError("ICC needs an array of at least 2 subjects x 2 raters")
    if not np.all(np.isfinite(y)):
        raise ValueError("ICC ratings must be finite (no missing values)")
    n, k = y.shape
    grand = y.mean()
    ss_rows = k * np.sum((y.mean(axis=1) - grand) ** 2)
    ss_cols = n * np.sum((y.mean(axis=0) - grand) ** 2)
    ss_total = np.sum((y - grand) ** 2)
    ss_err = ss_total - ss_rows - ss_cols
    msr = ss_rows / (n - 1)
    msc = ss_cols / (k - 1)
    mse = ss_err / ((n - 1) * (k - 1))
    denom = msr + (k - 1) * mse + k * (msc - mse) / n
    icc = float((msr - mse) / denom) if denom > 0 else float("nan")
    df1, df2 = n - 1, (n - 1) * (k - 1)
    f_value = msr / mse if mse > 0 else float("inf")
    p_value = float(stats.f.sf(f_value, df1, df2)) if np.isfinite(f_value) else 0.0
    out = {"icc": icc, "f": float(f_value), "df1": df1, "df2": df2, "p_value": p_value,
           "ms_rows": float(msr), "ms_cols": float(msc), "ms_error": float(mse),
           "n_subjects": n, "n_raters": k, "ci": [None, None],
           "model": "ICC(2,1): two-way random effects, absolute agreement, single rater"}
    if mse <= 0 or not np.isfinite(icc):
        return out
    fj = msc / mse
    a_term = n * (1 + (k - 1) * icc) - k * icc
    v_num = (k - 1) * (n - 1) * (k * icc * fj + a_term) ** 2
    v_den = (n - 1) * k ** 2 * icc ** 2 * fj ** 2 + a_term ** 2
    v = v_num / v_den
    f_up = stats.f.ppf(1 - alpha / 2, n - 1, v)
    f_lo = stats.f.ppf(1 - alpha / 2, v, n - 1)
    base = k * msc + (k * n - k - n) * mse
    lower = n * (msr - f_up * mse) / (f_up * base + n * msr)
    upper = n * (f_lo * msr - mse) / (base + n * f_lo * msr)
    out["ci"] = [float(lower), float(upper)]
    out["ci_df"] = float(v)
    return out
