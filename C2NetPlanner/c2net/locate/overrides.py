"""User overrides of the C2 localiser: a seed point on C2, or a vertebra label map.

Both beat the automatic search. Points are LPS mm. A label map may be on any grid: its voxels
are mapped to LPS through its own geometry, so it need not match the CT's grid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np
import SimpleITK as sitk

from ..errors import InputError, LocalisationError
from ..geometry import index_to_lps, lps_to_index, physical_bounds
from .result import ROI_MARGIN_MM, C2Location

#: TotalSegmentator's one-file-per-structure name for C2.
TOTALSEG_C2_FILE = "vertebrae_C2.nii.gz"

MaskInput = Union[sitk.Image, str, Path]


def check_seed(image: sitk.Image, seed_lps_mm) -> np.ndarray:
    """The seed as a float array (LPS mm); ``LocalisationError`` ``seed_outside_image`` when
    it is not a finite 3D point inside the image's voxel grid."""
    try:
        seed = np.asarray(seed_lps_mm, dtype=float).reshape(3)
    except (TypeError, ValueError):
        raise LocalisationError(f"the seed point {seed_lps_mm!r} is not three numbers",
                                "give --seed X Y Z in millimetres", code="seed_invalid") from None
    if not np.all(np.isfinite(seed)):
        raise LocalisationError(f"the seed point {seed.tolist()} is not finite",
                                "give --seed X Y Z in millimetres", code="seed_invalid")
    ijk = lps_to_index(image, seed)[0]
    size = np.asarray(image.GetSize(), float)
    if np.any(ijk < -0.5) or np.any(ijk > size - 0.5):
        raise LocalisationError(
            f"the seed point {np.round(seed, 1).tolist()} (LPS mm) lies outside the image",
            "Give a point on C2 in the scan's own patient coordinates; check the frame "
            "(--seed-frame LPS or RAS: RAS flips the signs of x and y).",
            code="seed_outside_image")
    return seed


def read_vertebra_mask(mask: MaskInput, c2_label: int | None) -> tuple[sitk.Image, int, str]:
    """Open a vertebra label map: an image, a file, TotalSegmentator's folder (containing
    ``vertebrae_C2.nii.gz``) or that file. Returns (image, label value of C2, description)."""
    source = "image"
    if not isinstance(mask, sitk.Image):
        path = Path(mask)
        if path.is_dir():
            candidate = path / TOTALSEG_C2_FILE
            if not candidate.exists():
                raise InputError(f"the folder {path} has no {TOTALSEG_C2_FILE}",
                                 "give TotalSegmentator's output folder, the C2 file itself, or a "
                                 "multilabel map with --c2-label N")
            path = candidate
        if not path.exists():
            raise InputError(f"the vertebra mask {path} does not exist", "check the path")
        try:
            mask = sitk.ReadImage(str(path))
        except RuntimeError as exc:
            raise InputError(f"cannot read the vertebra mask {path}: {exc}",
                             "give a NIfTI/NRRD/MHA label map") from None
        source = str(path)
    if mask.GetDimension() != 3 or mask.GetNumberOfComponentsPerPixel() != 1:
        raise InputError("the vertebra mask is not a 3D scalar label map",
                         "give a 3D label image (one value per structure)")
    if c2_label is None:
        values = np.unique(sitk.GetArrayViewFromImage(mask))
        nonzero = values[values != 0]
        if len(nonzero) > 1:
            raise LocalisationError(
                f"the vertebra mask has {len(nonzero)} labels; which one is C2 is unknown",
                "give --c2-label N (the value of C2 in this map; TotalSegmentator names it "
                "vertebrae_C2), or give the single-structure file vertebrae_C2.nii.gz",
                code="mask_label_missing")
        c2_label = int(nonzero[0]) if len(nonzero) else 1
    return mask, int(c2_label), source


def mask_points(mask: sitk.Image, c2_label: int) -> np.ndarray:
    """LPS mm centres of the voxels of ``mask`` equal to ``c2_label`` (N, 3); refuses an
    empty label with ``LocalisationError`` ``mask_label_missing``."""
    arr = sitk.GetArrayViewFromImage(mask)
    kji = np.argwhere(arr == c2_label)
    if len(kji) == 0:
        present = np.unique(arr)
        shown = ", ".join(str(int(v)) for v in present[:20] if v != 0) or "none"
        raise LocalisationError(
            f"the vertebra mask has no voxel with the C2 label {c2_label} (labels present: {shown})",
            "check --c2-label (TotalSegmentator's multilabel output names it vertebrae_C2)",
            code="mask_label_missing")
    return index_to_lps(mask, kji[:, ::-1].astype(float))


def voxel_half_extent(mask: sitk.Image) -> np.ndarray:
    """Half a voxel's extent along LPS (mm), to turn voxel centres into a covering box."""
    m = np.abs(np.asarray(mask.GetDirection(), float).reshape(3, 3) @ np.diag(mask.GetSpacing()))
    return 0.5 * m.sum(axis=1)


def from_mask(image: sitk.Image, vertebra_mask: MaskInput, c2_label: int | None) -> C2Location:
    """C2 from a vertebra label map: its voxels give the centre, the top and the box exactly."""
    mask, label, source = read_vertebra_mask(vertebra_mask, c2_label)
    pts = mask_points(mask, label)
    half = voxel_half_extent(mask)
    lo, hi = pts.min(0) - half, pts.max(0) + half
    centre = pts.mean(0)
    tip = pts[np.argmax(pts[:, 2])]
    blo, bhi = physical_bounds(image)
    if np.any(centre < blo) or np.any(centre > bhi):
        raise LocalisationError(
            "the C2 label of the vertebra mask lies outside the CT's field of view",
            "check that the mask belongs to this CT (same patient, same frame of reference)",
            code="c2_not_in_fov")
    warnings = []
    if np.any(lo < blo - 1.0) or np.any(hi > bhi + 1.0):
        raise LocalisationError(
            "C2 (from the vertebra mask) is only partly inside the CT's field of view",
            "use a scan that covers the whole of C2", code="c2_partly_in_fov")
    return C2Location(
        center_lps_mm=tuple(centre), dens_tip_lps_mm=tuple(tip),
        roi_min_lps_mm=tuple(lo - ROI_MARGIN_MM), roi_max_lps_mm=tuple(hi + ROI_MARGIN_MM),
        confidence=1.0, method="vertebra_mask",
        evidence={"mask": source, "c2_label": label, "c2_voxels": int(len(pts)),
                  "c2_extent_mm": [round(float(v), 1) for v in hi - lo]},
        warnings=warnings)
