"""Statistics of ``c2net.evaluate`` against hand computations and independent implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("statsmodels")

from c2net.evaluate import agreement, calibration, metrics, readers, roc  # noqa: E402
from scipy.stats import binomtest, norm  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

# --------------------------------------------------------------------------- proportions

def test_binary_metrics_hand_computed_2x2():
    # truth: 50 high risk, 50 low risk; calls: TP 40, FN 10, FP 5, TN 45
    y = np.array([1] * 50 + [0] * 50)
    pred = np.array([1] * 40 + [0] * 10 + [1] * 5 + [0] * 45)
    m = metrics.binary_metrics(y, pred)
    assert m["confusion"] == {"tp": 40, "fp": 5, "tn": 45, "fn": 10}
    assert m["accuracy"]["value"] == pytest.approx(0.85)
    assert m["sensitivity"]["value"] == pytest.approx(0.80)
    assert m["specificity"]["value"] == pytest.approx(0.90)
    assert m["ppv"]["value"] == pytest.approx(40 / 45)
    assert m["npv"]["value"] == pytest.approx(45 / 55)
    assert (m["ppv"]["successes"], m["ppv"]["trials"]) == (40, 45)


def _wilson_by_formula(k, n):
    z = norm.ppf(0.975)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("k,n", [(0, 12), (3, 12), (21, 22), (40, 45), (50, 50), (1, 1)])
def test_wilson_and_clopper_pearson_match_scipy_binomtest_and_formula(k, n):
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = metrics.proportion_ci(k, n, "wilson")
    assert (lo, hi) == pytest.approx((ci.low, ci.high), abs=1e-9)
    assert (lo, hi) == pytest.approx(_wilson_by_formula(k, n), abs=1e-9)
    exact = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert metrics.proportion_ci(k, n, "beta") == pytest.approx((exact.low, exact.high), abs=1e-9)


def test_proportion_without_trials_is_undefined_not_zero():
    assert metrics.proportion_ci(0, 0) == (None, None)
    assert metrics.proportion(0, 0)["value"] is None


def test_wilson_ci_covers_the_true_proportion_at_nominal_rate():
    rng = np.random.default_rng(123)
    p_true, n, reps = 0.8, 60, 300
    hits = 0
    for k in rng.binomial(n, p_true, reps):
        lo, hi = metrics.proportion_ci(int(k), n, "wilson")
        hits += lo <= p_true <= hi
    assert 0.92 <= hits / reps <= 0.98


def test_youden_threshold_keeps_the_first_maximum():
    y = [0, 0, 1, 1]
    s = [0.1, 0.4, 0.35, 0.8]
    out = metrics.youden_threshold(y, s)
    assert out["threshold"] == pytest.approx(0.8)
    assert out["youden_j"] == pytest.approx(0.5)
    assert (out["sensitivity"], out["specificity"]) == pytest.approx((0.5, 1.0))


def test_dichotomise_calls_high_risk_at_or_above_threshold():
    assert metrics.dichotomise([0.49, 0.5, 0.51], 0.5).tolist() == [0, 1, 1]


# --------------------------------------------------------------------------- DeLong

def _placements_brute_force(y, s):
    """DeLong 1988 structural components by explicit double loops (independent code)."""
    pos = [v for v, t in zip(s, y) if t == 1]
    neg = [v for v, t in zip(s, y) if t == 0]

    def psi(a, b):
        return 1.0 if a > b else (0.5 if a == b else 0.0)

    v10 = [sum(psi(p, q) for q in neg) / len(neg) for p in pos]
    v01 = [sum(psi(p, q) for p in pos) / len(pos) for q in neg]
    return np.array(v10), np.array(v01)


def _delong_brute_force(y, s1, s2):
    a10, a01 = _placements_brute_force(y, s1)
    b10, b01 = _placements_brute_force(y, s2)
    m, n = len(a10), len(a01)
    cov10 = np.cov(np.vstack([a10, b10]))
    cov01 = np.cov(np.vstack([a01, b01]))
    return np.array([a10.mean(), b10.mean()]), cov10 / m + cov01 / n


def test_delong_hand_example():
    # positives {1, 2}, negatives {0, 1}: AUC 3.5/4; V10 = (.75, 1), V01 = (1, .75)
    aucs, cov = roc.delong_covariance([1, 1, 0, 0], [1, 2, 0, 1])
    assert aucs[0] == pytest.approx(0.875)
    assert cov[0, 0] == pytest.approx(0.03125 / 2 + 0.03125 / 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_delong_matches_brute_force_and_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = 70
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    s1 = np.round(rng.normal(size=n) + 1.2 * y, 1)          # rounding makes ties
    s2 = np.round(0.6 * s1 + rng.normal(size=n), 0)          # heavy ties, correlated
    aucs, cov = roc.delong_covariance(y, np.vstack([s1, s2]))
    ref_aucs, ref_cov = _delong_brute_force(y, s1, s2)
    assert aucs == pytest.approx([roc_auc_score(y, s1), roc_auc_score(y, s2)], abs=1e-12)
    assert aucs == pytest.approx(ref_aucs, abs=1e-12)
    assert cov == pytest.approx(ref_cov, abs=1e-12)
    test = roc.delong_paired_test(y, s1, s2)
    z = (ref_aucs[0] - ref_aucs[1]) / math.sqrt(ref_cov[0, 0] + ref_cov[1, 1] - 2 * ref_cov[0, 1])
    assert test["z"] == pytest.approx(z, rel=1e-10)
    assert test["p_value"] == pytest.approx(2 * norm.sf(abs(z)), rel=1e-10)


def test_paired_delong_of_identical_scores_is_not_significant():
    y = [0, 0, 1, 1, 0, 1]
    s = [0.1, 0.5, 0.4, 0.9, 0.3, 0.7]
    out = roc.delong_paired_test(y, s, s)
    assert out["difference"] == 0 and out["p_value"] == 1.0


def test_delong_ci_covers_true_auc_at_nominal_rate():
    # binormal model: AUC = Phi(delta / sqrt(2))
    rng = np.random.default_rng(2024)
    delta, reps = 1.0, 300
    true_auc = norm.cdf(delta / math.sqrt(2))
    y = np.array([1] * 40 + [0] * 60)
    hits, aucs, ses = 0, [], []
    for _ in range(reps):
        s = rng.normal(size=100) + delta * y
        out = roc.auc_delong(y, s)
        lo, hi = out["ci_delong"]
        hits += lo <= true_auc <= hi
        aucs.append(out["value"])
        ses.append(out["se_delong"])
    # the Wald DeLong interval runs slightly below nominal at n = 100 (about 0.93-0.94 in
    # 3000-rep runs); 300 reps give a binomial SE of 0.013, so allow 0.90-0.98
    assert 0.90 <= hits / reps <= 0.98
    # the DeLong standard error estimates the sampling SD of the AUC
    assert np.mean(ses) == pytest.approx(np.std(aucs, ddof=1), rel=0.12)


def test_patient_bootstrap_is_seeded_and_resamples_patients():
    rng = np.random.default_rng(5)
    patients = np.repeat([f"P{i}" for i in range(30)], 2)
    y = rng.integers(0, 2, 60)
    s = rng.normal(size=60) + y
    a = roc.bootstrap_auc_ci(y, s, patients, 500, seed=3)
    b = roc.bootstrap_auc_ci(y, s, patients, 500, seed=3)
    loop = roc.bootstrap_auc_ci(y, s, patients, 500, seed=3, max_kernel=0)
    assert a == b
    assert a["ci_bootstrap"] == pytest.approx(loop["ci_bootstrap"], abs=1e-12)
    assert a["n_clusters"] == 30
    auc = roc_auc_score(y, s)
    assert a["ci_bootstrap"][0] < auc < a["ci_bootstrap"][1]


def test_mean_roc_of_identical_curves_is_that_curve():
    curve = roc.roc_points([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    mean = roc.mean_roc([curve, curve])
    assert np.allclose(mean["tpr_sd"], 0)
    assert mean["auc_of_mean"] == pytest.approx(0.75, abs=0.01)


# --------------------------------------------------------------------------- readers

def test_exact_mcnemar_on_known_table():
    # 10 pairs only a right, 2 only b right, 30 both right, 8 both wrong
    a = np.array([1] * 10 + [0] * 2 + [1] * 30 + [0] * 8, dtype=bool)
    b = np.array([0] * 10 + [1] * 2 + [1] * 30 + [0] * 8, dtype=bool)
    out = readers.mcnemar_exact(a, b)
    assert out["table"] == [[30, 10], [2, 8]]
    assert out["p_value"] == pytest.approx(2 * (1 + 12 + 66) / 4096)  # 2 * P(X <= 2), X~B(12,.5)
    assert readers.mcnemar_exact(a, a)["p_value"] == 1.0


def test_paired_tests_split_sensitivity_and_specificity():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    a = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    b = np.array([0, 0, 0, 1, 0, 0, 0, 0])
    out = readers.paired_binary_tests(y, a, b)
    assert out["sensitivity"]["a_only"] == 3 and out["sensitivity"]["n"] == 4
    assert out["specificity"]["a_only"] == 0 and out["specificity"]["p_value"] == 1.0
    assert out["accuracy"]["p_value"] == pytest.approx(0.25)


def test_cohen_and_fleiss_kappa_hand_computed():
    # agreement table [[20, 5], [10, 15]]: po 0.7, pe 0.5 -> Cohen 0.4;
    # pooled marginals .55/.45 -> pe 0.505 -> Fleiss (Scott's pi) 0.195 / 0.495
    a = np.array([1] * 20 + [1] * 5 + [0] * 10 + [0] * 15)
    b = np.array([1] * 20 + [0] * 5 + [1] * 10 + [0] * 15)
    assert readers.cohen_kappa(a, b) == pytest.approx(0.4)
    assert readers.fleiss({"a": a, "b": b}) == pytest.approx(0.195 / 0.495)
    pairs = readers.pairwise_kappa({"a": a, "b": b, "c": a})
    assert [(p["a"], p["b"]) for p in pairs] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert pairs[1]["cohen_kappa"] == pytest.approx(1.0)


# --------------------------------------------------------------------------- calibration

def test_brier_and_ece_hand_computed():
    y = [0, 1, 1, 1]
    p = [0.05, 0.15, 0.95, 0.85]
    cal = calibration.calibration(y, p, n_bins=10)
    assert cal["brier"] == pytest.approx((0.0025 + 0.7225 + 0.0025 + 0.0225) / 4)
    assert cal["ece"] == pytest.approx((0.05 + 0.85 + 0.05 + 0.15) / 4)
    assert sum(r["count"] for r in cal["reliability"]) == 4


def test_ece_bins_are_equal_width_and_closed_at_one():
    assert calibration.bin_index([0.0, 0.3, 0.2999, 0.99, 1.0], 10).tolist() == [0, 3, 2, 9, 9]
    # one bin with mean p 0.5 and observed 0.5 -> perfectly calibrated
    assert calibration.expected_calibration_error([0, 1], [0.5, 0.5], 10) == 0.0


# --------------------------------------------------------------------------- agreement

SHROUT_FLEISS_TABLE_2 = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8],
                                  [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], dtype=float)


def test_icc_2_1_on_shrout_fleiss_table():
    # Shrout & Fleiss 1979: ICC(2,1) = 0.29; psych::ICC: F 11.03 (5, 15), p 0.000135,
    # 95% CI 0.019-0.76
    out = agreement.icc_2_1(SHROUT_FLEISS_TABLE_2)
    assert out["icc"] == pytest.approx(0.290, abs=5e-4)
    assert out["f"] == pytest.approx(11.03, abs=5e-3)
    assert (out["df1"], out["df2"]) == (5, 15)
    assert out["p_value"] == pytest.approx(0.000135, abs=5e-6)
    assert out["ci"][0] == pytest.approx(0.019, abs=5e-4)
    assert out["ci"][1] == pytest.approx(0.76, abs=5e-3)


def test_icc_of_perfect_agreement_is_one():
    x = np.array([3.0, 4.5, 5.0, 6.2, 7.1])
    assert agreement.icc_2_1(np.column_stack([x, x]))["icc"] == pytest.approx(1.0)


def test_bland_altman_hand_computed():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    b = np.array([0.0, 2.0, 2.0, 5.0])
    out = agreement.bland_altman(a, b)
    sd = math.sqrt(2.75 / 3)
    assert out["bias"] == pytest.approx(0.25)
    assert out["sd_difference"] == pytest.approx(sd)
    assert out["loa_lower"] == pytest.approx(0.25 - norm.ppf(0.975) * sd)
    assert out["loa_upper"] == pytest.approx(0.25 + norm.ppf(0.975) * sd)
    from scipy.stats import t

    half = t.ppf(0.975, 3) * sd / 2
    assert out["bias_ci"] == pytest.approx([0.25 - half, 0.25 + half])
