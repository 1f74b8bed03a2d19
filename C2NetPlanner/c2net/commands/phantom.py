"""``c2net phantom``: write synthetic cervical CT phantoms with exact C2 pedicle truth.

One case:   ``c2net phantom OUT_DIR [--seed N] [--spacing X Y Z] [--mpd-left MM] ...``
            writes OUT_DIR/ct.nii.gz, labels.nii.gz, truth.json.
A cohort:   ``c2net phantom --cohort N OUT_DIR [--workers W]`` writes OUT_DIR/case_0000/...
            for seeds seed..seed+N-1 plus OUT_DIR/manifest.csv.

Research use only — not a medical device.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import time
from pathlib import Path
from typing import List, Optional

from .. import DISCLAIMER
from ..errors import InputError
from ..output_folder import OVERWRITE_RULE, check_output_folder, replace_file

MANIFEST_COLUMNS = ["patient_id", "ct", "labels", "truth", "mpd_left_mm", "mpd_right_mm",
                    "seed", "fov"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", help="output folder (new or empty; see --overwrite)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (first seed of a cohort)")
    parser.add_argument("--spacing", type=float, nargs="+", metavar="MM",
                        help="voxel spacing in mm: one number or three (i j k); default random")
    parser.add_argument("--mpd-left", type=float, metavar="MM",
                        help="outer minimum diameter of the patient-left C2 pedicle (mm)")
    parser.add_argument("--mpd-right", type=float, metavar="MM",
                        help="outer minimum diameter of the patient-right C2 pedicle (mm)")
    parser.add_argument("--direction", nargs="+", metavar="D",
                        help="image orientation: a 3-letter code (LPS, RAI, ASL, ...), 9 numbers "
                             "(row-major direction matrix) or 'random'; default axial LPS")
    parser.add_argument("--fov", default="random",
                        help="field of view: random, c1_c4, c1_c7, skull_c5, full_neck, c2_edge, "
                             "c2_crop, c2_cut (default random)")
    parser.add_argument("--no-noise", action="store_true", help="no image noise (blur is kept)")
    parser.add_argument("--patient-id", help="patient id written to truth.json (one case only)")
    parser.add_argument("--cohort", type=int, metavar="N", help="write N cases (seeds seed..seed+N-1)")
    parser.add_argument("--workers", type=int, default=1, help="processes for --cohort (default 1)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a non-empty output folder: " + OVERWRITE_RULE)


def _direction(values: Optional[List[str]]):
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    if len(values) == 9:
        try:
            return [float(v) for v in values]
        except ValueError:
            pass
    raise InputError(f"--direction {' '.join(values)!r} is not valid",
                     "give a 3-letter code such as LPS or RAI, 'random', or 9 numbers")


def _case_kwargs(args: argparse.Namespace) -> dict:
    spacing = args.spacing
    if spacing is not None and len(spacing) not in (1, 3):
        raise InputError(f"--spacing needs 1 or 3 numbers, got {len(spacing)}",
                         "e.g. --spacing 0.8 or --spacing 0.5 0.5 1.0")
    return {"spacing_mm": spacing, "mpd_left_mm": args.mpd_left, "mpd_right_mm": args.mpd_right,
            "direction": _direction(args.direction), "fov": args.fov, "noise": not args.no_noise}


def _build_case(job: tuple) -> dict:
    """Worker: build and write one case; returns its manifest row."""
    from ..phantom import make_phantom, write_phantom

    seed, case_dir, kwargs, patient_id = job
    ph = make_phantom(seed, patient_id=patient_id, **kwargs)
    paths = write_phantom(ph, case_dir, overwrite=True)
    return {"patient_id": ph.truth["patient_id"], **paths,
            "mpd_left_mm": ph.truth["sides"]["left"]["mpd_mm"],
            "mpd_right_mm": ph.truth["sides"]["right"]["mpd_mm"],
            "seed": seed, "fov": ph.truth["fov"]}


def run(args: argparse.Namespace) -> int:
    from ..phantom import make_phantom, write_phantom

    kwargs = _case_kwargs(args)
    out = Path(args.out_dir)
    if args.seed < 0:
        raise InputError(f"--seed {args.seed} is negative", "give a non-negative whole number")
    print(DISCLAIMER, file=sys.stderr)
    if args.cohort is None:
        t0 = time.perf_counter()
        ph = make_phantom(args.seed, patient_id=args.patient_id, **kwargs)
        write_phantom(ph, out, overwrite=args.overwrite)
        s = ph.truth["sides"]
        print(f"wrote {out} ({ph.truth['patient_id']}, fov {ph.truth['fov']}, size "
              f"{list(ph.ct.GetSize())}, spacing {[round(v, 3) for v in ph.ct.GetSpacing()]} mm, "
              f"MPD left {s['left']['mpd_mm']:.2f} mm, right {s['right']['mpd_mm']:.2f} mm) "
              f"in {time.perf_counter() - t0:.1f} s")
        return 0

    if args.cohort < 1:
        raise InputError(f"--cohort {args.cohort} must be at least 1", "e.g. --cohort 200")
    if args.workers < 1:
        raise InputError(f"--workers {args.workers} must be at least 1", "e.g. --workers 2")
    if args.patient_id:
        raise InputError("--patient-id applies to one case only",
                         "cohort cases are named PH<seed> automatically")
    check_output_folder(out, args.overwrite)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(args.seed + n, str(out / f"case_{n:04d}"), kwargs, None) for n in range(args.cohort)]
    t0 = time.perf_counter()
    rows: List[dict] = []
    if args.workers == 1:
        for n, job in enumerate(jobs):
            rows.append(_build_case(job))
            print(f"\r{n + 1}/{len(jobs)} cases", end="", file=sys.stderr, flush=True)
    else:
        import multiprocessing as mp

        os.environ.setdefault("OMP_NUM_THREADS", "1")
        ctx = mp.get_context("spawn")
        with ctx.Pool(args.workers) as pool:
            for n, row in enumerate(pool.imap(_build_case, jobs)):
                rows.append(row)
                print(f"\r{n + 1}/{len(jobs)} cases", end="", file=sys.stderr, flush=True)
    print("", file=sys.stderr)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=MANIFEST_COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (os.path.relpath(row[k], out) if k in ("ct", "labels", "truth") else row[k])
                         for k in MANIFEST_COLUMNS})
    replace_file(out / "manifest.csv", text.getvalue())
    dt = time.perf_counter() - t0
    print(f"wrote {len(rows)} cases to {out} ({dt / len(rows):.2f} s per case, "
          f"{args.workers} worker(s)); manifest: {out / 'manifest.csv'}")
    return 0
