"""Real bone against a careful reader (issue #13): VHM, VHF and CThead, both C2 isthmi.

Research use only - not a medical device.

For each side of ``../shared/data/reference/reader_c2_isthmus.json`` the reader's own axis
through his isthmus centre is turned into a trajectory (entry 10 mm posterior, target 10 mm
anterior) and measured with :func:`c2net.measure.measure_both` in trajectory mode (no mask).
Printed per side: the tool's inner / outer transverse widths, MPD, isthmus centre and axis
beside the reader's. Then the **mask-perturbation spread**: the same side measured from rough
masks (bone > 200 HU inside a cylinder of radius 4-7 mm around the reader's axis, holes
filled; that mask dilated / eroded by 1 mm; the cylinder tilted by 10 degrees or shifted by
2 mm), reported as the max |change| of MPD and isthmus position against the nominal rough mask
(the 6 mm cylinder, the issue's definition) and against the trajectory run.

Pictures of each narrowest section (CT resampled on the section plane, the blur-corrected
outer outline, the reader's half-way outer and inner outlines, the MPD line and the
transverse chord) go to ``--out`` (default /tmp/bench_measure_real).

    .venv/bin/python benchmarks/bench_measure_real.py [--no-perturb] [--scans vhf,vhm,cthead]

Skips (exit 0) when ../shared/data is absent (override with C2NET_SHARED_DATA).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from c2net.load import load_ct
from c2net.measure import measure_both
from c2net.measure import pedicle as _ped
from c2net.measure.sampling import DIRS2, sample
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("C2NET_SHARED_DATA", REPO.parent / "shared" / "data"))
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data")
FILES = {"vhm": "vhm_head_dicom.tgz", "vhf": "vhf_head_dicom.tgz", "cthead": "cthead_approxHU.nii.gz"}
HALF_TRAJECTORY_MM = 10.0
BONE_HU = 200.0


def unit(v):
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def rotate_towards(axis, angle_deg, rng):
    """``axis`` tilted by ``angle_deg`` in a random direction."""
    a = unit(axis)
    r = unit(np.cross(a, rng.normal(size=3)))
    t = np.radians(angle_deg)
    return unit(np.cos(t) * a + np.sin(t) * r)


def cylinder_mask(ct: sitk.Image, centre, axis, radius_mm, half_len_mm=HALF_TRAJECTORY_MM - 1.0):
    """Bone (> BONE_HU) inside a cylinder around the line, holes filled, largest component,
    on a 0.5 mm canonical grid around it (the kind of mask a quick manual paint gives)."""
    c = np.asarray(centre, float)
    ext = half_len_mm + radius_mm + 2.0
    size = int(np.ceil(2 * ext / 0.5))
    ref = sitk.Image([size] * 3, sitk.sitkUInt8)
    ref.SetSpacing([0.5] * 3)
    ref.SetOrigin((c - ext).tolist())
    hu = sitk.Resample(ct, ref, sitk.Transform(), sitk.sitkLinear, -1000.0, sitk.sitkFloat32)
    arr = sitk.GetArrayFromImage(hu)
    k, j, i = np.meshgrid(*[np.arange(size)] * 3, indexing="ij")
    p = np.stack([i, j, k], axis=-1) * 0.5 + (c - ext)
    d = p - c
    t = d @ axis
    rr = np.linalg.norm(d - t[..., None] * axis, axis=-1)
    inside = (np.abs(t) <= half_len_mm) & (rr <= radius_mm)
    m = inside & (arr > BONE_HU)
    m = ndimage.binary_fill_holes(m) & inside
    for z in range(m.shape[0]):
        m[z] = ndimage.binary_fill_holes(m[z]) & inside[z]
    lab, n = ndimage.label(m)
    if n > 1:
        m = lab == (int(np.argmax(ndimage.sum(m, lab, range(1, n + 1)))) + 1)
    img = sitk.GetImageFromArray(m.astype(np.uint8))
    img.CopyInformation(ref)
    return img


def morph(mask: sitk.Image, mm: float) -> sitk.Image:
    r = int(round(abs(mm) / mask.GetSpacing()[0]))
    f = sitk.BinaryDilate if mm > 0 else sitk.BinaryErode
    return f(mask, [r] * 3)


def _panel(a, ct, arr, sec, u, v, axis, m, title, ext=9.0):
    ax = np.arange(-ext, ext + 1e-9, 0.1)
    gx, gy = np.meshgrid(ax, ax)
    pts = sec.center + gx[..., None] * u + gy[..., None] * v
    # the reader's 1 mm thin-slab average
    img = np.mean([sample(ct, arr, pts + o * axis, -1000.0) for o in (-0.5, -0.25, 0.0, 0.25, 0.5)], axis=0)
    a.imshow(img, cmap="gray", vmin=-200, vmax=1400, extent=(-ext, ext, -ext, ext), origin="lower")
    r_in = getattr(sec, "r_in_canal", None)
    r_in = sec.r_in_half if r_in is None else r_in
    o_in = np.zeros(2)
    if getattr(sec, "r_canal_core", None) is not None:
        r_in, o_in = sec.r_canal_core, sec.canal_origin   # the canal read from its own core
        a.plot([o_in[0]], [o_in[1]], "c+", ms=6)
    for r, col, lab, o in ((sec.r_out, "lime", "outer (blur-corrected)", 0.0),
                           (sec.r_out_half, "yellow", "outer half-way", 0.0),
                           (r_in, "cyan", "inner half-way (canal)", o_in)):
        p = o + DIRS2 * r[:, None]
        p = np.vstack([p, p[:1]])
        a.plot(p[:, 0], p[:, 1], color=col, lw=1, label=lab)
    if getattr(sec, "r_wall_core", None) is not None:
        # the canal wall's outer edges on the canal's own rays (the outer transverse width)
        p = o_in + DIRS2 * sec.r_wall_core[:, None]
        p = np.vstack([p, p[:1]])
        a.plot(p[:, 0], p[:, 1], color="orange", lw=0.8, ls="--", label="canal wall, outer edge")
    e = np.array([[(np.subtract(q, sec.center)) @ u, (np.subtract(q, sec.center)) @ v] for q in m.mpd_endpoints_lps_mm])
    a.plot(e[:, 0], e[:, 1], "r-", lw=1.5, label=f"MPD {m.mpd_mm:.2f} (its section)")
    td = np.asarray(m.transverse_direction_lps)
    t2 = np.array([td @ u, td @ v])
    a.plot([-t2[0] * 6, t2[0] * 6], [-t2[1] * 6, t2[1] * 6], "m--", lw=0.8, label="transverse")
    a.set_title(title, fontsize=7)
    a.legend(fontsize=5, loc="lower right")
    a.set_xlabel("u (mm)")
    a.set_ylabel("v (mm, towards superior)")
    a.text(-ext + 0.3, ext - 1.0, "research use only - not a medical device", color="w", fontsize=6)


def picture(ct, m, ctx, path, ref):
    """The MPD's section and the section where the transverse widths were read (the canal's
    narrowest point), each a 1 mm slab with the outlines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    arr = sitk.GetArrayViewFromImage(ct).astype(np.float32)
    sec = ctx.near[len(ctx.near) // 2]
    tn = getattr(ctx, "transverse_near", None) or ctx.near
    sec_t = tn[len(tn) // 2]
    fig, axs = plt.subplots(1, 2, figsize=(10, 5))
    _panel(axs[0], ct, arr, sec, ctx.u, ctx.v, ctx.axis, m,
           f"{path.stem}: MPD section t={sec.t_mm:.2f} mm, MPD {m.mpd_mm:.2f}")
    _panel(axs[1], ct, arr, sec_t, ctx.u, ctx.v, ctx.axis, m,
           f"transverse section t={sec_t.t_mm:.2f}: inner T {m.inner_width_transverse_mm:.2f} "
           f"(reader {ref['inner_width_mm']:.2f}), outer T {m.outer_width_transverse_mm:.2f} "
           f"({ref['outer_width_transverse_mm']:.2f})")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scans", default="vhf,vhm,cthead")
    ap.add_argument("--no-perturb", action="store_true", help="skip the mask-perturbation spread")
    ap.add_argument("--out", default="/tmp/bench_measure_real")
    ap.add_argument("--verbose", action="store_true", help="print every mask perturbation")
    args = ap.parse_args()
    ref_path = SHARED / "reference" / "reader_c2_isthmus.json"
    if not ref_path.is_file():
        print(f"skipped: {ref_path} is absent")
        return 0
    refs = json.loads(ref_path.read_text())
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    print("research use only - not a medical device")
    print(f"{'scan/side':<14}{'innerT':>8}{'reader':>8}{'d':>7}{'outerT':>8}{'reader':>8}{'d':>7}"
          f"{'MPD':>7}{'ctr d':>7}{'axis°':>7}{'canal':>7}{'s':>6}")
    for scan in args.scans.split(","):
        path = SHARED / "real" / FILES[scan]
        if not path.exists():
            print(f"{scan}: absent, skipped")
            continue
        ct = load_ct(path).image
        sides = {r["side"]: r for r in refs if r["scan"] == scan}
        traj = {}
        for side, r in sides.items():
            c, a = np.asarray(r["isthmus_centre_lps_mm"]), unit(r["axis_lps_posterior_to_anterior"])
            traj[side] = (c - HALF_TRAJECTORY_MM * a, c + HALF_TRAJECTORY_MM * a)
        t0 = time.perf_counter()
        res = measure_both(ct, trajectories=traj)
        dt = (time.perf_counter() - t0) / 2
        for side, r in sides.items():
            m = res[side]
            # the pictures need the sections: measure again with the private entry point
            _, ctx = _ped._measure_traj(ct, traj[side][0], traj[side][1], side, _ped.SECTION_STEP_MM, None)
            _ped._set_transverse(m, ctx, m.transverse_direction_lps)
            picture(ct, m, ctx, out_dir / f"{scan}_{side}.png", r)
            ctr = float(np.linalg.norm(np.subtract(m.isthmus_center_lps_mm, r["isthmus_centre_lps_mm"])))
            ax = float(np.degrees(np.arccos(min(1.0, abs(float(np.dot(m.axis_lps, unit(r["axis_lps_posterior_to_anterior"]))))))))
            di = m.inner_width_transverse_mm - r["inner_width_mm"]
            do = m.outer_width_transverse_mm - r["outer_width_transverse_mm"]
            row = dict(scan=scan, side=side, inner=m.inner_width_transverse_mm, reader_inner=r["inner_width_mm"],
                       outer=m.outer_width_transverse_mm, reader_outer=r["outer_width_transverse_mm"],
                       mpd=m.mpd_mm, unc=m.mpd_uncertainty_mm, ctr=ctr, axis=ax,
                       tol_inner=r["suggested_agreement_tolerance_inner_mm"],
                       outer_reliable=r["outer_width_reliable"], canal=not m.no_medullary_canal,
                       centre=list(m.isthmus_center_lps_mm), reader_centre=r["isthmus_centre_lps_mm"],
                       axis_lps=list(m.axis_lps), reader_axis=r["axis_lps_posterior_to_anterior"],
                       cortex_hu=m.cortical_density_hu)
            rows.append(row)
            print(f"{scan + ' ' + side:<14}{row['inner']:>8.2f}{row['reader_inner']:>8.2f}{di:>+7.2f}"
                  f"{row['outer']:>8.2f}{row['reader_outer']:>8.2f}{do:>+7.2f}{m.mpd_mm:>7.2f}"
                  f"{ctr:>7.2f}{ax:>7.1f}{'yes' if row['canal'] else 'NO':>7}{dt:>6.1f}")
            print(f"{'':<14}centre {np.round(m.isthmus_center_lps_mm, 1)} reader {np.round(r['isthmus_centre_lps_mm'], 1)}; "
                  f"axis {np.round(m.axis_lps, 3)} reader {np.round(r['axis_lps_posterior_to_anterior'], 3)}; "
                  f"cortex {m.cortical_density_hu:.0f} HU")
            if args.no_perturb:
                continue
            c, a = np.asarray(r["isthmus_centre_lps_mm"]), unit(r["axis_lps_posterior_to_anterior"])
            # tilt and shift directions drawn per side: the same whichever --scans are run
            rng = np.random.default_rng(zlib.crc32(f"{scan}/{side}".encode()))
            variants = {f"cyl r{rad}": (c, a, rad, 0.0) for rad in (4, 5, 6, 7)}
            variants.update({"dilate 1": (c, a, 6, 1.0), "erode 1": (c, a, 6, -1.0),
                             "tilt 10": (c, rotate_towards(a, 10.0, rng), 6, 0.0),
                             "shift 2": (c + 2.0 * unit(np.cross(a, rng.normal(size=3))), a, 6, 0.0)})
            fails, got = [], {}
            for name, (cc, aa, rad, mm) in variants.items():
                mk = cylinder_mask(ct, cc, aa, rad)
                if mm:
                    mk = morph(mk, mm)
                try:
                    got[name] = _ped.measure_pedicle(ct, mk, side)
                except Exception as exc:  # noqa: BLE001 - a benchmark reports every failure
                    fails.append(f"{name}: {type(exc).__name__}")
            # the spread: against the nominal rough mask (bone in a 6 mm cylinder
            # around the reader's axis); also against the trajectory run
            for ref_name, ref_m in (("cyl r6", got.get("cyl r6")), ("trajectory", m)):
                if ref_m is None:
                    continue
                d_mpd = [abs(g.mpd_mm - ref_m.mpd_mm) for g in got.values()]
                d_pos = [float(np.linalg.norm(np.subtract(g.isthmus_center_lps_mm, ref_m.isthmus_center_lps_mm)))
                         for g in got.values()]
                key = "mask" if ref_name == "cyl r6" else "traj"
                row[f"perturb_mpd_max_{key}"] = max(d_mpd) if d_mpd else None
                row[f"perturb_pos_max_{key}"] = max(d_pos) if d_pos else None
                print(f"{'':<14}mask perturbations ({len(got)}/{len(variants)}) vs {ref_name}: max |dMPD| "
                      f"{max(d_mpd) if d_mpd else float('nan'):.2f} mm, max |d isthmus| "
                      f"{max(d_pos) if d_pos else float('nan'):.2f} mm" + (f"; failed: {fails}" if fails else ""))
            if args.verbose:
                for name, g in got.items():
                    dp = np.subtract(g.isthmus_center_lps_mm, m.isthmus_center_lps_mm)
                    ang = np.degrees(np.arccos(min(1.0, abs(float(np.dot(g.axis_lps, m.axis_lps))))))
                    print(f"{'':<16}{name:<10} MPD {g.mpd_mm:6.2f} ({g.mpd_mm - m.mpd_mm:+.2f} vs trajectory) "
                          f"isthmus moved {np.linalg.norm(dp):5.2f} mm ({float(dp @ np.asarray(m.axis_lps)):+.2f} "
                          f"along the axis), axis {ang:.1f} deg off, inner T {g.inner_width_transverse_mm:.2f}")
    if rows:
        di = np.array([abs(r["inner"] - r["reader_inner"]) for r in rows])
        do = np.array([abs(r["outer"] - r["reader_outer"]) for r in rows])
        ok_i = np.mean([abs(r["inner"] - r["reader_inner"]) <= r["tol_inner"] for r in rows])
        ok_o = np.mean([abs(r["outer"] - r["reader_outer"]) <= 1.0 for r in rows])
        ok_c = np.mean([r["ctr"] <= 3.0 for r in rows])
        print(f"inner: MAE {di.mean():.2f} mm, within tolerance {ok_i:.0%}; outer: MAE {do.mean():.2f} mm, "
              f"within 1 mm {ok_o:.0%}; centre within 3 mm {ok_c:.0%}")
        (out_dir / "results.json").write_text(json.dumps(rows, indent=1, default=float))
        print(f"pictures and results.json in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
