"""Sheared (non-orthogonal) voxel grids: detected and refused before any work.

A CT whose index axes are not perpendicular to each other (a gantry-tilted stack saved as
NRRD/MHA without resampling, or a NIfTI whose sform holds a shear) cannot be written back as
NIfTI without moving it: the NIfTI reader and writer coerce the direction to an orthogonal one,
so a segmentation written on that grid would land millimetres off the CT. Rather than produce
files that do not overlay the input, such input is refused with the fix.

For NIfTI the check reads the sform from the header itself, because ITK has already replaced a
sheared sform by an orthogonal matrix (with a console warning) when the image reaches us.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Optional

import numpy as np
import SimpleITK as sitk

from .errors import GeometryError

#: Largest tolerated departure of two index axes from 90 degrees (float rounding in headers).
MAX_SHEAR_DEG = 0.1

SHEAR_HINT = ("Resample the CT onto an orthogonal grid first (e.g. 3D Slicer: Resample Scalar "
              "Volume, or convert the original DICOM with dcm2niix, which corrects gantry tilt), "
              "or load the original DICOM series: C2NetPlanner corrects a gantry tilt there itself.")


def shear_deg(columns: np.ndarray) -> float:
    """Largest departure from 90 degrees between the columns (index axes) of a 3x3 matrix."""
    m = np.asarray(columns, dtype=float).reshape(3, 3)
    norms = np.linalg.norm(m, axis=0)
    if np.any(norms <= 0):
        return 90.0
    u = m / norms
    worst = 0.0
    for a in range(3):
        for b in range(a + 1, 3):
            c = float(np.clip(abs(u[:, a] @ u[:, b]), 0.0, 1.0))
            worst = max(worst, 90.0 - float(np.degrees(np.arccos(c))))
    return worst


def image_shear_deg(image: sitk.Image) -> float:
    return shear_deg(np.asarray(image.GetDirection(), dtype=float).reshape(3, 3))


def nifti_sform_shear_deg(path: Path) -> Optional[float]:
    """Shear of a NIfTI-1 file's sform (degrees), or None when it has no sform we can read."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            header = fh.read(348)
    except (OSError, EOFError):
        return None
    if len(header) < 348:
        return None
    for endian in ("<", ">"):
        if struct.unpack(endian + "i", header[:4])[0] == 348:
            break
    else:
        return None
    sform_code = struct.unpack(endian + "h", header[254:256])[0]
    if sform_code <= 0:
        return None
    rows = np.array(struct.unpack(endian + "12f", header[280:328]), dtype=float).reshape(3, 4)
    return shear_deg(rows[:, :3])


def refuse_sheared(image: sitk.Image, source: str, header_shear_deg: Optional[float] = None) -> None:
    """Raise :class:`GeometryError` when the grid of ``image`` (or its file header) is sheared."""
    shear = max(image_shear_deg(image), header_shear_deg or 0.0)
    if shear > MAX_SHEAR_DEG:
        raise GeometryError(
            f"{source} has a sheared voxel grid: two of its axes meet at {90.0 - shear:.1f}\u00b0 "
            f"instead of 90\u00b0 (a {shear:.1f}\u00b0 shear, typical of a gantry-tilted stack "
            "saved without resampling). Results written on that grid would not overlay the CT.",
            SHEAR_HINT, code="sheared_grid")
