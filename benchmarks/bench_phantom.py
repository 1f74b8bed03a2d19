"""Time the phantom generator: seconds per case at a few spacings (and writing to disk).

Usage: python benchmarks/bench_phantom.py [--repeats 3] [--fov c1_c4]
Research use only — not a medical device.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import SimpleITK as sitk  # noqa: E402
from c2net.phantom import make_phantom, write_phantom  # noqa: E402

SPACINGS = [(1.0, 1.0, 1.0), (0.8, 0.8, 0.8), (0.5, 0.5, 1.0), (0.4, 0.4, 0.625), (0.3, 0.3, 2.0)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fov", default="c1_c4")
    args = ap.parse_args()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    print(f"phantom generation, fov={args.fov}, 1 thread, median of {args.repeats} seeds")
    print(f"{'spacing (mm)':>20} {'size':>18} {'Mvoxels':>8} {'make (s)':>9} {'write (s)':>9}")
    for sp in SPACINGS:
        make_t, write_t = [], []
        size = None
        for seed in range(args.repeats):
            t0 = time.perf_counter()
            ph = make_phantom(seed, spacing_mm=sp, fov=args.fov, direction="LPS")
            make_t.append(time.perf_counter() - t0)
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                write_phantom(ph, os.path.join(tmp, "case"))
                write_t.append(time.perf_counter() - t0)
            size = ph.ct.GetSize()
        mvox = size[0] * size[1] * size[2] / 1e6
        print(f"{str(sp):>20} {str(size):>18} {mvox:8.2f} {statistics.median(make_t):9.2f} "
              f"{statistics.median(write_t):9.2f}")


if __name__ == "__main__":
    main()
