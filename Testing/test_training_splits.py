"""Patient-level splits and temperature scaling (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest
from c2net.training.calibrate import brier_score, fit_temperature, nll, softmax
from c2net.training.splits import patient_splits, split_indices


def test_splits_are_patient_level_8_2_and_repeatable():
    pids = [f"p{i:03d}" for i in range(50)]
    items = [p for p in pids for _side in ("left", "right")]
    splits = patient_splits(items, n_repeats=10, val_fraction=0.2, seed=3)
    assert len(splits) == 10
    seen_val = set()
    for train, val in splits:
        assert len(val) == 10 and len(train) == 40
        assert not set(train) & set(val)
        tr, va = split_indices(items, (train, val))
        assert len(tr) + len(va) == len(items)
        for idx_set, pset in ((tr, set(train)), (va, set(val))):
            # both sides of every patient land on the same side of the split
            got = [items[i] for i in idx_set]
            assert all(got.count(p) == 2 for p in pset)
        seen_val |= set(val)
    assert len({tuple(v) for _, v in splits}) == 10        # repeats differ
    assert len(seen_val) > 30
    assert patient_splits(items, 10, 0.2, 3) == splits      # seeded
    assert patient_splits(items, 3, 0.2, 3) == splits[:3]   # repeat k independent of count
    assert patient_splits(items, 1, 0.2, 4)[0] != splits[0]


def test_split_errors():
    with pytest.raises(ValueError):
        patient_splits(["a", "a"], 1)
    with pytest.raises(ValueError):
        split_indices(["a", "b", "c"], (["a"], ["b"]))


def test_temperature_scaling_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2.0, size=(4000, 2))
    p = softmax(true_logits)
    y = (rng.random(4000) < p[:, 1]).astype(int)
    overconfident = true_logits * 3.0          # a network 3x too sure of itself
    t = fit_temperature(overconfident, y)
    assert t == pytest.approx(3.0, rel=0.1)
    assert nll(overconfident, y, t) < nll(overconfident, y, 1.0)
    assert brier_score(softmax(overconfident, t)[:, 1], y) < brier_score(softmax(overconfident)[:, 1], y)
    assert fit_temperature(np.zeros((0, 2)), np.zeros(0)) == 1.0


def test_separable_validation_does_not_sharpen_the_temperature():
    """Perfectly separated validation logits leave T undetermined: keep T = 1."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 80)
    logits = np.stack([-(2 * y - 1) * 3.0, (2 * y - 1) * 3.0], axis=1) + rng.normal(0, 0.1, (80, 2))
    assert fit_temperature(logits, y) == 1.0
