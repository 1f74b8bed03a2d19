"""Measurement accuracy on synthetic phantoms with exact truth (issue #3 targets).

Prints, per spacing group: MPD mean absolute error, maximum error, bias, axis direction error,
isthmus centre error, the share of errors inside the reported uncertainty, and the verdict
agreement for phantoms whose true MPD is more than 0.5 mm from the 4.78 mm cutoff.

    python benchmarks/bench_measure.py [--cases 20] [--seed 1000]

Uses the phantom truth pedicle labels as masks (measurement only, no segmentation network).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from c2net.measure import measure_both
from c2net.phantom import make_phantom
from c2net.verdict import mpd_verdict

GROUPS = {
    "fine (<=0.6 mm)": lambda rng: (float(rng.uniform(0.3, 0.6)),) * 2 + (float(rng.uniform(0.3, 0.6)),),
    "1 mm isotropic": lambda rng: (1.0, 1.0, 1.0),
    "1 x 1 x 2 mm": lambda rng: (1.0, 1.0, 2.0),
}
CUTOFF = 4.78


def angle_deg(a, b) -> float:
    return float(np.degrees(np.arccos(min(1.0, abs(float(np.dot(a, b)))))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=20, help="phantoms per spacing group (2 sides each)")
    ap.add_argument("--seed", type=int, default=1000)
    args = ap.parse_args()
    print(f"{'group':<18}{'n':>4}{'MAE':>7}{'max':>7}{'bias':>7}{'axis°':>7}{'ctr mm':>8}"
          f"{'in unc':>8}{'verdict':>9}{'s/side':>8}")
    for g, (name, spacing_fn) in enumerate(GROUPS.items()):
        rng = np.random.default_rng(args.seed + g)
        errs, axes, ctrs, covered, agree, n_far, secs = [], [], [], [], 0, 0, []
        truths = []
        for i in range(args.cases):
            seed = args.seed + 100 * g + i
            ph = make_phantom(seed=seed, spacing_mm=spacing_fn(rng), fov="c2_crop",
                              direction="random" if i % 3 == 0 else None)
            lab = ph.truth["labels"]
            t0 = time.perf_counter()
            res = measure_both(ph.ct, ph.labels, lab["pedicle_left"], lab["pedicle_right"])
            secs.append((time.perf_counter() - t0) / 2)
            for side in ("left", "right"):
                t, m = ph.truth["sides"][side], res[side]
                e = m.mpd_mm - t["mpd_mm"]
                errs.append(e)
                truths.append(float(t["mpd_mm"]))
                axes.append(angle_deg(m.axis_lps, t["axis_lps"]))
                ctrs.append(float(np.linalg.norm(np.subtract(m.isthmus_center_lps_mm, t["isthmus_center_lps_mm"]))))
                covered.append(abs(e) <= m.mpd_uncertainty_mm)
                if abs(t["mpd_mm"] - CUTOFF) > 0.5:
                    n_far += 1
                    v = mpd_verdict(m.mpd_mm, m.mpd_uncertainty_mm, CUTOFF)
                    truth_v = mpd_verdict(t["mpd_mm"], 0.0, CUTOFF)
                    agree += v == truth_v
        e = np.abs(errs)
        print(f"{name:<18}{len(errs):>4}{e.mean():>7.3f}{e.max():>7.3f}{np.mean(errs):>+7.3f}"
              f"{np.max(axes):>7.2f}{np.max(ctrs):>8.2f}{np.mean(covered):>8.0%}"
              f"{(agree / max(n_far, 1)):>9.0%}{np.median(secs):>8.2f}"
              f"   worst: true MPD {truths[int(np.argmax(e))]:.2f} mm")
    print("MAE/max/bias: MPD error (mm); axis: max axis error (deg); ctr: max isthmus centre error (mm);")
    print("in unc: share of |error| <= reported uncertainty; verdict: agreement when |true MPD - 4.78| > 0.5 mm.")


if __name__ == "__main__":
    main()
