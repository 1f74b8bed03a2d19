"""A 1 mm canonical crop around the upper spinal canal, where the C1/C2 evidence is read.

The crop is resampled straight from the input image (not from the coarse working volume) so
thin structures - the atlanto-dental and lateral atlanto-axial joint spaces that separate C2
from C1 - survive. Arrays are ``[S, P, L]`` (canonical frame, see :mod:`c2net.geometry`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from .geometry import AIR_HU, canonical_reference, physical_bounds

CROP_SPACING_MM = 1.0
_OUTSIDE = -60000.0


@dataclass
class Crop:
    """A canonical crop: ``hu[S, P, L]`` float32, ``valid`` inside the input's field of view,
    ``origin`` the LPS position (mm) of voxel [0, 0, 0], isotropic ``spacing_mm``."""

    hu: np.ndarray
    valid: np.ndarray
    origin: np.ndarray
    spacing_mm: float
    #: per array axis (S, P, L): whether the low / high face is the input image's own edge
    image_edge_lo: tuple = (False, False, False)
    image_edge_hi: tuple = (False, False, False)

    def index_to_lps(self, kji: np.ndarray) -> np.ndarray:
        """Array indices ``(..., 3)`` in ``[S, P, L]`` order -> LPS mm."""
        return self.origin + np.asarray(kji, dtype=float)[..., ::-1] * self.spacing_mm

    def lps_to_index(self, lps: np.ndarray) -> np.ndarray:
        """LPS mm ``(..., 3)`` -> continuous ``[S, P, L]`` indices."""
        return ((np.asarray(lps, dtype=float) - self.origin) / self.spacing_mm)[..., ::-1]


def make_crop(image: sitk.Image, lo_lps: np.ndarray, hi_lps: np.ndarray,
              spacing_mm: float = CROP_SPACING_MM) -> Crop:
    """Resample ``image`` onto a canonical grid covering the LPS box ``lo..hi`` (clipped to the
    image's own extent). Voxels outside the input's field of view read as air, ``valid`` False."""
    blo, bhi = physical_bounds(image)
    want_lo, want_hi = np.asarray(lo_lps, float), np.asarray(hi_lps, float)
    lo = np.maximum(want_lo, blo)
    hi = np.minimum(want_hi, bhi)
    edge_lo = tuple(bool(v) for v in (want_lo <= blo)[::-1])
    edge_hi = tuple(bool(v) for v in (want_hi >= bhi)[::-1])
    hi = np.maximum(hi, lo + spacing_mm)
    src = image
    factors = [max(1, int(np.floor(0.75 * spacing_mm / float(s) + 1e-6))) for s in image.GetSpacing()]
    if any(f > 1 for f in factors):
        src = sitk.BinShrink(image, factors)
    ref = canonical_reference(image, spacing_mm, (lo, hi))
    out = sitk.Resample(src, ref, sitk.Transform(), sitk.sitkLinear, _OUTSIDE, sitk.sitkFloat32)
    hu = sitk.GetArrayFromImage(out)
    valid = hu > 0.5 * _OUTSIDE
    hu[~valid] = AIR_HU
    np.maximum(hu, AIR_HU, out=hu)
    return Crop(hu=hu, valid=valid, origin=np.asarray(ref.GetOrigin(), float),
                spacing_mm=spacing_mm, image_edge_lo=edge_lo, image_edge_hi=edge_hi)
