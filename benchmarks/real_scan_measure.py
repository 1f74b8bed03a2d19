"""MPD measurement study on two real CT scans without labels (issue #3, closing report).

Research use only - not a medical device.

For the Visible Human Male head/neck CT and the CThead cadaver CT in ``../shared/data/real``
(outside the repository; never copied into it) this script

1. makes one pedicle mask per side **semi-automatically**: a short cylinder along the pedicle,
   between the vertebral body and the lamina, whose two end points and radius were chosen by
   a person looking at axial, sagittal and oblique slices (constants in :data:`PEDICLES`); the
   mask is the bone (> :data:`BONE_HU` HU) inside the cylinder on a 1 mm canonical grid, small
   holes filled slice by slice, largest connected component kept;
2. measures each side with the project's own :func:`c2net.measure.measure_pedicle` on the
   original CT grid and prints MPD, inner width, height, medial/cranial angles, uncertainty;
3. renders per side the narrowest cross-section (plane perpendicular to the measured axis
   through ``isthmus_center_lps_mm``) with the MPD line and the mask outline, and an axial
   slice through the isthmus, as PNGs under ``--out``; writes ``measurements.json`` there.

There is no ground truth for these scans: the numbers are a plausibility check only (see
``docs/REAL_SCANS.md``).

    .venv/bin/python benchmarks/real_scan_measure.py --out /tmp/real_scans

Skips with a message (exit status 0) when the shared data folder is absent. Override its
location with the ``C2NET_SHARED_DATA`` environment variable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import SimpleITK as sitk
from c2net import geometry
from c2net.load import load_ct
from c2net.measure import measure_pedicle
from c2net.results import PedicleMeasurement
from PIL import Image, ImageDraw
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("C2NET_SHARED_DATA", REPO.parent / "shared" / "data")) / "real"
SCANS = {
    "vhm": "vhm_head_dicom.tgz",
    "cthead": "cthead_approxHU.nii.gz",
}
DISCLAIMER = "Research use only - not a medical device"

#: Bone threshold (HU) for the mask inside the pedicle cylinder. Cancellous bone of both
#: scans reads ~250-450 HU, cortex 700-1300 HU, soft tissue < 100 HU.
BONE_HU = 250.0
#: Holes (per axial slice, inside the cylinder) up to this area are filled: marrow pockets
#: below the threshold, but not the foramen transversarium (~20-30 mm2) or the canal.
MAX_HOLE_MM2 = 12.0
#: Margin of the mask grid around the cylinder (voxels of 1 mm), so the mask never touches it.
GRID_MARGIN_MM = 4.0


@dataclass(frozen=True)
class PedicleRegion:
    """Short cylinder along one pedicle, in LPS millimetres (x -> patient left)."""

    posterior_lps_mm: Tuple[float, float, float]   # end at the lamina / lateral mass
    anterior_lps_mm: Tuple[float, float, float]    # end at the vertebral body
    radius_mm: float


# How the regions were chosen (looking at PNGs of the canonical 1 mm volume and HU profiles):
# - Axial slices every 1-2 mm through C2 (bone window) show the closed ring of C2 with the
#   canal, the vertebral body in front and the foramina transversaria lateral to the
#   pedicles. The pedicle is the bony bar between the canal's lateral wall and the foramen
#   transversarium; its centre was read off at the level where the ring is closed, from HU
#   rows across the bar (VHM: canal x 238-263, bars x 227-237 and 263-273 at y 258-262,
#   z 1078; CThead, native slices z -172/-174: canal x 98-122, foramina near x 90 and 127).
#   Centres: VHM (233, 258.5, 1078) / (268, 258.5, 1078); CThead (93, 131, -172) /
#   (124, 126, -172) (the CThead left centre was moved 1 mm medially and 2 mm anteriorly
#   from the first guess, which put the narrowest section at the mask's anterior end).
# - Direction: medial ~30 deg and cranial ~25-28 deg (the usual C2 pedicle course), checked
#   on oblique slices along the trial axis. measure_pedicle() refits the axis from the mask;
#   over trial axes medial 15-45 deg x cranial 15-45 deg the MPD changed by < 0.7 mm (VHM
#   right 8.1-8.8 mm; CThead 6.9-8.2 mm).
# - Ends: 7-8.6 mm either side of the centre, so the isthmus lies inside the mask. Radius:
#   7 mm (VHM) / 6 mm (CThead), large enough to hold the whole bony cross-section of the
#   isthmus; the VHM results change < 0.4 mm for radii 5-8 mm.
PEDICLES: Dict[Tuple[str, str], PedicleRegion] = {
    ("vhm", "right"): PedicleRegion((229.0, 265.0, 1074.0), (237.0, 252.0, 1082.0), 7.0),
    ("vhm", "left"): PedicleRegion((272.0, 265.0, 1074.0), (264.0, 252.0, 1082.0), 7.0),
    ("cthead", "right"): PedicleRegion((89.8, 136.5, -175.0), (96.2, 125.5, -169.0), 6.0),
    ("cthead", "left"): PedicleRegion((127.2, 131.5, -175.0), (120.8, 120.5, -169.0), 6.0),
}


# --------------------------------------------------------------------------------------
# mask


def region_grid(region: PedicleRegion) -> sitk.Image:
    """A 1 mm identity-direction grid enclosing the cylinder with a margin."""
    ends = np.array([region.posterior_lps_mm, region.anterior_lps_mm], dtype=float)
    pad = region.radius_mm + GRID_MARGIN_MM
    lo = np.floor(ends.min(axis=0) - pad)
    hi = np.ceil(ends.max(axis=0) + pad)
    size = (hi - lo + 1).astype(int)
    ref = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    ref.SetOrigin(lo.tolist())
    ref.SetSpacing([1.0, 1.0, 1.0])
    ref.SetDirection(np.eye(3).ravel().tolist())
    return ref


def cylinder_array(ref: sitk.Image, region: PedicleRegion) -> np.ndarray:
    """Boolean [k, j, i] array: voxel centres inside the finite cylinder."""
    size = ref.GetSize()
    kk, jj, ii = np.meshgrid(*(np.arange(n) for n in size[::-1]), indexing="ij")
    ijk = np.stack([ii.ravel(), jj.ravel(), kk.ravel()], axis=1).astype(float)
    pts = geometry.index_to_lps(ref, ijk)
    p0 = np.asarray(region.posterior_lps_mm, dtype=float)
    seg = np.asarray(region.anterior_lps_mm, dtype=float) - p0
    length = float(np.linalg.norm(seg))
    axis = seg / length
    t = (pts - p0) @ axis
    radial = np.linalg.norm(pts - p0 - np.outer(t, axis), axis=1)
    inside = (t >= 0.0) & (t <= length) & (radial <= region.radius_mm)
    return inside.reshape(kk.shape)


def fill_small_holes_2d(bone: np.ndarray, max_area: float) -> np.ndarray:
    """Fill holes up to ``max_area`` voxels in every axial slice ([k] index)."""
    out = bone.copy()
    for k in range(bone.shape[0]):
        holes = ndimage.binary_fill_holes(bone[k]) & ~bone[k]
        labels, n = ndimage.label(holes)
        if n == 0:
            continue
        areas = ndimage.sum(holes, labels, index=np.arange(1, n + 1))
        small = np.isin(labels, np.nonzero(areas <= max_area)[0] + 1)
        out[k] |= small
    return out


def largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = ndimage.sum(mask, labels, index=np.arange(1, n + 1))
    return labels == int(np.argmax(sizes)) + 1


def make_pedicle_mask(ct: sitk.Image, region: PedicleRegion) -> sitk.Image:
    """Bone inside the pedicle cylinder, as a uint8 image on a 1 mm canonical sub-grid."""
    ref = region_grid(region)
    hu = sitk.GetArrayFromImage(geometry.resample_like(ct, ref, "linear"))
    cyl = cylinder_array(ref, region)
    bone = fill_small_holes_2d((hu > BONE_HU) & cyl, MAX_HOLE_MM2)
    mask = largest_component(bone & cyl).astype(np.uint8)
    img = sitk.GetImageFromArray(mask)
    img.CopyInformation(ref)
    return img


# --------------------------------------------------------------------------------------
# rendering


def sample_plane(image: sitk.Image, array: np.ndarray, center: np.ndarray, e_right: np.ndarray,
                 e_up: np.ndarray, half_mm: float, px_mm: float, order: int, cval: float) -> np.ndarray:
    """Image rows top->bottom along -e_up, columns left->right along e_right."""
    g = np.arange(-half_mm, half_mm + 1e-9, px_mm)
    pts = center + g[::-1, None, None] * e_up + g[None, :, None] * e_right
    kji = geometry.lps_to_index(image, pts.reshape(-1, 3))[:, ::-1].T
    vals = ndimage.map_coordinates(array, kji, order=order, mode="constant", cval=cval)
    return vals.reshape(len(g), len(g))


def to_plane_px(p: np.ndarray, center, e_right, e_up, half_mm: float, px_mm: float) -> Tuple[float, float]:
    d = np.asarray(p, float) - center
    return (float(d @ e_right + half_mm) / px_mm, float(half_mm - d @ e_up) / px_mm)


def gray(hu: np.ndarray, lo: float = -250.0, hi: float = 1350.0) -> np.ndarray:
    return np.clip((hu - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)


def with_outline(hu: np.ndarray, mask2d: np.ndarray) -> Image.Image:
    """Bone-window gray image with the mask's outline in green."""
    rgb = np.repeat(gray(hu)[..., None], 3, axis=2)
    m = mask2d > 0.5
    rgb[m & ~ndimage.binary_erosion(m)] = (0, 200, 0)
    return Image.fromarray(rgb)


def side_word(vec: np.ndarray) -> str:
    """Dominant LPS direction of a vector, in words."""
    names = (("R", "L"), ("A", "P"), ("I", "S"))
    k = int(np.argmax(np.abs(vec)))
    return names[k][int(vec[k] > 0)]


def annotate(im: Image.Image, lines, edges: Dict[str, str]) -> Image.Image:
    """Add a text header, edge orientation letters and the disclaimer."""
    head = 14 * len(lines) + 4
    canvas = Image.new("RGB", (im.width, im.height + head + 16), (0, 0, 0))
    canvas.paste(im, (0, head))
    d = ImageDraw.Draw(canvas)
    for n, text in enumerate(lines):
        d.text((4, 2 + 14 * n), text, fill=(255, 255, 255))
    w, h = im.width, im.height
    pos = {"top": (w // 2 - 3, head + 2), "bottom": (w // 2 - 3, head + h - 12),
           "left": (3, head + h // 2 - 5), "right": (w - 10, head + h // 2 - 5)}
    for where, letter in edges.items():
        d.text(pos[where], letter, fill=(0, 255, 255))
    d.text((4, head + h + 2), DISCLAIMER, fill=(255, 200, 0))
    return canvas


def scale_bar(d: ImageDraw.ImageDraw, h: int, px_mm: float, zoom: int) -> None:
    n = 5.0 / px_mm * zoom
    d.line([(10, h - 10), (10 + n, h - 10)], fill=(255, 255, 255), width=2)
    d.text((12, h - 24), "5 mm", fill=(255, 255, 255))


def draw_plane(ct, ct_arr, mask, mask_arr, m: PedicleMeasurement, center, e_right, e_up,
               half_mm: float, px_mm: float, zoom: int):
    """CT plane with the mask outline and the MPD line; returns (image, draw, to_px)."""
    hu = sample_plane(ct, ct_arr, center, e_right, e_up, half_mm, px_mm, 1, -1000.0)
    mk = sample_plane(mask, mask_arr, center, e_right, e_up, half_mm, px_mm, 0, 0.0)
    im = with_outline(hu, mk)
    im = im.resize((im.width * zoom, im.height * zoom), Image.NEAREST)
    d = ImageDraw.Draw(im)

    def to_px(p):
        x, y = to_plane_px(p, center, e_right, e_up, half_mm, px_mm)
        return x * zoom, y * zoom

    ends = [to_px(p) for p in m.mpd_endpoints_lps_mm]
    d.line(ends, fill=(255, 0, 0), width=2)
    scale_bar(d, im.height, px_mm, zoom)
    return im, d, to_px


def render_section(ct, ct_arr, mask, mask_arr, m: PedicleMeasurement, title: str, path: Path,
                   half_mm: float = 12.0, px_mm: float = 0.1, zoom: int = 2) -> None:
    """Narrowest cross-section (perpendicular to the axis) with MPD line and mask outline."""
    axis = np.asarray(m.axis_lps, float)
    sup = np.array([0.0, 0.0, 1.0])
    e_up = sup - (sup @ axis) * axis
    e_up /= np.linalg.norm(e_up)
    e_right = np.cross(e_up, axis)   # viewed from the front: right of image = patient left
    center = np.asarray(m.isthmus_center_lps_mm, float)
    im, d, to_px = draw_plane(ct, ct_arr, mask, mask_arr, m, center, e_right, e_up, half_mm,
                              px_mm, zoom)
    for x, y in (to_px(p) for p in m.mpd_endpoints_lps_mm):
        d.ellipse([x - 3, y - 3, x + 3, y + 3], outline=(255, 0, 0))
    lines = [title, f"narrowest cross-section perpendicular to the pedicle axis; MPD {m.mpd_mm:.2f} mm "
             f"(red), mask outline (green)",
             f"viewed along the axis from anterior; up ~ {side_word(e_up)}, right ~ {side_word(e_right)}"]
    edges = {"top": side_word(e_up), "bottom": side_word(-e_up),
             "right": side_word(e_right), "left": side_word(-e_right)}
    annotate(im, lines, edges).save(path)


def render_axial(ct, ct_arr, mask, mask_arr, m: PedicleMeasurement, title: str, path: Path,
                 half_mm: float = 28.0, px_mm: float = 0.2, zoom: int = 2) -> None:
    """Axial slice through the isthmus centre (radiological view) with mask and MPD line."""
    center = np.asarray(m.isthmus_center_lps_mm, float)
    e_right = np.array([1.0, 0.0, 0.0])     # image right = patient left
    e_up = np.array([0.0, -1.0, 0.0])       # image top = anterior
    im, d, to_px = draw_plane(ct, ct_arr, mask, mask_arr, m, center, e_right, e_up, half_mm,
                              px_mm, zoom)
    ax = np.asarray(m.axis_lps, float)
    d.line([to_px(center - 10 * ax), to_px(center + 10 * ax)], fill=(255, 255, 0))
    lines = [title, f"axial slice z = {center[2]:.1f} mm (LPS) through the isthmus centre",
             "mask outline (green), MPD line projected (red), measured axis projected (yellow)"]
    annotate(im, lines, {"top": "A", "bottom": "P", "left": "R", "right": "L"}).save(path)


# --------------------------------------------------------------------------------------
# main


def report_line(scan: str, m: PedicleMeasurement) -> str:
    return (f"{scan:<7}{m.side:<6}{m.mpd_mm:>7.2f}{m.mpd_uncertainty_mm:>7.2f}{m.inner_width_mm:>8.2f}"
            f"{m.outer_height_mm:>8.2f}{m.medial_angle_deg:>8.1f}{m.cranial_angle_deg:>8.1f}"
            f"  ({', '.join(f'{c:.1f}' for c in m.isthmus_center_lps_mm)})")


def measure_scan(scan: str, out: Path) -> Dict[str, dict]:
    ct = load_ct(DATA_DIR / SCANS[scan]).image
    ct_arr = sitk.GetArrayFromImage(ct).astype(np.float32)
    results = {}
    for side in ("right", "left"):
        region = PEDICLES[(scan, side)]
        mask = make_pedicle_mask(ct, region)
        mask_arr = sitk.GetArrayFromImage(mask).astype(np.float32)
        m = measure_pedicle(ct, mask, side)
        print(report_line(scan, m))
        for w in m.warnings:
            print(f"    warning: {w}")
        title = f"{scan} {side} C2 pedicle"
        render_section(ct, ct_arr, mask, mask_arr, m, title, out / f"{scan}_{side}_section.png")
        render_axial(ct, ct_arr, mask, mask_arr, m, title, out / f"{scan}_{side}_axial.png")
        sitk.WriteImage(mask, str(out / f"{scan}_{side}_mask.nii.gz"))
        results[side] = {"region": region.__dict__, "mask_volume_mm3": float(mask_arr.sum()),
                         **m.to_dict()}
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder for PNGs, masks and JSON")
    ap.add_argument("--scans", nargs="+", default=list(SCANS), choices=list(SCANS))
    args = ap.parse_args()
    missing = [s for s in args.scans if not (DATA_DIR / SCANS[s]).exists()]
    if missing:
        print(f"skipped: real scans not found in {DATA_DIR} ({', '.join(missing)}); "
              "set C2NET_SHARED_DATA to the shared data folder.")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{'scan':<7}{'side':<6}{'MPD':>7}{'+-':>7}{'inner':>8}{'height':>8}{'medial':>8}"
          f"{'cranial':>8}  isthmus centre LPS mm")
    results = {scan: measure_scan(scan, args.out) for scan in args.scans}
    (args.out / "measurements.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}/*.png, *_mask.nii.gz, measurements.json  ({DISCLAIMER})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
