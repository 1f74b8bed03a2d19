"""The whole pipeline on held-out phantoms, scored against their exact truth.

    .venv/bin/python benchmarks/bench_end_to_end.py [--manifest DIR/manifest.csv | --cases 30]
        [--seed 9000] [--workers 1] [--out DIR] [--model-dir models]

Every case goes through ``c2net batch`` exactly as a user's would: automatic localisation,
U-Net segmentation, measurement, C3D classification, report. Without ``--manifest`` a fresh
cohort of ``--cases`` phantoms is generated from ``--seed`` (seeds the models never saw: the
training cohorts use 1000-1239, the held-out cohort 5000-5059).

Printed: how many cases completed; localisation error; per side the MPD error of the fully
automatic measurement (mean absolute, bias, 95th percentile, max) and its coverage by the
reported uncertainty; the MPD verdict and the network verdict against the true label
(MPD < 4.78 mm = high risk: accuracy, sensitivity, specificity, AUC of P(high risk));
borderline rate; time per case. ``--json`` writes the numbers. Research use only - not a
medical device.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CUTOFF_MM = 4.78


def _auc(p: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import rankdata

    pos, neg = int((y == 1).sum()), int((y == 0).sum())
    if not pos or not neg:
        return float("nan")
    r = rankdata(p)
    return float((r[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _binary(pred_high: np.ndarray, y: np.ndarray) -> dict:
    tp = int(((pred_high == 1) & (y == 1)).sum())
    tn = int(((pred_high == 0) & (y == 0)).sum())
    return {"n": int(len(y)), "accuracy": float((pred_high == y).mean()) if len(y) else float("nan"),
            "sensitivity": tp / max(1, int((y == 1).sum())),
            "specificity": tn / max(1, int((y == 0).sum()))}


def _generate(out: Path, n: int, seed: int) -> Path:
    from c2net.phantom import make_phantom, write_phantom

    rows = []
    fovs = ("c1_c4", "c1_c7", "skull_c5", "full_neck")
    for i in range(n):
        pid = f"E2E{seed + i:05d}"
        ph = make_phantom(seed=seed + i, fov=fovs[i % len(fovs)],
                          direction="random" if i % 3 == 2 else None, patient_id=pid)
        write_phantom(ph, out / pid, overwrite=True)
        rows.append({"patient_id": pid, "ct": f"{pid}/ct.nii.gz", "truth": f"{pid}/truth.json"})
    with open(out / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["patient_id", "ct", "truth"])
        w.writeheader()
        w.writerows(rows)
    return out / "manifest.csv"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", type=Path, help="CT manifest (patient_id, ct, truth)")
    ap.add_argument("--cases", type=int, default=30, help="phantoms to generate (no --manifest)")
    ap.add_argument("--seed", type=int, default=9000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model-dir", default=None)
    ap.add_argument("--out", type=Path, default=None, help="keep the batch output here")
    ap.add_argument("--json", type=Path, default=None, help="write the figures as JSON")
    args = ap.parse_args()

    from c2net.batch import BatchOptions, Case, run_batch

    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        manifest = args.manifest or _generate(tmp / "cohort", args.cases, args.seed)
        base = manifest.parent
        with open(manifest, newline="") as f:
            entries = list(csv.DictReader(f))
        cases = [Case(case_id=e["patient_id"], input=str(base / e["ct"])) for e in entries]
        truths = {e["patient_id"]: json.loads((base / e["truth"]).read_text()) for e in entries}
        out = args.out or tmp / "batch"
        t0 = time.perf_counter()
        rows = run_batch(cases, str(out), BatchOptions(model_dir=args.model_dir,
                                                       threads=args.threads),
                         workers=args.workers, show_progress=False)
        wall = time.perf_counter() - t0
        locate_err = []
        for c in cases:
            rep_path = Path(out) / c.case_id / "report.json"
            if rep_path.exists():
                rep = json.loads(rep_path.read_text())
                centre = (rep.get("localisation") or {}).get("center_lps_mm")
                if centre is not None:
                    locate_err.append(float(np.linalg.norm(
                        np.subtract(centre, truths[c.case_id]["c2_center_lps_mm"]))))

    ok_cases = {r["case_id"] for r in rows if r.get("status") == "ok"}
    failed = [r for r in rows if r.get("status") != "ok"]
    err, cover, y, v_mpd, p_net, v_net, border = [], [], [], [], [], [], 0
    side_fail = 0
    for r in rows:
        if r.get("status") != "ok":
            continue
        if r.get("mpd_mm") in (None, ""):
            side_fail += 1
            continue
        t = truths[r["case_id"]]["sides"][r["side"]]
        e = float(r["mpd_mm"]) - float(t["mpd_mm"])
        err.append(e)
        cover.append(abs(e) <= float(r["mpd_uncertainty_mm"]))
        y.append(int(float(t["mpd_mm"]) < CUTOFF_MM))
        border += r["verdict_mpd"] == "borderline"
        v_mpd.append(int(r["verdict_mpd"] == "high_risk") if r["verdict_mpd"] != "borderline"
                     else int(float(r["mpd_mm"]) < CUTOFF_MM))
        if r.get("p_high_risk") not in (None, ""):
            p_net.append(float(r["p_high_risk"]))
            v_net.append(int(float(r["p_high_risk"]) >= 0.5))
    err, y = np.asarray(err), np.asarray(y)
    res = {
        "cases": len(cases), "completed": len(ok_cases), "failed": len(failed),
        "failure_codes": sorted({str(r.get("error_code")) for r in failed}),
        "sides_measured": int(len(err)), "sides_failed": side_fail,
        "locate_error_mm": {"median": float(np.median(locate_err)) if locate_err else None,
                            "max": float(np.max(locate_err)) if locate_err else None},
        "mpd_error_mm": {"mae": float(np.mean(np.abs(err))), "bias": float(np.mean(err)),
                         "p95_abs": float(np.percentile(np.abs(err), 95)),
                         "max_abs": float(np.max(np.abs(err)))} if len(err) else {},
        "uncertainty_coverage": float(np.mean(cover)) if cover else None,
        "verdict_mpd": _binary(np.asarray(v_mpd), y), "borderline_sides": int(border),
        "verdict_network": dict(_binary(np.asarray(v_net), y[:len(v_net)]),
                                auc=_auc(np.asarray(p_net), y[:len(p_net)])),
        "seconds_per_case": wall / max(1, len(cases)),
    }
    print(f"end to end on {res['cases']} phantoms: {res['completed']} completed, "
          f"{res['failed']} refused/failed {res['failure_codes']}; "
          f"{res['sides_measured']} sides measured, {side_fail} side failures")
    if locate_err:
        print(f"C2 localisation error: median {res['locate_error_mm']['median']:.1f} mm, "
              f"max {res['locate_error_mm']['max']:.1f} mm")
    if len(err):
        m = res["mpd_error_mm"]
        print(f"MPD error (automatic): MAE {m['mae']:.2f} mm, bias {m['bias']:+.2f} mm, "
              f"95th pct {m['p95_abs']:.2f} mm, max {m['max_abs']:.2f} mm; within the reported "
              f"uncertainty: {100 * res['uncertainty_coverage']:.0f} %")
    for name in ("verdict_mpd", "verdict_network"):
        b = res[name]
        extra = f", AUC {b['auc']:.3f}" if "auc" in b else ""
        print(f"{name:<16} n {b['n']:>3}  accuracy {b['accuracy']:.3f}  sensitivity "
              f"{b['sensitivity']:.3f}  specificity {b['specificity']:.3f}{extra}")
    print(f"borderline MPD verdicts: {border}; {res['seconds_per_case']:.1f} s per case "
          f"({args.workers} worker(s), {args.threads} threads)")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
