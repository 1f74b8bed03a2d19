"""The classifier's input: five 1 mm axial slices around a measured isthmus."""

from __future__ import annotations

from typing import Optional

import numpy as np
import SimpleITK as sitk

from .. import geometry
from ..errors import MeasurementError
from ..results import IsthmusSlices, PedicleMeasurement


def isthmus_slices(
    ct: sitk.Image, measurement: PedicleMeasurement, mask: Optional[sitk.Image] = None,
    size_px: int = 64, pixel_mm: float = 1.0, n_slices: int = 5,
) -> IsthmusSlices:
    """The classifier's input: ``n_slices`` consecutive 1 mm axial slices around the isthmus.

    The slices are canonical (identity direction) crops of ``size_px`` x ``size_px`` pixels
    centred on the isthmus centre, ordered wide -> narrow: the end of the stack where the
    pedicle is wider comes first (by mask area when a mask is given, otherwise along the
    pedicle axis from posterior to anterior).
    """
    c = np.asarray(measurement.isthmus_center_lps_mm, dtype=float)
    if pixel_mm != 1.0:
        raise MeasurementError(f"isthmus slices are sampled at 1 mm, not {pixel_mm} mm")
    # the same crop (only the CT around the isthmus is read, fine axes smoothed) as the
    # classifier's training data: c2net.training.data.fallback_isthmus_crop
    size = (size_px, size_px, n_slices)
    hu = geometry.array_lps(geometry.canonical_crop(ct, c, size)).astype(np.float32)
    m = None
    if mask is not None:
        m = geometry.array_lps(geometry.canonical_crop(sitk.Cast(mask > 0, sitk.sitkUInt8), c, size,
                                                       "label")).astype(np.uint8)
    reverse = False
    if m is not None and m[0].sum() != m[-1].sum():
        reverse = m[0].sum() < m[-1].sum()
    centers = [(float(c[0]), float(c[1]), float(c[2] - (n_slices - 1) / 2.0 + k)) for k in range(n_slices)]
    if reverse:
        hu = hu[::-1].copy()
        m = m[::-1].copy() if m is not None else None
        centers = centers[::-1]
    return IsthmusSlices(side=measurement.side, hu=hu, slice_centers_lps_mm=centers,
                         pixel_mm=pixel_mm, mask=m)

