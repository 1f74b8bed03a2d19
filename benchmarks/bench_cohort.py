"""Cohort throughput of ``c2net batch`` (issue #16): cases per minute on one machine.

    .venv/bin/python benchmarks/bench_cohort.py [--cases 20] [--seed 20000] [--workers 2]
        [--keep DIR]

A cohort of ``--cases`` phantoms of mixed sizes (random spacing 0.3-1 mm in-plane, 0.5-2 mm
slices, random fields of view: ``c2net phantom --cohort``) is assessed twice, each time by the
``c2net batch`` command in a child process, as a user runs it:

1. ``--workers N``: the command starts its own local Dask cluster of N worker processes;
2. ``--scheduler tcp://...``: through a Dask scheduler this script starts beforehand (a local
   cluster of N single-threaded worker processes, what a lab's shared scheduler looks like).

Printed per run: wall time, cases per minute, cases finished, the median and maximum
per-case time the pipeline reports, and the projected time for 1,000 scans. The machines here
are shared; compare the two rows, not absolute numbers. Research use only - not a medical
device.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
C2NET = [sys.executable, "-m", "c2net"]


def make_cohort(out: Path, n: int, seed: int, workers: int) -> Path:
    subprocess.run(C2NET + ["phantom", str(out), "--cohort", str(n), "--seed", str(seed),
                            "--workers", str(workers)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    cases = sorted(p for p in out.iterdir() if p.is_dir())
    manifest = out / "batch_manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["case_id", "input"])
        for c in cases:
            w.writerow([c.name, str(c / "ct.nii.gz")])
    return manifest


def run_batch(manifest: Path, out: Path, extra: list) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run(C2NET + ["batch", "--manifest", str(manifest), "--out", str(out),
                                   "--quiet"] + extra, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    rows = []
    summary = out / "summary.csv"
    if summary.exists():
        with summary.open(encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    totals = []
    for case in out.iterdir():
        rep = case / "report.json"
        if rep.exists():
            t = json.loads(rep.read_text(encoding="utf-8")).get("timings_s", {})
            if "total" in t:
                totals.append(float(t["total"]) + float(t.get("report", 0.0)))
    # summary.csv has a row per side: count cases (a case is ok when all its rows are)
    status: dict = {}
    for r in rows:
        status.setdefault(r.get("case_id"), set()).add(r.get("status"))
    ok = sum(1 for s in status.values() if s == {"ok"})
    return {"wall_s": wall, "rc": proc.returncode, "rows": len(status), "ok": ok,
            "case_median_s": statistics.median(totals) if totals else float("nan"),
            "case_max_s": max(totals) if totals else float("nan"),
            "stderr": proc.stderr[-400:]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=20)
    ap.add_argument("--seed", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", type=Path, default=None, help="keep the cohort and outputs here")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="c2net_cohort_")) if args.keep is None else args.keep
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        manifest = make_cohort(tmp / "phantoms", args.cases, args.seed, args.workers)
        results = {}
        results[f"--workers {args.workers}"] = run_batch(
            manifest, tmp / "out_workers", ["--workers", str(args.workers)])
        from dask.distributed import LocalCluster

        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster:
            results[f"--scheduler (local, {args.workers} workers)"] = run_batch(
                manifest, tmp / "out_scheduler", ["--scheduler", cluster.scheduler_address])
        print(f"c2net batch, {args.cases} phantoms of mixed sizes (seeds {args.seed}..), "
              "research use only - not a medical device")
        print(f"{'run':34s} {'wall s':>8s} {'cases/min':>10s} {'ok':>6s} {'case med s':>11s} "
              f"{'case max s':>11s} {'1000 scans':>11s}")
        for name, r in results.items():
            per_min = 60.0 * r["rows"] / r["wall_s"] if r["wall_s"] > 0 else float("nan")
            thousand = 1000.0 / per_min / 60.0 if per_min > 0 else float("nan")
            print(f"{name:34s} {r['wall_s']:8.1f} {per_min:10.1f} {r['ok']:>3d}/{r['rows']:<2d} "
                  f"{r['case_median_s']:11.2f} {r['case_max_s']:11.2f} {thousand:9.1f} h")
            if r["rc"] not in (0, 4):
                print(f"  exit {r['rc']}: {r['stderr']}")
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
