"""Patient-level train/validation splits (the paper's 8:2 split, repeated ten times).

Both pedicles of one patient always fall on the same side of a split: splitting works on the
sorted unique patient ids, and items are mapped to a split through their patient id.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np


def patient_splits(patient_ids: Sequence[str], n_repeats: int = 10, val_fraction: float = 0.2,
                   seed: int = 0) -> List[Tuple[List[str], List[str]]]:
    """``n_repeats`` random (train_patients, val_patients) splits of the unique patient ids.

    Each repeat draws its own permutation from ``numpy.random.default_rng([seed, repeat])``,
    so repeat k is the same whatever ``n_repeats`` is. At least one patient goes to each side.
    """
    unique = sorted({str(p) for p in patient_ids})
    if len(unique) < 2:
        raise ValueError("a patient-level split needs at least two patients")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError("val_fraction must lie strictly between 0 and 1")
    n_val = int(round(val_fraction * len(unique)))
    n_val = min(max(n_val, 1), len(unique) - 1)
    out = []
    for r in range(int(n_repeats)):
        rng = np.random.default_rng([int(seed), r])
        order = rng.permutation(len(unique))
        val = sorted(unique[i] for i in order[:n_val])
        train = sorted(unique[i] for i in order[n_val:])
        out.append((train, val))
    return out


def split_indices(item_patient_ids: Sequence[str], split: Tuple[Sequence[str], Sequence[str]]
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """Item indices (train, val) for one patient split; every item keeps its patient's side."""
    train_set, val_set = set(map(str, split[0])), set(map(str, split[1]))
    ids = [str(p) for p in item_patient_ids]
    unknown = [p for p in ids if p not in train_set and p not in val_set]
    if unknown:
        raise ValueError(f"items of patients outside the split: {sorted(set(unknown))[:5]}")
    tr = np.array([i for i, p in enumerate(ids) if p in train_set], dtype=int)
    va = np.array([i for i, p in enumerate(ids) if p in val_set], dtype=int)
    return tr, va
