"""Benchmark the C2 localiser on variants of the real scans in ../shared/data/real.

    python benchmarks/bench_locate_real.py [--data ../shared/data] [--scans vhm vhf cthead]
                                           [--families rot_dir rot_resampled crop slices noise]

For every real scan with a reader reference (VHM, VHF, CThead) the localiser runs on:

* ``rot_dir``: rotations about each patient axis (x: flexion/extension, y: sideways tilt,
  z: a turned head) by -30..+30 degrees in 10 degree steps, about the reader's isthmus midpoint,
  as the same voxels with a rotated direction matrix and origin;
* ``rot_resampled``: the same rotations resampled onto an axis-aligned grid (the scan's own
  spacing) over a box around the neck;
* ``crop``: C1-C4 only, from the vertex down to C3/C4, and C2 cut at its top (through the
  dens) or its bottom (through the body) - the last two must be refused;
* ``slices``: resampled to 0.5, 0.8, 1.5 and 2 mm slices;
* ``noise``: Gaussian noise of 20, 30 and 40 HU added.

The reference for each variant is the reader's isthmus midpoint (the mean of the left and
right isthmus centres in ``reference/reader_c2_isthmus.json``) carried through the same
transform; the native answer is carried likewise. Printed per family: variants, answers
found, within 5 mm of the native answer, within 20 mm of the reader's midpoint, wrong level
(an answer more than 12 mm from the reference along the spine: half the 20-25 mm spacing of
C1, C2 and C3 centres), false refusals (C2 complete but refused; of which "not in the field of
view"), and for cut crops whether they were refused. Research use only - not a medical device.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from c2net.errors import C2NetError
from c2net.load import load_ct
from c2net.locate import locate_c2

SCANS = {"vhm": "vhm_head_dicom.tgz", "vhf": "vhf_head_dicom.tgz",
         "cthead": "cthead_approxHU.nii.gz"}
ANGLES = (-30, -20, -10, 10, 20, 30)
AXES = {"x": np.array([1.0, 0.0, 0.0]), "y": np.array([0.0, 1.0, 0.0]),
        "z": np.array([0.0, 0.0, 1.0])}
WRONG_LEVEL_MM = 12.0


def default_data() -> Path:
    here = Path(__file__).resolve().parents[2] / "shared" / "data"
    return here if here.exists() else Path("/work/shared/data")


def rotation(axis: np.ndarray, deg: float) -> np.ndarray:
    t = np.radians(deg)
    k = axis / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(t) * kx + (1 - np.cos(t)) * kx @ kx


def rotate_direction(image: sitk.Image, r: np.ndarray, centre: np.ndarray) -> sitk.Image:
    """The same voxels, posed by ``r`` about ``centre``: x -> centre + r (x - centre)."""
    out = sitk.Image(image)
    d = np.asarray(image.GetDirection(), float).reshape(3, 3)
    o = np.asarray(image.GetOrigin(), float)
    out.SetDirection((r @ d).ravel().tolist())
    out.SetOrigin((centre + r @ (o - centre)).tolist())
    return out


def resample_box(image: sitk.Image, centre: np.ndarray, spacing, half=(90.0, 90.0),
                 below=90.0, above=110.0) -> sitk.Image:
    """Resample onto an axis-aligned grid over a box around ``centre`` (LPS mm)."""
    lo = centre - np.array([half[0], half[1], below])
    hi = centre + np.array([half[0], half[1], above])
    spacing = np.asarray(spacing, float)
    size = np.ceil((hi - lo) / spacing).astype(int)
    return sitk.Resample(image, [int(s) for s in size], sitk.Transform(), sitk.sitkLinear,
                         lo.tolist(), spacing.tolist(), np.eye(3).ravel().tolist(), -1024.0,
                         sitk.sitkFloat32)


def crop_z(image: sitk.Image, z_lo: float | None, z_hi: float | None) -> sitk.Image:
    """Keep the slices whose LPS z lies in [z_lo, z_hi] (axial stacks)."""
    n = image.GetSize()[2]
    zs = np.array([image.TransformContinuousIndexToPhysicalPoint((0, 0, float(k)))[2]
                   for k in range(n)])
    keep = np.nonzero(((zs >= z_lo) if z_lo is not None else True)
                      & ((zs <= z_hi) if z_hi is not None else True))[0]
    return image[:, :, int(keep[0]):int(keep[-1]) + 1]


def resample_slices(image: sitk.Image, dz: float) -> sitk.Image:
    sp = list(image.GetSpacing())
    size = list(image.GetSize())
    new = sp[:2] + [dz]
    nsize = size[:2] + [int(np.floor((size[2] - 1) * sp[2] / dz)) + 1]
    return sitk.Resample(image, nsize, sitk.Transform(), sitk.sitkLinear, image.GetOrigin(), new,
                         image.GetDirection(), -1024.0, sitk.sitkFloat32)


def add_noise(image: sitk.Image, sigma: float, seed: int) -> sitk.Image:
    arr = sitk.GetArrayFromImage(image).astype(np.float32)
    arr += np.random.default_rng(seed).normal(0.0, sigma, arr.shape).astype(np.float32)
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(image)
    return out


def variants(image: sitk.Image, ref: np.ndarray):
    """(family, name, image, transform of points, C2 complete, up axis) for every variant."""
    def ident(p):
        return np.asarray(p, float)

    up = np.array([0.0, 0.0, 1.0])
    for ax, v in AXES.items():
        for deg in ANGLES:
            r = rotation(v, deg)
            tf = (lambda p, r=r: ref + r @ (np.asarray(p, float) - ref))
            posed = rotate_direction(image, r, ref)
            yield "rot_dir", f"{ax}{deg:+d}", posed, tf, True, r @ up
            yield ("rot_resampled", f"{ax}{deg:+d}",
                   lambda posed=posed: resample_box(posed, ref, image.GetSpacing()), tf, True, r @ up)
    z = ref[2]
    yield "crop", "C1-C4", lambda: crop_z(image, z - 50.0, z + 45.0), ident, True, up
    yield "crop", "vertex-C3", lambda: crop_z(image, z - 45.0, None), ident, True, up
    yield "crop", "C2 cut top", lambda: crop_z(image, z - 60.0, z + 8.0), ident, False, up
    yield "crop", "C2 cut bottom", lambda: crop_z(image, z - 4.0, None), ident, False, up
    for dz in (0.5, 0.8, 1.5, 2.0):
        yield "slices", f"{dz} mm", lambda dz=dz: resample_slices(image, dz), ident, True, up
    for i, sigma in enumerate((20.0, 30.0, 40.0)):
        yield "noise", f"{sigma:.0f} HU", lambda s=sigma, i=i: add_noise(image, s, 7 + i), ident, True, up


def run(data: Path, scans, families, args_why: bool = False) -> None:
    refs = json.loads((data / "reference" / "reader_c2_isthmus.json").read_text())
    rows = defaultdict(lambda: defaultdict(int))
    lines = []
    times = []
    for scan in scans:
        image = load_ct(data / "real" / SCANS[scan]).image
        ref = np.mean([r["isthmus_centre_lps_mm"] for r in refs if r["scan"] == scan], axis=0)
        native = np.asarray(locate_c2(image).center_lps_mm)
        print(f"{scan}: native answer {np.round(native, 1).tolist()}, "
              f"{np.linalg.norm(native - ref):.1f} mm from the reader's midpoint", flush=True)
        for family, name, img, tf, complete, up in variants(image, ref):
            if family not in families:
                continue
            img = img() if callable(img) else img
            t0 = time.perf_counter()
            try:
                loc = locate_c2(img)
                answer, code = np.asarray(loc.center_lps_mm), None
            except C2NetError as exc:
                answer, code = None, exc.code
                why = str(exc).split(":", 1)[-1].strip()[:110] if args_why else ""
                code = f"{code}: {why}" if why else code
            times.append(time.perf_counter() - t0)
            row = rows[family]
            row["n"] += 1
            r_ref, r_nat = tf(ref), tf(native)
            if not complete:
                row["cut"] += 1
                row["cut refused"] += int(answer is None)
                status = f"refused ({code})" if answer is None else "ANSWERED a cut C2"
            elif answer is None:
                row["false refusal"] += 1
                row["false not-in-fov"] += int(code.split(":")[0] in ("c2_not_in_fov",
                                                                      "c2_partly_in_fov"))
                status = f"REFUSED ({code})"
            else:
                d_ref = float(np.linalg.norm(answer - r_ref))
                d_nat = float(np.linalg.norm(answer - r_nat))
                along = abs(float(np.dot(answer - r_ref, up)))
                row["found"] += 1
                row["within 5 mm of native"] += int(d_nat <= 5.0)
                row["within 20 mm of reader"] += int(d_ref <= 20.0)
                row["wrong level"] += int(along > WRONG_LEVEL_MM)
                status = (f"found: {d_nat:.1f} mm from native, {d_ref:.1f} mm from reader, "
                          f"{along:.1f} along the spine, confidence {loc.confidence:.2f}")
            lines.append(f"  {scan:6s} {family:13s} {name:14s} {status}")
            print(lines[-1], flush=True)
    cols = ["n", "found", "within 5 mm of native", "within 20 mm of reader", "wrong level",
            "false refusal", "false not-in-fov", "cut", "cut refused"]
    print()
    print(f"{'family':14s}" + "".join(f"{c:>24s}" for c in cols))
    total = defaultdict(int)
    for family in families:
        row = rows.get(family)
        if not row:
            continue
        print(f"{family:14s}" + "".join(f"{row[c]:24d}" for c in cols))
        for c in cols:
            total[c] += row[c]
    print(f"{'all':14s}" + "".join(f"{total[c]:24d}" for c in cols))
    complete = total["n"] - total["cut"]
    if complete:
        print(f"complete-C2 variants: {100.0 * total['within 20 mm of reader'] / complete:.1f} % within "
              f"20 mm of the reader's midpoint, {100.0 * total['within 5 mm of native'] / complete:.1f} % "
              f"within 5 mm of the native answer; wrong level {total['wrong level']}, false "
              f"'not in the field of view' {total['false not-in-fov']}; cut crops refused "
              f"{total['cut refused']}/{total['cut']}")
    if times:
        print(f"localisation time: median {np.median(times):.2f} s, max {np.max(times):.2f} s")
    print("Research use only - not a medical device.")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=default_data())
    ap.add_argument("--scans", nargs="+", default=list(SCANS), choices=list(SCANS))
    ap.add_argument("--families", nargs="+",
                    default=["rot_dir", "rot_resampled", "crop", "slices", "noise"])
    ap.add_argument("--why", action="store_true", help="print each refusal's reason")
    a = ap.parse_args()
    if not (a.data / "real").exists():
        raise SystemExit(f"no real data under {a.data} (give --data)")
    run(a.data, a.scans, a.families, a.why)
