"""Checks that the images handed to the report writer sit on the input CT's own grid."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..errors import C2NetError
from ..geometry import offset_in


def same_grid(a: sitk.Image, b: sitk.Image, tol_mm: float = 1e-3) -> bool:
    """True when two images share size, spacing, origin and direction (within ``tol_mm``)."""
    return (a.GetSize() == b.GetSize()
            and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tol_mm)
            and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tol_mm)
            and np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-5))


def require_input_grid(image: sitk.Image, reference: sitk.Image | None, what: str) -> None:
    """Refuse ``image`` unless it lies on ``reference``'s grid (the input CT) or on a part of
    it (same spacing and direction, origin on one of its voxels: :func:`c2net.geometry.offset_in`).

    The report promises files that overlay the input scan voxel for voxel in Slicer; an image
    on another grid is a pipeline bug, not something to resample silently here.
    """
    if image.GetDimension() != 3:
        raise C2NetError(f"The {what} is {image.GetDimension()}-D; a 3-D volume is expected.",
                         "This is a bug in C2NetPlanner; please report it.", code="report_input")
    if reference is not None and offset_in(image, reference) is None:
        raise C2NetError(
            f"The {what} is not on the input CT's grid (size {image.GetSize()} vs "
            f"{reference.GetSize()}, spacing {image.GetSpacing()} vs {reference.GetSpacing()}).",
            "This is a bug in C2NetPlanner (map it back with c2net.geometry.to_input_grid); "
            "please report it.", code="report_input")
