"""A 1 mm crop where the C1/C2 evidence is read: axis-aligned (canonical) or in the spine frame.

The crop is resampled straight from the input image (not from the coarse working volume) so
thin structures - the atlanto-dental and lateral atlanto-axial joint spaces that separate C2
from C1 - survive. Arrays are ``[S, P, L]``: in the canonical frame (:mod:`c2net.geometry`)
or, given a :class:`~c2net.locate.frame.SpineFrame`, along the spine's own axes (S along the
canal, P towards the back of the vertebra, L to the patient's left), so that "slice by slice
along the spine" and "in front of the canal" mean the same thing whatever the head's pose.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from ..geometry import AIR_HU, canonical_reference, physical_bounds

CROP_SPACING_MM = 1.0
_OUTSIDE = -60000.0
#: Nearest neighbour: linear interpolation onto a grid offset by part of a voxel averages
#: neighbouring voxels and closes the 1-2 mm joint spaces that make the dens an island.
INTERPOLATOR = sitk.sitkNearestNeighbor


@dataclass
class Crop:
    """A crop: ``hu[S, P, L]`` float32, ``valid`` inside the input's field of view,
    ``origin`` the LPS position (mm) of voxel [0, 0, 0], isotropic ``spacing_mm``, and
    ``rotation`` whose columns are the LPS directions of the array's L, P and S axes (the
    identity for a canonical crop)."""

    hu: np.ndarray
    valid: np.ndarray
    origin: np.ndarray
    spacing_mm: float
    #: per array axis (S, P, L): whether the low / high face is the input image's own edge
    #: (canonical crops are clipped to the image; spine-frame crops are not, their invalid
    #: voxels show where the field of view ends)
    image_edge_lo: tuple = (False, False, False)
    image_edge_hi: tuple = (False, False, False)
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def index_to_lps(self, kji: np.ndarray) -> np.ndarray:
        """Array indices ``(..., 3)`` in ``[S, P, L]`` order -> LPS mm."""
        ijk = np.asarray(kji, dtype=float)[..., ::-1] * self.spacing_mm
        return self.origin + ijk @ self.rotation.T

    def lps_to_index(self, lps: np.ndarray) -> np.ndarray:
        """LPS mm ``(..., 3)`` -> continuous ``[S, P, L]`` indices."""
        ijk = (np.asarray(lps, dtype=float) - self.origin) @ self.rotation / self.spacing_mm
        return ijk[..., ::-1]

    def vector_to_lps(self, v_kji: np.ndarray) -> np.ndarray:
        """A direction in array index space ``[S, P, L]`` -> the LPS direction (unit)."""
        v = self.rotation @ np.asarray(v_kji, dtype=float)[::-1]
        return v / np.linalg.norm(v)


def _source(image: sitk.Image, spacing_mm: float) -> sitk.Image:
    factors = [max(1, int(np.floor(0.75 * spacing_mm / float(s) + 1e-6))) for s in image.GetSpacing()]
    return sitk.BinShrink(image, factors) if any(f > 1 for f in factors) else image


def _read(src: sitk.Image, ref: sitk.Image, interpolator=None) -> tuple[np.ndarray, np.ndarray]:
    out = sitk.Resample(src, ref, sitk.Transform(), interpolator or INTERPOLATOR, _OUTSIDE,
                        sitk.sitkFloat32)
    hu = sitk.GetArrayFromImage(out)
    valid = hu > 0.5 * _OUTSIDE
    hu[~valid] = AIR_HU
    np.maximum(hu, AIR_HU, out=hu)
    return hu, valid


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
    ref = canonical_reference(image, spacing_mm, (lo, hi))
    hu, valid = _read(_source(image, spacing_mm), ref)
    return Crop(hu=hu, valid=valid, origin=np.asarray(ref.GetOrigin(), float),
                spacing_mm=spacing_mm, image_edge_lo=edge_lo, image_edge_hi=edge_hi)


def make_frame_crop(image: sitk.Image, origin_lps: np.ndarray, rotation: np.ndarray,
                    lo_u: np.ndarray, hi_u: np.ndarray, spacing_mm: float = CROP_SPACING_MM,
                    interpolator=None) -> Crop:
    """Resample ``image`` onto a grid along the columns of ``rotation`` (LPS directions of the
    L, P, S array axes) covering the box ``lo_u..hi_u`` of frame coordinates
    ``u = rotation.T @ (x - origin_lps)`` (mm). Nothing is clipped: voxels outside the input's
    field of view read as air with ``valid`` False."""
    rotation = np.asarray(rotation, float)
    lo_u, hi_u = np.asarray(lo_u, float), np.asarray(hi_u, float)
    size = np.maximum(1, np.ceil((hi_u - lo_u) / spacing_mm).astype(int) + 1)
    origin = np.asarray(origin_lps, float) + rotation @ lo_u
    ref = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    ref.SetSpacing([float(spacing_mm)] * 3)
    ref.SetOrigin(origin.tolist())
    ref.SetDirection(rotation.ravel().tolist())
    hu, valid = _read(_source(image, spacing_mm), ref, interpolator)
    return Crop(hu=hu, valid=valid, origin=origin, spacing_mm=spacing_mm, rotation=rotation)
