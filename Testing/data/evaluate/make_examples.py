"""Regenerate the small synthetic example CSVs of ``c2net evaluate`` (not real patients).

Run: python Testing/data/evaluate/make_examples.py  (deterministic, seed 7)

A cohort of 40 patients (80 C2 pedicles) whose reference MPD follows the paper's cohort
(5.82 +/- 1.61 mm); labels are high risk when MPD < 4.78 mm. The "model" probability is a
noisy logistic function of the MPD, the automatic MPD is the reference plus 0.3 mm noise, and
two readers (junior, senior) call high risk from a noisier visual MPD estimate. The
cross-validation file holds ten 8:2 patient-level splits (test sets of 8 patients).
"""

from __future__ import annotations

import csv
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CUTOFF = 4.78


def main() -> None:
    rng = np.random.default_rng(7)
    patients = [f"P{i:03d}" for i in range(1, 41)]
    rows = []
    for pid in patients:
        base = rng.normal(5.82, 1.45)
        for side in ("left", "right"):
            mpd = float(np.clip(base + rng.normal(0, 0.6), 2.0, 10.0))
            rows.append((pid, side, round(mpd, 2)))
    truth_mpd = np.array([r[2] for r in rows])
    logit = 1.8 * (CUTOFF - truth_mpd) + rng.normal(0, 1.6, truth_mpd.size)
    p = 1 / (1 + np.exp(-logit))
    auto = truth_mpd + rng.normal(0.1, 0.3, truth_mpd.size)
    with open(os.path.join(HERE, "truth.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["patient_id", "side", "label", "mpd_mm"])
        for (pid, side, mpd) in rows:
            w.writerow([pid, side, "high_risk" if mpd < CUTOFF else "low_risk", f"{mpd:.2f}"])
    with open(os.path.join(HERE, "predictions.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["patient_id", "side", "p_high_risk", "mpd_mm"])
        for (pid, side, _), pi, a in zip(rows, p, auto):
            w.writerow([pid, side, f"{pi:.4f}", f"{a:.2f}"])
    for name, sd, exp in (("junior", 1.0, "junior (3 years)"), ("senior", 0.55, "senior (15 years)")):
        est = truth_mpd + rng.normal(0, sd, truth_mpd.size)
        with open(os.path.join(HERE, f"{name}.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["patient_id", "side", "call", "experience"])
            for (pid, side, _), e in zip(rows, est):
                w.writerow([pid, side, 1 if e < CUTOFF else 0, exp])
    ref = truth_mpd + rng.normal(0, 0.35, truth_mpd.size)
    with open(os.path.join(HERE, "mpd_reference.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["patient_id", "side", "mpd_mm"])
        for (pid, side, _), r in zip(rows, ref):
            w.writerow([pid, side, f"{r:.2f}"])
    index = {(pid, side): i for i, (pid, side, _) in enumerate(rows)}
    with open(os.path.join(HERE, "predictions_cv.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["patient_id", "side", "p_high_risk", "fold"])
        for fold in range(1, 11):
            test = rng.choice(patients, size=8, replace=False)
            shift = rng.normal(0, 0.5)
            for pid in sorted(test):
                for side in ("left", "right"):
                    i = index[(pid, side)]
                    q = 1 / (1 + np.exp(-(logit[i] + shift + rng.normal(0, 0.5))))
                    w.writerow([pid, side, f"{q:.4f}", fold])


if __name__ == "__main__":
    main()
