"""Benchmark the C2 localiser: accuracy on a phantom cohort and speed on a 512x512x300 scan.

    python benchmarks/bench_locate.py [--n 200] [--first-seed 1000] [--n-cut 40]

Phantoms use random fields of view (c1_c4, c1_c7, skull_c5, full_neck, c2_edge) and random
orientations (``make_phantom(seed, fov="random")``). A case counts as correct when C2 is
complete in the field of view and the centre is within 5 mm of the truth, or when C2 is cut
and the localiser refuses. ``--n-cut`` adds phantoms whose field of view cuts C2 at the top or
the bottom (``fov="c2_cut"``, seeds from ``--first-seed + 10000``; the random cohort never
cuts C2), which must all be refused. Prints a table per field of view. Research use only - not a
medical device.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np
import SimpleITK as sitk
from c2net.errors import C2NetError
from c2net.locate import locate_c2
from c2net.phantom import make_phantom


def cohort(n: int, first_seed: int, n_cut: int = 0) -> None:
    rows = defaultdict(lambda: {"n": 0, "ok": 0, "refused": 0, "err": []})
    times = []
    cases = [(seed, "random") for seed in range(first_seed, first_seed + n)]
    cases += [(seed, "c2_cut") for seed in range(first_seed + 10000, first_seed + 10000 + n_cut)]
    for seed, fov_mode in cases:
        ph = make_phantom(seed, fov=fov_mode)
        fov = ph.truth["fov"] if isinstance(ph.truth["fov"], str) else ph.truth["fov"].get("mode")
        complete = bool(ph.truth["c2_complete_in_fov"])
        row = rows[f"{fov} ({'complete' if complete else 'cut'})"]
        row["n"] += 1
        t0 = time.perf_counter()
        try:
            loc = locate_c2(ph.ct)
            err = float(np.linalg.norm(np.asarray(loc.center_lps_mm) - ph.truth["c2_center_lps_mm"]))
            row["err"].append(err)
            row["ok"] += int(complete and err < 5.0)
        except C2NetError:
            row["refused"] += 1
            row["ok"] += int(not complete)
        times.append(time.perf_counter() - t0)
    print(f"{'field of view':28s} {'n':>4s} {'correct':>8s} {'refused':>8s} {'median err':>11s} {'p95 err':>8s}")
    total = correct = 0
    for name, r in sorted(rows.items()):
        e = np.asarray(r["err"])
        med, p95 = (np.median(e), np.percentile(e, 95)) if len(e) else (np.nan, np.nan)
        print(f"{name:28s} {r['n']:4d} {r['ok']:8d} {r['refused']:8d} {med:11.1f} {p95:8.1f}")
        total += r["n"]
        correct += r["ok"]
    print(f"{'all':28s} {total:4d} {correct:8d}   ({100.0 * correct / max(total, 1):.1f} % correct)")
    print(f"localisation time: median {np.median(times):.2f} s, max {np.max(times):.2f} s")


def speed() -> None:
    """A 512x512x300 phantom (0.45 x 0.45 x 0.6 mm): median of 3 runs."""
    ph = make_phantom(7, spacing_mm=(0.45, 0.45, 0.6), fov="c1_c7", max_voxels=80_000_000)
    ct = ph.ct
    if ct.GetSize() != (512, 512, 300):
        ct = sitk.Resample(ct, [512, 512, 300], sitk.Transform(), sitk.sitkLinear, ct.GetOrigin(),
                           ct.GetSpacing(), ct.GetDirection(), -1024.0, sitk.sitkFloat32)
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        try:
            locate_c2(ct)
        except C2NetError:
            pass
        runs.append(time.perf_counter() - t0)
    print(f"speed on {ct.GetSize()} voxels: median {np.median(runs):.2f} s (runs {np.round(runs, 2).tolist()})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--first-seed", type=int, default=1000)
    ap.add_argument("--n-cut", type=int, default=0, help="c2_cut phantoms (must be refused)")
    ap.add_argument("--skip-speed", action="store_true")
    a = ap.parse_args()
    if not a.skip_speed:
        speed()
    cohort(a.n, a.first_seed, a.n_cut)
