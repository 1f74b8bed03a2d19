"""Probability calibration by temperature scaling (Guo et al. 2017) and calibration metrics.

The classifier's logits ``z`` become ``softmax(z / T)``; ``T`` minimises the negative
log-likelihood of the validation labels. numpy/scipy only, so it also runs on exported logits.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of integer ``labels`` under ``softmax(logits / T)``."""
    p = softmax(logits, temperature)
    y = np.asarray(labels, dtype=int)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))))


def fit_temperature(logits: np.ndarray, labels: np.ndarray,
                    bounds: tuple = (0.05, 20.0)) -> float:
    """The temperature T in ``bounds`` minimising the validation NLL (1.0 if no data).

    When the logits classify every validation item correctly the NLL keeps falling as
    T -> 0: the data do not determine T, and sharpening would only make the probabilities
    overconfident. Then T = 1 (the network's own softmax) is returned.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=int)
    if len(labels) == 0:
        return 1.0
    if np.all(np.argmax(logits, axis=1) == labels):   # separable: T is not determined
        return 1.0
    res = minimize_scalar(lambda lt: nll(logits, labels, float(np.exp(lt))),
                          bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded",
                          options={"xatol": 1e-4})
    return float(np.exp(res.x))


def brier_score(p_positive: np.ndarray, labels: np.ndarray) -> float:
    """Mean squared error between P(positive) and the 0/1 label."""
    p = np.asarray(p_positive, dtype=float)
    y = np.asarray(labels, dtype=float)
    return float(np.mean((p - y) ** 2))


def expected_calibration_error(p_positive: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> float:
    """ECE over equal-width bins of P(positive)."""
    p = np.asarray(p_positive, dtype=float)
    y = np.asarray(labels, dtype=float)
    bins = np.clip((p * n_bins).astype(int), 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.mean() * abs(p[m].mean() - y[m].mean())
    return float(ece)
