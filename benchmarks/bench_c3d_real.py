"""What the C3D's p(high risk) is worth: held-out phantoms (plain and re-rendered with other
scanners' looks) and the real sides of VHM, VHF and CThead with their pose/resolution/noise
variants, for several classifier models in the same run.

    python benchmarks/bench_c3d_real.py --models models/c2net-c3d-v2.onnx models/c2net-c3d-v3.onnx
        [--heldout work_tmp/heldout60/manifest.csv] [--cache DIR] [--looks 2]
        [--data ../shared/data] [--scans vhm vhf cthead] [--all-variants] [--out result.json]

**Held-out phantoms** (``--heldout``, default ``work_tmp/heldout60/manifest.csv``, seeds
5000-5059, never trained on): every isthmus measured once by ``c2net.measure`` on the true
mask (as at run time; cached by :func:`c2net.training.data.build_cls_slabs`), the five
slices cut there and classified through the run-time :func:`c2net.classify.predict_risk`.
Two sets: ``plain`` (the phantom's own look: the run-time input) and ``other looks``
(``--looks`` seeded re-renderings per pedicle with the SynthSeg-style randomisation of
:mod:`c2net.training.randomise`: tissue levels, bias, a drawn scanner's slice profile and
blur, noise, gamma - the label is unchanged, the anatomy is the phantom's). Per model and set:
AUC, accuracy, sensitivity, specificity, Brier score, ECE (10 bins).

**Real sides** (``../shared/data``; skipped when absent): per scan and side, the MPD measured
by the tool along the reader's trajectory (:func:`c2net.measure.measure_trajectory`, entry
10 mm behind and target 10 mm in front of the reader's isthmus centre along the reader's
axis; the reader's own outer width is not an MPD), the verdict from that MPD (high risk below
4.78 mm), and each model's p(high risk) on the slices cut at that measured isthmus (own-side
aperture capped by the other side's measured isthmus) - on the native scan and on pose /
resolution / noise variants made by ``bench_locate_real.variants`` (reader points carried
through each variant's transform; by default a subset, ``--all-variants`` for all with a
complete C2). There is no independent truth for these sides: the MPD verdict is the reference,
and on these three scans every side is wider than the cutoff, so the real sides can only show
false alarms and stability, never sensitivity.

**Shrunk real sides** (a probe of sensitivity on real bone, native scans): the same real
isthmus sampled on a grid of ``1/s`` mm instead of 1 mm (``s`` in :data:`SHRINK`), so the
network, which takes a pixel for 1 mm, sees the real anatomy, cortex texture and blur scaled
isotropically by ``s`` - a pedicle of MPD ``s x MPD`` (exact under an isotropic scaling; the
aperture radius is scaled with the distance to the other isthmus). Label: ``s x MPD`` below
the cutoff. Caveat: a scaled-down adult C2 is not a narrow patient pedicle (canal, foramen and
body shrink with it, the scanner's blur shrinks too), so this shows whether p responds to the
width of real bone, not how it would do on patients.

Research use only - not a medical device.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_locate_real import SCANS, default_data, variants  # noqa: E402
from c2net.classify import predict_risk  # noqa: E402
from c2net.errors import C2NetError  # noqa: E402
from c2net.load import load_ct  # noqa: E402
from c2net.measure import isthmus_slices, measure_trajectory  # noqa: E402
from c2net.models import load_model  # noqa: E402
from c2net.results import IsthmusSlices  # noqa: E402
from c2net.training import data as D  # noqa: E402
from c2net.training.calibrate import brier_score, expected_calibration_error  # noqa: E402
from c2net.training.train import binary_metrics  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SIDES = ("left", "right")
CUTOFF_MM = D.HIGH_RISK_CUTOFF_MM
HALF_TRAJECTORY_MM = 10.0
#: In-plane and through-plane scale factors of the shrunk real sides (1 = the native slices).
SHRINK = (0.35, 0.45, 0.5, 0.55, 0.6, 0.7, 0.85, 1.0)
DEFAULT_VARIANTS = {("rot_dir", n) for n in ("x-20", "x+20", "y-20", "y+20", "z-20", "z+20")} | {
    ("rot_resampled", "x+20"), ("rot_resampled", "z-20"), ("slices", "0.5 mm"),
    ("slices", "2.0 mm"), ("noise", "30 HU"), ("noise", "40 HU")}


def model_name(m) -> str:
    return f"{m.id}@{m.version}"


def metrics(p: np.ndarray, y: np.ndarray) -> dict:
    out = binary_metrics(p, y)
    out.update(brier=brier_score(p, y), ece=expected_calibration_error(p, y), n=int(len(y)),
               n_high_risk=int(y.sum()))
    return out


def phantom_part(manifest: Path, cache: Path, models, looks: int) -> dict:
    sl = D.build_cls_slabs(manifest, cache, CUTOFF_MM)
    n = len(sl.y)
    err = sl.centre_error()
    print(f"held-out phantoms: {len(set(sl.patient_ids))} patients, {n} pedicles "
          f"({int(sl.y.sum())} high risk); isthmus measured on {int(sl.measured.sum())}; "
          f"measured-true centre |error| median "
          f"{np.median(np.linalg.norm(err, axis=1)) if len(err) else float('nan'):.2f} mm",
          flush=True)
    aug = D.ClsAugment(domain_randomisation=True, p_randomise=1.0, max_rotation_deg=0.0,
                       flip=False)
    sets = {"plain": [(i, D.cut_cls_item(sl, i, as_hu=True)) for i in range(n)]}
    rng = np.random.default_rng([5000, 15])
    sets["other looks"] = [(i, D.cut_cls_item(sl, i, rng, aug, as_hu=True))
                           for _ in range(looks) for i in range(n)]
    res = {}
    for tag, items in sets.items():
        y = np.array([sl.y[i] for i, _ in items])
        res[tag] = {}
        for m in models:
            p = np.array([predict_risk(IsthmusSlices(sl.sides[i], hu, [tuple(sl.centre[i])] * 5),
                                       model=m, other_isthmus_lps_mm=sl.other_centre[i]
                                       ).p_high_risk for i, hu in items])
            res[tag][model_name(m)] = metrics(p, y)
    print(f"\n{'set':12s} {'model':18s} {'n':>4s} {'AUC':>6s} {'acc':>6s} {'sens':>6s} "
          f"{'spec':>6s} {'Brier':>6s} {'ECE':>6s}")
    for tag, per in res.items():
        for name, r in per.items():
            print(f"{tag:12s} {name:18s} {r['n']:4d} {r['auc']:6.3f} {r['accuracy']:6.3f} "
                  f"{r['sensitivity']:6.3f} {r['specificity']:6.3f} {r['brier']:6.3f} "
                  f"{r['ece']:6.3f}")
    return res


def real_side(img, centre, axis, side):
    a = np.asarray(axis, float)
    a /= np.linalg.norm(a)
    c = np.asarray(centre, float)
    return measure_trajectory(img, c - HALF_TRAJECTORY_MM * a, c + HALF_TRAJECTORY_MM * a, side)


def shrunk_slices(img, m, s: float, other_centre):
    """The classifier's five slices of measured isthmus ``m`` with the anatomy scaled by ``s``:
    a canonical 64 x 64 x 5 grid of spacing 1/s mm centred on the isthmus (linear, the fine
    axes smoothed as :func:`c2net.geometry.canonical_crop` does at 1 mm), returned with the
    other isthmus moved to ``s`` times its distance (for the aperture)."""
    import SimpleITK as sitk

    c = np.asarray(m.isthmus_center_lps_mm, float)
    sp = 1.0 / s
    size = np.array([64, 64, 5])
    origin = c - sp * (size - 1) / 2.0
    src = sitk.Cast(img, sitk.sitkFloat32)
    for axis, v in enumerate(src.GetSpacing()):
        sigma = 0.4 * np.sqrt(max(sp * sp - v * v, 0.0))
        if sigma > 0.05:
            src = sitk.RecursiveGaussian(src, float(sigma), False,
                                         sitk.RecursiveGaussianImageFilter.ZeroOrder, axis)
    out = sitk.Resample(src, [int(v) for v in size], sitk.Transform(), sitk.sitkLinear,
                        origin.tolist(), [sp] * 3, np.eye(3).ravel().tolist(), -1024.0,
                        sitk.sitkFloat32)
    hu = sitk.GetArrayFromImage(out).astype(np.float32)      # (z, y, x): S, P, L canonical
    other = None if other_centre is None else c + s * (np.asarray(other_centre, float) - c)
    return IsthmusSlices(m.side, hu, [tuple(c)] * 5), other


def shrunk_part(data: Path, scans, models) -> dict:
    ref_file = data / "reference" / "reader_c2_isthmus.json"
    if not ref_file.exists():
        return {}
    allrefs = json.loads(ref_file.read_text())
    names = [model_name(m) for m in models]
    print(f"\nshrunk real sides (native scans): anatomy scaled by s, label s x MPD < {CUTOFF_MM}")
    print(f"{'scan':7s} {'side':5s} {'s':>5s} {'s*MPD':>6s} {'label':6s} "
          + " ".join(f"{n:>18s}" for n in names))
    rows = []
    for scan in scans:
        image = load_ct(data / "real" / SCANS[scan]).image
        refs = {r["side"]: r for r in allrefs if r["scan"] == scan}
        meas = {}
        for side in SIDES:
            try:
                meas[side] = real_side(image, refs[side]["isthmus_centre_lps_mm"],
                                       refs[side]["axis_lps_posterior_to_anterior"], side)
            except C2NetError as exc:
                print(f"{scan:7s} {side:5s} not measured: {exc}")
        for side, m in meas.items():
            om = meas.get("right" if side == "left" else "left")
            for s in SHRINK:
                sl, other = shrunk_slices(image, m, s, None if om is None else
                                          om.isthmus_center_lps_mm)
                w = s * m.mpd_mm
                row = {"scan": scan, "side": side, "scale": s, "mpd_mm": m.mpd_mm,
                       "scaled_mpd_mm": w, "label_high_risk": bool(w < CUTOFF_MM),
                       "p_high_risk": {n: predict_risk(sl, model=mm, other_isthmus_lps_mm=other
                                                       ).p_high_risk
                                       for n, mm in zip(names, models)}}
                rows.append(row)
                print(f"{scan:7s} {side:5s} {s:5.2f} {w:6.2f} "
                      f"{'HIGH' if row['label_high_risk'] else 'low':6s} "
                      + " ".join(f"{row['p_high_risk'][n]:18.4f}" for n in names), flush=True)
    res = {"rows": rows, "metrics": {}}
    if rows:
        y = np.array([r["label_high_risk"] for r in rows], int)
        print(f"\n{'model':18s} {'n':>4s} {'AUC':>6s} {'acc':>6s} {'sens':>6s} {'spec':>6s} "
              f"{'Brier':>6s}  (shrunk real sides, {int(y.sum())} high risk)")
        for n in names:
            p = np.array([r["p_high_risk"][n] for r in rows])
            r = metrics(p, y)
            res["metrics"][n] = r
            print(f"{n:18s} {r['n']:4d} {r['auc']:6.3f} {r['accuracy']:6.3f} "
                  f"{r['sensitivity']:6.3f} {r['specificity']:6.3f} {r['brier']:6.3f}")
    return res


def real_part(data: Path, scans, models, all_variants: bool) -> list:
    ref_file = data / "reference" / "reader_c2_isthmus.json"
    if not ref_file.exists():
        print(f"\nshared data not found under {data}: real sides skipped")
        return []
    allrefs = json.loads(ref_file.read_text())
    rows = []
    names = [model_name(m) for m in models]
    print(f"\nreal sides: MPD by the tool along the reader's trajectory; verdict high risk if "
          f"MPD < {CUTOFF_MM} mm; p(high risk) per model")
    print(f"{'scan':7s} {'variant':22s} {'side':5s} {'MPD':>6s} {'verdict':8s} "
          + " ".join(f"{n:>18s}" for n in names))
    for scan in scans:
        image = load_ct(data / "real" / SCANS[scan]).image
        refs = {r["side"]: r for r in allrefs if r["scan"] == scan}
        mid = np.mean([refs[s]["isthmus_centre_lps_mm"] for s in SIDES], axis=0)
        cases = [("native", "native", image, lambda p: np.asarray(p, float))]
        for family, name, img, tf, complete, _up in variants(image, mid):
            if not complete:
                continue
            if not all_variants and (family, name) not in DEFAULT_VARIANTS:
                continue
            cases.append((family, name, img, tf))
        for family, name, img, tf in cases:
            img = img() if callable(img) else img
            meas = {}
            for side in SIDES:
                c = np.asarray(refs[side]["isthmus_centre_lps_mm"], float)
                a = np.asarray(refs[side]["axis_lps_posterior_to_anterior"], float)
                try:
                    meas[side] = real_side(img, tf(c), tf(c + a) - tf(c), side)
                except C2NetError as exc:
                    meas[side] = exc
            for side in SIDES:
                other = "right" if side == "left" else "left"
                m = meas[side]
                row = {"scan": scan, "family": family, "variant": name, "side": side}
                if isinstance(m, Exception):
                    row["error"] = str(m)
                    rows.append(row)
                    print(f"{scan:7s} {family + ' ' + name:22s} {side:5s} not measured: {m}")
                    continue
                om = meas[other]
                other_c = None if isinstance(om, Exception) else om.isthmus_center_lps_mm
                sl = isthmus_slices(img, m, None)
                row.update(mpd_mm=m.mpd_mm, inner_width_mm=m.inner_width_mm,
                           verdict_high_risk=bool(m.mpd_mm < CUTOFF_MM), p_high_risk={})
                for mm in models:
                    row["p_high_risk"][model_name(mm)] = predict_risk(
                        sl, model=mm, other_isthmus_lps_mm=other_c).p_high_risk
                rows.append(row)
                print(f"{scan:7s} {family + ' ' + name:22s} {side:5s} {m.mpd_mm:6.2f} "
                      f"{'HIGH' if row['verdict_high_risk'] else 'low':8s} "
                      + " ".join(f"{row['p_high_risk'][n]:18.4f}" for n in names), flush=True)
    ok = [r for r in rows if "p_high_risk" in r]
    print("\nsummary over the real sides (agreement = the model's p >= 0.5 exactly where the "
          "MPD verdict is high risk)")
    for n in names:
        for label, sub in (("native", [r for r in ok if r["family"] == "native"]),
                           ("variants", [r for r in ok if r["family"] != "native"])):
            if not sub:
                continue
            p = np.array([r["p_high_risk"][n] for r in sub])
            v = np.array([r["verdict_high_risk"] for r in sub])
            print(f"  {n:18s} {label:8s} n {len(sub):3d}  agree {int(((p >= 0.5) == v).sum()):3d}"
                  f"  p median {np.median(p):.4f}  max {p.max():.4f}")
        spread = []
        for scan in scans:
            for side in SIDES:
                ps = [r["p_high_risk"][n] for r in ok if r["scan"] == scan and r["side"] == side]
                if ps:
                    spread.append(max(ps) - min(ps))
        if spread:
            print(f"  {n:18s} largest p range of one side over its variants: {max(spread):.4f}")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", type=Path,
                    default=[REPO / "models" / "c2net-c3d-v2.onnx"])
    ap.add_argument("--heldout", type=Path, default=REPO / "work_tmp" / "heldout60" / "manifest.csv")
    ap.add_argument("--cache", type=Path, default=REPO / "work_tmp" / "c3d" / "cache_heldout",
                    help="cache of the held-out measurements (made on the first run)")
    ap.add_argument("--looks", type=int, default=2,
                    help="re-rendered looks per held-out pedicle (seeded)")
    ap.add_argument("--data", type=Path, default=default_data())
    ap.add_argument("--scans", nargs="+", default=list(SCANS))
    ap.add_argument("--all-variants", action="store_true")
    ap.add_argument("--no-phantoms", action="store_true")
    ap.add_argument("--no-real", action="store_true")
    ap.add_argument("--only-shrunk", action="store_true",
                    help="real scans: only the shrunk native sides (no variants)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="write every figure as JSON")
    args = ap.parse_args()
    models = [load_model("classifier", path=p, threads=args.threads) for p in args.models]
    t0 = time.perf_counter()
    res = {"models": [m.describe() for m in models]}
    if not args.no_phantoms:
        if args.heldout.exists():
            res["phantoms"] = phantom_part(args.heldout, args.cache, models, args.looks)
        else:
            print(f"held-out manifest {args.heldout} not found: make it with "
                  "'c2net phantom --cohort 60 --seed 5000 work_tmp/heldout60'")
    if not args.no_real and not args.only_shrunk:
        res["real"] = real_part(args.data, args.scans, models, args.all_variants)
    if not args.no_real:
        res["shrunk_real"] = shrunk_part(args.data, args.scans, models)
    print(f"\n{time.perf_counter() - t0:.0f} s. Research use only - not a medical device.")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
