"""Attention (Grad-CAM) heat volume in CT space.

The classifier's Grad-CAM lives on the pixels of the five isthmus slices of each side
(:class:`c2net.results.IsthmusSlices`). :func:`attention_volume` places both sides' maps in
patient space and resamples them onto the input CT's own grid, so the heat map overlays the
CT in any viewer. Values are 0..1 (the paper displays them thresholded at 0.5); 0 outside the
classifier's slices.
"""

from __future__ import annotations

from typing import Iterable, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from . import geometry
from .results import IsthmusSlices, RiskPrediction
from .verdict import CAM_DISPLAY_THRESHOLD  # noqa: F401 - re-exported for the report


def cam_image(slices: IsthmusSlices, cam: np.ndarray) -> sitk.Image:
    """The (5, H, W) map as a canonical image located where the slices sit (LPS mm)."""
    cam = np.asarray(cam, dtype=np.float32)
    z = np.array([c[2] for c in slices.slice_centers_lps_mm], dtype=float)
    order = np.argsort(z)
    arr = cam[order]
    _, h, w = arr.shape
    cx, cy = slices.slice_centers_lps_mm[0][0], slices.slice_centers_lps_mm[0][1]
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr))
    img.SetSpacing([slices.pixel_mm, slices.pixel_mm, 1.0])
    img.SetDirection(np.eye(3).ravel().tolist())
    img.SetOrigin([cx - (w - 1) / 2.0 * slices.pixel_mm, cy - (h - 1) / 2.0 * slices.pixel_mm,
                   float(z[order][0])])
    return img


def attention_volume(
    ct: sitk.Image, items: Iterable[Tuple[IsthmusSlices, RiskPrediction]],
    grid: Optional[sitk.Image] = None,
) -> sitk.Image:
    """Float32 heat map (0..1) on ``ct``'s grid from every side's Grad-CAM (max where both).

    ``grid``: a part of ``ct``'s grid (the segmentation's, :func:`c2net.geometry.sub_grid`):
    the map is then returned over its own extent only, on the CT's voxels (it is 0 outside
    the classifier's slices anyway).
    """
    if grid is not None:
        ct = grid
    cams = [cam_image(s, p.cam_high_risk) for s, p in items]
    if not cams:
        return _zeros_like(ct)
    # one small canonical grid that holds every side, then one resample onto the input grid
    los, his = zip(*(geometry.physical_bounds(c) for c in cams))
    union = geometry.canonical_reference(cams[0], 1.0, (np.min(los, axis=0), np.max(his, axis=0)))
    acc: Optional[np.ndarray] = None
    for c in cams:
        a = geometry.array_lps(geometry.resample_like(c, union, "linear", default_value=0.0))
        acc = a if acc is None else np.maximum(acc, a)
    merged = geometry.copy_geometry(np.clip(acc, 0.0, 1.0).astype(np.float32), union)
    if grid is not None:      # the maps' own extent, on the CT's voxels
        region, _, _ = geometry.input_region(merged, grid)
        return geometry.resample_like(merged, region, "linear", default_value=0.0)
    return geometry.to_input_grid(merged, ct, "linear", default_value=0.0)


def _zeros_like(ct: sitk.Image) -> sitk.Image:
    z = sitk.Image(ct.GetSize(), sitk.sitkFloat32)
    z.CopyInformation(ct)
    return z
