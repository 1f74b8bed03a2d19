"""Semi-automatic C2 pedicle labels on the shared real CTs (VHM, VHF, CThead), rebuilt from
``../shared/data`` by a fixed recipe (the volumes are never stored in the repository).

Research use only - not a medical device.

Recipe, per scan (:func:`build_real_cases`; the parameters are the module constants):

1. Load the scan (:func:`c2net.load.load_ct`) and locate C2 with the project's own localiser
   (:func:`c2net.locate.locate_c2`): its C2 centre is where the run-time ROI is centred.
2. Cut a canonical 1 mm crop of :data:`CROP_MM` around that centre
   (:func:`c2net.geometry.canonical_crop`): the case's CT for training and evaluation.
3. Inside-bone mask from the scan's *own* levels: soft tissue and cortex read from the
   histogram of the crop's central part (:func:`c2net.pedicle_finder.levels.bone_levels`),
   threshold between them, enclosed marrow filled
   (:func:`c2net.pedicle_finder.solid_bone`) - no fixed HU.
4. The person's part (the "semi" of semi-automatic): the reader's isthmus centre and pedicle
   axis (``reference/reader_c2_isthmus.json``: picked by eye through the middle of the tube
   between canal, foramen transversarium, body and articular pillar). The label is the
   inside-bone voxels within :data:`LABEL_RADIUS_MM` of that axis and within
   :data:`LABEL_HALF_LENGTH_MM` of the isthmus along it, the connected piece that holds the
   axis at the isthmus: the bony bar between the canal and the foramen (both soft, so they
   bound it), cut short before it opens into the body and the pillar - the same extent as the
   phantoms' pedicle labels (ends 6-8 mm from the isthmus).
5. Write ``ct.nii.gz`` (float HU), ``labels.nii.gz`` (2 = left pedicle, 3 = right, as the
   phantoms), ``truth.json`` (C2 centre, per side the reader's isthmus centre and axis, the
   levels used) and a CT ``manifest.csv`` that ``c2net train seg`` reads.

    python -m c2net.training.real_labels --out work_tmp/unet/real [--render DIR]

``--render`` writes per side an axial section through the isthmus, an oblique section along
the axis and one across it, bone window, label outlined, to look at.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .. import DISCLAIMER

#: The three shared scans that have reader references (file names under ``real/``).
REAL_SCANS = {"vhm": "vhm_head_dicom.tgz", "vhf": "vhf_head_dicom.tgz",
              "cthead": "cthead_approxHU.nii.gz"}
#: Canonical 1 mm crop (x, y, z mm) around the located C2 centre: the U-Net ROI (96 x 96 x 48)
#: plus room for the training jitter (6 mm) and the elastic / affine augmentation.
CROP_MM = (120, 120, 72)
#: Central part of the crop (x, y, z mm) whose histogram gives the scan's bone levels.
LEVELS_MM = (64, 64, 40)
#: Label extent along the reader's axis either side of the isthmus (mm): the phantoms'
#: pedicle labels end 6-8 mm from the isthmus.
LABEL_HALF_LENGTH_MM = 7.0
#: Largest distance (mm) of a label voxel from the reader's axis: C2 pedicles are at most
#: ~11 mm wide outside (reader outer widths 7.7-11.1 mm here), so 6 mm holds the whole cross-
#: section; canal and foramen (soft) bound it medially and laterally before that.
LABEL_RADIUS_MM = 6.0
#: The seed of the connected piece: inside-bone voxels within this distance (mm) of the axis
#: and of the isthmus.
SEED_RADIUS_MM = 2.5
LABEL_VALUES = {"left": 2, "right": 3}


def shared_data_dir() -> Path:
    """``../shared/data`` next to the repository, or ``$C2NET_SHARED_DATA``."""
    env = os.environ.get("C2NET_SHARED_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for p in here.parents:
        cand = p.parent / "shared" / "data"
        if (cand / "real").is_dir():
            return cand
    return Path("/work/shared/data")


def reader_reference(data_dir: Path) -> Dict[str, Dict[str, dict]]:
    """scan -> side -> the reader's entry (isthmus centre, axis posterior -> anterior)."""
    rows = json.loads((Path(data_dir) / "reference" / "reader_c2_isthmus.json")
                      .read_text(encoding="utf-8"))
    out: Dict[str, Dict[str, dict]] = {}
    for r in rows:
        out.setdefault(r["scan"], {})[r["side"]] = r
    return out


def axis_coordinates(image: sitk.Image, centre_lps: Sequence[float], axis_lps: Sequence[float]):
    """(t, r) arrays [k, j, i]: each voxel's position along the axis from ``centre`` (mm)
    and its distance from the axis line (mm)."""
    from ..geometry import index_to_lps

    size = image.GetSize()
    kk, jj, ii = np.meshgrid(*(np.arange(n) for n in size[::-1]), indexing="ij")
    ijk = np.stack([ii.ravel(), jj.ravel(), kk.ravel()], axis=1).astype(float)
    d = index_to_lps(image, ijk) - np.asarray(centre_lps, float)
    a = np.asarray(axis_lps, float)
    a = a / np.linalg.norm(a)
    t = d @ a
    r = np.linalg.norm(d - t[:, None] * a[None], axis=1)
    return t.reshape(kk.shape), r.reshape(kk.shape)


def pedicle_label(solid: np.ndarray, image: sitk.Image, centre_lps: Sequence[float],
                  axis_lps: Sequence[float], half_length_mm: float = LABEL_HALF_LENGTH_MM,
                  radius_mm: float = LABEL_RADIUS_MM) -> np.ndarray:
    """Boolean [k, j, i] label of one pedicle (see the module's recipe, step 4)."""
    t, r = axis_coordinates(image, centre_lps, axis_lps)
    cand = solid & (np.abs(t) <= half_length_mm) & (r <= radius_mm)
    seed = cand & (np.abs(t) <= SEED_RADIUS_MM) & (r <= SEED_RADIUS_MM)
    if not seed.any():
        return np.zeros_like(cand)
    lab, _ = ndimage.label(cand)                  # 6-connected: no diagonal leaks
    keep = np.unique(lab[seed])
    keep = keep[keep > 0]
    out = np.isin(lab, keep)
    # marrow pockets below the level inside the bar (per axial section) belong to it
    for k in range(out.shape[0]):
        if out[k].any():
            out[k] = ndimage.binary_fill_holes(out[k]) & (r[k] <= radius_mm) & \
                (np.abs(t[k]) <= half_length_mm)
    return out


def build_real_case(scan: str, data_dir: Path, out_dir: Path) -> dict:
    """Rebuild one scan's case (CT crop, labels, truth) under ``out_dir / scan``."""
    from ..geometry import canonical_crop
    from ..load import load_ct
    from ..locate import locate_c2
    from ..pedicle_finder import solid_bone
    from ..pedicle_finder.levels import bone_levels

    ref = reader_reference(data_dir)[scan]
    image = load_ct(Path(data_dir) / "real" / REAL_SCANS[scan]).image
    loc = locate_c2(image)
    centre = np.asarray(loc.center_lps_mm, float)
    crop = canonical_crop(image, centre, CROP_MM)
    hu = sitk.GetArrayFromImage(crop).astype(np.float32)
    core = tuple(slice((n - m) // 2, (n - m) // 2 + m)
                 for n, m in zip(hu.shape, LEVELS_MM[::-1]))
    levels = bone_levels(hu[core])
    solid = solid_bone(hu, levels)
    labels = np.zeros(hu.shape, np.uint8)
    sides = {}
    for side in ("left", "right"):
        r = ref[side]
        m = pedicle_label(solid, crop, r["isthmus_centre_lps_mm"],
                          r["axis_lps_posterior_to_anterior"])
        labels[m & (labels == 0)] = LABEL_VALUES[side]
        sides[side] = {"isthmus_center_lps_mm": [float(v) for v in r["isthmus_centre_lps_mm"]],
                       "axis_lps": [float(v) for v in r["axis_lps_posterior_to_anterior"]],
                       "label_voxels_1mm": int(m.sum()),
                       "source": "reader isthmus centre and axis + the scan's own bone levels"}
    d = Path(out_dir) / scan
    d.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(crop, str(d / "ct.nii.gz"))
    lab_img = sitk.GetImageFromArray(labels)
    lab_img.CopyInformation(crop)
    sitk.WriteImage(lab_img, str(d / "labels.nii.gz"))
    truth = {"schema": "c2net-real-label-truth", "scan": scan, "file": REAL_SCANS[scan],
             "disclaimer": DISCLAIMER, "c2_center_lps_mm": [float(v) for v in centre],
             "c2_center_source": "c2net.locate.locate_c2 on the native scan",
             "levels_hu": levels.to_dict(), "sides": sides,
             "recipe": {"crop_mm": list(CROP_MM), "levels_mm": list(LEVELS_MM),
                        "label_half_length_mm": LABEL_HALF_LENGTH_MM,
                        "label_radius_mm": LABEL_RADIUS_MM, "seed_radius_mm": SEED_RADIUS_MM,
                        "module": "c2net.training.real_labels"}}
    (d / "truth.json").write_text(json.dumps(truth, indent=1), encoding="utf-8")
    return {"patient_id": f"REAL_{scan}", "ct": f"{scan}/ct.nii.gz",
            "labels": f"{scan}/labels.nii.gz", "truth": f"{scan}/truth.json",
            "mpd_left_mm": "", "mpd_right_mm": "", "scan": scan,
            "voxels_left": sides["left"]["label_voxels_1mm"],
            "voxels_right": sides["right"]["label_voxels_1mm"]}


def write_manifest(rows: List[dict], path: Path) -> None:
    cols = ["patient_id", "ct", "labels", "truth", "mpd_left_mm", "mpd_right_mm", "scan"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)


def build_real_cases(out_dir: Path, data_dir: Optional[Path] = None,
                     scans: Sequence[str] = tuple(REAL_SCANS)) -> List[dict]:
    """All scans' cases + ``manifest.csv`` (all) and ``manifest_without_<scan>.csv`` (the
    leave-one-real-scan-out training sets) under ``out_dir``."""
    data_dir = Path(data_dir or shared_data_dir())
    if not (data_dir / "real").is_dir():
        from ..errors import InputError

        raise InputError(f"the shared real CT folder {data_dir / 'real'} does not exist",
                         "Set C2NET_SHARED_DATA to the folder holding real/ and reference/.")
    rows = [build_real_case(s, data_dir, out_dir) for s in scans]
    write_manifest(rows, Path(out_dir) / "manifest.csv")
    for s in scans:
        write_manifest([r for r in rows if r["scan"] != s],
                       Path(out_dir) / f"manifest_without_{s}.csv")
        write_manifest([r for r in rows if r["scan"] == s], Path(out_dir) / f"manifest_{s}.csv")
    return rows


# ----------------------------------------------------------------------------- pictures
def _oblique(ct: sitk.Image, centre, u, v, half_mm: float = 20.0, step: float = 0.25,
             interpolator=sitk.sitkLinear, default: float = -1024.0) -> np.ndarray:
    n = int(round(2 * half_mm / step)) + 1
    s = (np.arange(n) - (n - 1) / 2) * step
    uu, vv = np.meshgrid(s, s, indexing="ij")
    pts = (np.asarray(centre, float)[None, None] + uu[..., None] * np.asarray(v)[None, None]
           + vv[..., None] * np.asarray(u)[None, None])
    from ..geometry import lps_to_index

    a = sitk.GetArrayViewFromImage(ct)
    idx = lps_to_index(ct, pts.reshape(-1, 3))
    order = 1 if interpolator == sitk.sitkLinear else 0
    arr = ndimage.map_coordinates(np.asarray(a, np.float32), idx[:, ::-1].T, order=order,
                                  cval=default)
    return arr.reshape(n, n)


def _grey(hu: np.ndarray) -> np.ndarray:
    return (np.clip((hu + 200.0) / 2000.0, 0, 1) * 255).astype(np.uint8)


def render_case(case_dir: Path, out_dir: Path) -> List[Path]:
    """Axial, along-axis and across-axis sections per side with the label outlined (PNGs)."""
    from PIL import Image, ImageDraw

    case_dir, out_dir = Path(case_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    truth = json.loads((case_dir / "truth.json").read_text(encoding="utf-8"))
    ct = sitk.ReadImage(str(case_dir / "ct.nii.gz"), sitk.sitkFloat32)
    lab = sitk.ReadImage(str(case_dir / "labels.nii.gz"))
    written = []
    for side, st in truth["sides"].items():
        c = np.asarray(st["isthmus_center_lps_mm"], float)
        a = np.asarray(st["axis_lps"], float)
        a /= np.linalg.norm(a)
        up = np.array([0.0, 0.0, 1.0])
        across = np.cross(a, up)
        across /= np.linalg.norm(across)
        across_up = np.cross(across, a)
        views = {"axial": (np.array([1.0, 0, 0]), np.array([0, 1.0, 0])),
                 "along": (a, across_up), "across": (across, across_up)}
        tiles = []
        for name, (u, v) in views.items():
            hu = _oblique(ct, c, u, v)
            m = _oblique(lab, c, u, v, interpolator=sitk.sitkNearestNeighbor, default=0)
            g = np.stack([_grey(hu)] * 3, -1)
            mine = m == LABEL_VALUES[side]
            edge = mine & ~ndimage.binary_erosion(mine)
            other = (m > 0) & ~mine
            g[edge] = (255, 60, 60)
            g[other & ~ndimage.binary_erosion(other)] = (60, 160, 255)
            im = Image.fromarray(g).resize((320, 320), Image.NEAREST)
            ImageDraw.Draw(im).text((4, 4), f"{truth['scan']} {side} {name}", fill=(255, 255, 0))
            tiles.append(im)
        sheet = Image.new("RGB", (960, 336), (0, 0, 0))
        for i, im in enumerate(tiles):
            sheet.paste(im, (320 * i, 0))
        ImageDraw.Draw(sheet).text((4, 322), DISCLAIMER.replace("\u2014", "-")
                                   + "  (40 mm fields; red: this side's label)",
                                   fill=(200, 200, 200))
        p = out_dir / f"{truth['scan']}_{side}.png"
        sheet.save(p)
        written.append(p)
    return written


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="Rebuild the semi-automatic pedicle labels of the "
                                 "shared real CTs. " + DISCLAIMER)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--data", type=Path, default=None, help="shared data folder")
    ap.add_argument("--scans", nargs="+", default=list(REAL_SCANS), choices=list(REAL_SCANS))
    ap.add_argument("--render", type=Path, default=None, help="write PNG sections here")
    a = ap.parse_args(argv)
    rows = build_real_cases(a.out, a.data, a.scans)
    for r in rows:
        print(f"{r['scan']}: label voxels left {r['voxels_left']} right {r['voxels_right']}")
        if a.render:
            for p in render_case(a.out / r["scan"], a.render):
                print("  ", p)
    print(DISCLAIMER)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
