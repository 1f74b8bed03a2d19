"""Time of the measurement stage (issue #16) on the clinical-size phantom, and its results.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_measure_speed.py PHANTOM_DIR [--repeats 5]

``PHANTOM_DIR`` holds ``ct.nii.gz`` and ``labels.nii.gz`` as written by
``benchmarks/bench_pipeline.py::_phantom(tmp, (0.4, 0.4, 0.625), "fine", (512, 512, 300))``
(the phantom of ``bench_pipeline.py``'s first case). Built there when absent.

Printed: the median (over ``--repeats``) wall time of :func:`c2net.measure.measure_pedicle`
on one side (the left), and of both sides measured at once on two threads as
``c2net.assess`` does (``measure_pedicle`` per side with the same left-right direction), and
each side's MPD, inner width, transverse widths and isthmus centre (to compare two versions:
results must not change). Machines here are shared; compare runs made back to back.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import SimpleITK as sitk


def values(m) -> str:
    c = m.isthmus_center_lps_mm
    return (f"mpd {m.mpd_mm:.4f} inner {m.inner_width_mm:.4f} tr_in {m.inner_width_transverse_mm:.4f} "
            f"tr_out {m.outer_width_transverse_mm:.4f} ctr {c[0]:.4f} {c[1]:.4f} {c[2]:.4f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("phantom", type=Path)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--assess", type=int, default=0, metavar="N",
                    help="also run c2net.assess.assess on the phantom N times (models from "
                         "--model-dir) and print the median of its 'measure' stage and wall time")
    ap.add_argument("--model-dir", type=Path, default=Path(__file__).resolve().parents[1] / "models")
    args = ap.parse_args()
    from c2net.measure import measure_pedicle

    ct_path = args.phantom / "ct.nii.gz"
    if not ct_path.exists():
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_pipeline import _phantom
        _phantom(args.phantom.parent, (0.4, 0.4, 0.625), args.phantom.name, (512, 512, 300))
    ct = sitk.ReadImage(str(ct_path))
    labels = sitk.ReadImage(str(args.phantom / "labels.nii.gz"))
    import json
    lab = json.loads((args.phantom / "truth.json").read_text())["labels"]
    masks = {s: sitk.Cast(labels == lab[f"pedicle_{s}"], sitk.sitkUInt8) for s in ("left", "right")}
    lr = np.array([1.0, 0.0, 0.0])

    def one(side):
        return measure_pedicle(ct, masks[side], side, lr_direction_lps=lr)

    one("left")   # warm-up (imports, caches)
    t_one, t_both, res = [], [], None
    with ThreadPoolExecutor(2) as pool:
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            one("left")
            t_one.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            jobs = {s: pool.submit(one, s) for s in ("left", "right")}
            res = {s: j.result() for s, j in jobs.items()}
            t_both.append(time.perf_counter() - t0)
    print(f"measure_pedicle (left): median {np.median(t_one):.3f} s  runs "
          + " ".join(f"{t:.3f}" for t in t_one))
    print(f"both sides, 2 threads:  median {np.median(t_both):.3f} s  runs "
          + " ".join(f"{t:.3f}" for t in t_both))
    for s in ("left", "right"):
        print(f"   {s:<5} {values(res[s])}")
    if args.assess:
        import tempfile

        from c2net.assess import assess
        stage, wall = [], []
        with tempfile.TemporaryDirectory() as tmp:
            assess(str(ct_path), tmp, overwrite=True, model_dir=args.model_dir)   # warm-up
            for _ in range(args.assess):
                t0 = time.perf_counter()
                r = assess(str(ct_path), tmp, overwrite=True, model_dir=args.model_dir)
                wall.append(time.perf_counter() - t0)
                stage.append(r.timings_s["measure"])
        print(f"assess(): measure stage median {np.median(stage):.3f} s  runs "
              + " ".join(f"{t:.3f}" for t in stage) + f"; assess() wall median {np.median(wall):.3f} s")
        for s in ("left", "right"):
            print(f"   {s:<5} {values(r.sides[s].measurement)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
