"""End-to-end benchmark on the real scans: automatic ``assess`` on VHM, VHF and CThead and their
pose / resolution variants, against the reader reference.

    python benchmarks/bench_end_to_end_real.py [--data ../shared/data] [--scans vhm vhf cthead]
        [--families native rot_dir rot_resampled crop slices noise] [--all-variants]
        [--pictures DIR] [--phantoms N]

Per scan and variant, :func:`c2net.assess.assess` runs fully automatically (no seed). Where
the localiser refuses a scan whose C2 is complete, the run is repeated with the reader's
isthmus midpoint as a seed point (the existing seed override; reported as ``seeded``): the
reader reference is only used here, never inside the product. Printed per side:

* measured or not (and the reason), which segmenter produced the mask (``unet`` /
  ``anatomical_finder``) and whether the side is flagged "check the segmentation";
* the isthmus centre's distance from the reader's (carried through the variant's transform);
* MPD and inner width against the same measurement run along the reader's trajectory on the
  native scan (:func:`c2net.measure.measure_trajectory`: entry 10 mm behind, target 10 mm in
  front of the reader's isthmus centre along the reader's axis) - MPD is pose-free, so the
  native reader-trajectory values are the reference for every variant;
* side swaps (the left answer nearer the reader's right isthmus than its left one);
* time of the whole assessment and of the finder check.

Variants come from ``bench_locate_real.py`` (rotated direction matrices, resampled rotations,
crops, slice spacing, noise). By default a subset runs (+-20 deg about each axis, 0.5 / 2 mm
slices, 30 HU noise, the C1-C4 crop and the cut-C2 crops that must be refused); ``--all-variants``
runs every one (slow: ~15 s each on 2 cores). Research use only - not a medical device.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_locate_real import SCANS, default_data, variants  # noqa: E402
from c2net.assess import assess  # noqa: E402
from c2net.errors import C2NetError  # noqa: E402
from c2net.load import load_ct  # noqa: E402
from c2net.measure import measure_trajectory  # noqa: E402

SIDES = ("left", "right")
DEFAULT_SUBSET = {("rot_dir", n) for n in ("x-20", "x+20", "y-20", "y+20", "z-20", "z+20")} | {
    ("slices", "0.5 mm"), ("slices", "2.0 mm"), ("noise", "30 HU"), ("crop", "C1-C4"),
    ("crop", "C2 cut top"), ("crop", "C2 cut bottom")}
HALF_TRAJECTORY_MM = 10.0


def reader_trajectory_reference(image: sitk.Image, refs: dict) -> dict:
    """Per side: the tool's MPD / inner width measured along the reader's trajectory."""
    out = {}
    for side in SIDES:
        r = refs[side]
        c = np.asarray(r["isthmus_centre_lps_mm"], float)
        a = np.asarray(r["axis_lps_posterior_to_anterior"], float)
        a /= np.linalg.norm(a)
        try:
            m = measure_trajectory(image, c - HALF_TRAJECTORY_MM * a, c + HALF_TRAJECTORY_MM * a,
                                   side)
            out[side] = {"mpd_mm": m.mpd_mm, "inner_width_mm": m.inner_width_mm,
                         "outer_width_transverse_mm": m.outer_width_transverse_mm}
        except C2NetError as exc:
            out[side] = {"error": exc.message}
    return out


def run_one(img: sitk.Image, seed=None):
    t0 = time.perf_counter()
    res = assess(img, seed_lps_mm=None if seed is None else [float(v) for v in seed],
                 raise_on_error=False)
    return res, time.perf_counter() - t0


def picture(res, scan: str, name: str, refs_tf: dict, out_dir: Path) -> None:
    """Axial slices through each measured isthmus with the mask outline, the MPD line and the
    reader's isthmus (canonical 1 mm)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from c2net.geometry import canonical_crop

    mid = np.mean([refs_tf[s] for s in SIDES], axis=0)
    crop = canonical_crop(res.ct, mid, (70, 60, 40))
    a = sitk.GetArrayFromImage(crop)
    o = np.asarray(crop.GetOrigin())
    lab = sitk.GetArrayFromImage(canonical_crop(res.segmentation, mid, (70, 60, 40), "nearest"))
    fig, ax = plt.subplots(1, 2, figsize=(12, 6))
    for axx, side in zip(ax, SIDES):
        sa = res.sides.get(side)
        m = None if sa is None else sa.measurement
        c = np.asarray(m.isthmus_center_lps_mm) if m else refs_tf[side]
        k = int(np.clip(round(c[2] - o[2]), 0, a.shape[0] - 1))
        axx.imshow(a[k], cmap="gray", vmin=-200, vmax=1300)
        if lab[k].any():
            axx.contour(lab[k] == 1, [0.5], colors="r")
            axx.contour(lab[k] == 2, [0.5], colors="c")
        for s in SIDES:
            p = refs_tf[s] - o
            axx.plot(p[0], p[1], "y+", ms=14, mew=2)
        if m:
            e = np.asarray(m.mpd_endpoints_lps_mm) - o
            axx.plot(e[:, 0], e[:, 1], "m-", lw=2)
        axx.set_title(f"{side}: {getattr(sa, 'segmenter', None)}, MPD "
                      f"{m.mpd_mm if m else float('nan'):.2f} mm, z {o[2] + k:.0f}")
    fig.suptitle(f"{scan} {name}: axial, image left = patient right; red/cyan = left/right "
                 "mask; yellow + = reader isthmi; magenta = MPD line. Research use only - not "
                 "a medical device.", fontsize=9)
    fig.tight_layout()
    fig.savefig(out_dir / f"{scan}_{name.replace(' ', '_').replace('+', 'p')}.png", dpi=60)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=default_data())
    ap.add_argument("--scans", nargs="+", default=list(SCANS))
    ap.add_argument("--families", nargs="+",
                    default=["native", "rot_dir", "rot_resampled", "crop", "slices", "noise"])
    ap.add_argument("--all-variants", action="store_true")
    ap.add_argument("--pictures", type=Path, default=None,
                    help="folder for an axial picture of every native run")
    ap.add_argument("--phantoms", type=int, default=0,
                    help="also assess this many random phantoms (seeds 1000...) and count the "
                         "sides the finder check flags (false flags: the U-Net is right there)")
    args = ap.parse_args()
    if args.phantoms:
        phantom_flags(args.phantoms)
        if not args.scans or args.scans == ["none"]:
            return 0
    ref_file = args.data / "reference" / "reader_c2_isthmus.json"
    if not ref_file.exists():
        print(f"shared data not found under {args.data}: nothing to benchmark")
        return 0
    allrefs = json.loads(ref_file.read_text())
    if args.pictures:
        args.pictures.mkdir(parents=True, exist_ok=True)
    rows = []
    for scan in args.scans:
        image = load_ct(args.data / "real" / SCANS[scan]).image
        refs = {r["side"]: r for r in allrefs if r["scan"] == scan}
        mid = np.mean([refs[s]["isthmus_centre_lps_mm"] for s in SIDES], axis=0)
        traj = reader_trajectory_reference(image, refs)
        print(f"{scan}: tool along the reader's trajectory: "
              + "; ".join(f"{s} MPD {traj[s].get('mpd_mm', float('nan')):.2f} inner "
                          f"{traj[s].get('inner_width_mm', float('nan')):.2f}" for s in SIDES),
              flush=True)
        cases = [("native", "native", image, lambda p: np.asarray(p, float), True)]
        for family, name, img, tf, complete, _up in variants(image, mid):
            if family not in args.families:
                continue
            if not args.all_variants and (family, name) not in DEFAULT_SUBSET:
                continue
            cases.append((family, name, img, tf, complete))
        for family, name, img, tf, complete in cases:
            if family not in args.families:
                continue
            img = img() if callable(img) else img
            res, dt = run_one(img)
            seeded = False
            if res.status != "ok" and complete and (res.error or {}).get("code", "").startswith(
                    ("c2_not_found",)):
                res, dt2 = run_one(img, seed=tf(mid))
                dt += dt2
                seeded = True
            refs_tf = {s: tf(refs[s]["isthmus_centre_lps_mm"]) for s in SIDES}
            row = {"scan": scan, "family": family, "variant": name, "complete": complete,
                   "status": res.status, "code": (res.error or {}).get("code"), "seeded": seeded,
                   "time_s": dt, "check_s": res.timings_s.get("segmentation_check"), "sides": {}}
            for side in SIDES:
                sa = res.sides.get(side)
                m = None if sa is None else sa.measurement
                d = {"measured": m is not None,
                     "segmenter": None if sa is None else sa.segmenter,
                     "check": None if sa is None else sa.check_segmentation,
                     "reason": (sa.error or {}).get("message") if sa is not None and sa.error
                     else None}
                if m is not None:
                    c = np.asarray(m.isthmus_center_lps_mm)
                    other = "right" if side == "left" else "left"
                    d["centre_err_mm"] = float(np.linalg.norm(c - refs_tf[side]))
                    d["swapped"] = bool(np.linalg.norm(c - refs_tf[other]) < d["centre_err_mm"])
                    d["mpd_mm"], d["inner_mm"] = m.mpd_mm, m.inner_width_mm
                    t = traj[side]
                    if "mpd_mm" in t:
                        d["mpd_diff_mm"] = m.mpd_mm - t["mpd_mm"]
                        d["inner_diff_mm"] = m.inner_width_mm - t["inner_width_mm"]
                row["sides"][side] = d
            rows.append(row)
            if args.pictures and res.status == "ok" and family == "native":
                picture(res, scan, name, refs_tf, args.pictures)
            head = (f"  {scan:6s} {family:13s} {name:14s} {res.status:5s}"
                    f"{' seeded' if seeded else ''} {dt:5.1f} s")
            if res.status != "ok":
                print(head + f"  {(res.error or {}).get('code')}: "
                      f"{(res.error or {}).get('message', '')[:90]}", flush=True)
                continue
            parts = []
            for side in SIDES:
                d = row["sides"][side]
                if not d["measured"]:
                    parts.append(f"{side}: NOT measured ({(d['reason'] or '')[:50]})")
                    continue
                parts.append(
                    f"{side}: {d['segmenter']}{' CHECK' if d['check'] else ''} centre "
                    f"{d['centre_err_mm']:.1f} mm{' SWAPPED' if d['swapped'] else ''}, MPD "
                    f"{d['mpd_mm']:.2f} ({d.get('mpd_diff_mm', float('nan')):+.2f}), inner "
                    f"{d['inner_mm']:.2f} ({d.get('inner_diff_mm', float('nan')):+.2f})")
            print(head + "  " + " | ".join(parts), flush=True)
    summarise(rows)
    return 0


def phantom_flags(n: int) -> None:
    """Assess ``n`` random phantoms (U-Net primary) and count the finder check's flags."""
    from c2net.phantom import make_phantom

    flags, sides, finder_used, dists, dmpds, t_check = 0, 0, 0, [], [], []
    for seed in range(1000, 1000 + n):
        ph = make_phantom(seed)
        res = assess(ph.ct, raise_on_error=False)
        if res.status != "ok":
            print(f"  phantom {seed}: {res.status} {(res.error or {}).get('code')}")
            continue
        t_check.append(res.timings_s.get("segmentation_check", float("nan")))
        parts = []
        for side in SIDES:
            sa = res.sides[side]
            if sa.measurement is None:
                parts.append(f"{side}: not measured")
                continue
            sides += 1
            finder_used += int(sa.segmenter == "anatomical_finder")
            chk = sa.segmentation_check
            flags += int(sa.check_segmentation)
            if chk is not None and chk.isthmus_distance_mm is not None:
                dists.append(chk.isthmus_distance_mm)
                dmpds.append(chk.mpd_difference_mm)
            parts.append(f"{side}: {sa.segmenter} {chk.status if chk else None}"
                         + (f" ({chk.isthmus_distance_mm:.1f} mm, dMPD "
                            f"{chk.mpd_difference_mm:.2f})" if chk is not None
                            and chk.isthmus_distance_mm is not None else ""))
        print(f"  phantom {seed}: " + " | ".join(parts), flush=True)
    if sides:
        print(f"phantoms: {sides} sides measured, U-Net mask replaced by the finder's on "
              f"{finder_used}, flagged 'check the segmentation' on {flags} "
              f"({100.0 * flags / sides:.0f} %); finder vs U-Net isthmus distance median "
              f"{np.median(dists) if dists else float('nan'):.1f} mm, |dMPD| median "
              f"{np.median(dmpds) if dmpds else float('nan'):.2f} mm; check time median "
              f"{np.nanmedian(t_check) if t_check else float('nan'):.2f} s")


def summarise(rows) -> None:
    print()
    print("group            runs  sides  measured  centre<=5mm  |dMPD|<=0.5  swapped  unet  "
          "finder  flagged  refused(cut)  time median s  check median s")
    groups = {"native": [r for r in rows if r["family"] == "native"],
              "variants": [r for r in rows if r["family"] != "native" and r["complete"]],
              "cut (refuse)": [r for r in rows if not r["complete"]]}
    for g, rs in groups.items():
        if not rs:
            continue
        sides = [r["sides"][s] for r in rs for s in SIDES if r["complete"]]
        meas = [d for d in sides if d["measured"]]
        near = sum(d["centre_err_mm"] <= 5.0 for d in meas)
        mpd = sum(abs(d.get("mpd_diff_mm", np.inf)) <= 0.5 for d in meas)
        swapped = sum(d.get("swapped", False) for d in meas)
        unet = sum(d["segmenter"] == "unet" for d in meas)
        finder = sum(d["segmenter"] == "anatomical_finder" for d in meas)
        flagged = sum(bool(d["check"]) for d in meas)
        refused = sum(r["status"] != "ok" for r in rs if not r["complete"])
        t = np.median([r["time_s"] for r in rs])
        cs = [r["check_s"] for r in rs if r["check_s"] is not None]
        print(f"{g:15s} {len(rs):5d} {len(sides):6d} {len(meas):9d} {near:12d} {mpd:12d} "
              f"{swapped:8d} {unet:5d} {finder:7d} {flagged:8d} "
              f"{refused:6d}/{sum(not r['complete'] for r in rs):<6d} {t:13.1f} "
              f"{np.median(cs) if cs else float('nan'):15.2f}")
    print("MPD reference: the same tool along the reader's trajectory on the native scan. "
          "Research use only - not a medical device.")


if __name__ == "__main__":
    raise SystemExit(main())
