"""Input checks and the coarse canonical working volume of the C2 localiser.

The localiser works on a canonical grid (identity direction, isotropic ``WORK_SPACING_MM``)
whose numpy array is indexed ``[S, P, L]``: axis 0 inferior -> superior, axis 1 anterior ->
posterior, axis 2 patient right -> left (see :mod:`c2net.geometry`). Physical points are LPS mm.

Resolution thresholds (why these numbers)
-----------------------------------------
A C2 pedicle isthmus is 4-5 mm wide where it matters (the 4.78 mm cutoff), and the decision
needs sub-millimetre accuracy. With in-plane voxels above 1.5 mm the isthmus spans fewer than
three voxels, its cortex (0.6-1.6 mm) is averaged away and partial volume alone moves the
measured width by a full voxel, so no width can be trusted: refuse. The pedicle axis runs
20-30 degrees cranially, so the slice direction samples it obliquely; above 3 mm slice thickness
(more than half the isthmus height of ~6-8 mm) the isthmus is no longer resolved along z.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..errors import GeometryError
from ..geometry import AIR_HU, canonical_reference

#: Spacing (mm) of the localiser's working grid.
WORK_SPACING_MM = 2.0
#: Largest in-plane spacing (mm) at which a 4-5 mm pedicle can still be measured.
MAX_INPLANE_SPACING_MM = 1.5
#: Largest slice thickness / spacing (mm) at which a 4-5 mm pedicle can still be measured.
MAX_SLICE_SPACING_MM = 3.0
_OUTSIDE = -60000.0
_OUTSIDE_CUT = -30000.0


@dataclass
class WorkVolume:
    """The coarse canonical volume the localiser searches.

    ``hu`` is a float32 array ``[S, P, L]`` on the grid of ``reference`` (identity direction,
    ``spacing_mm`` isotropic); ``valid`` marks voxels inside the input's field of view.
    """

    hu: np.ndarray
    valid: np.ndarray
    reference: sitk.Image
    spacing_mm: float

    def index_to_lps(self, kji: np.ndarray) -> np.ndarray:
        """Array indices ``(..., 3)`` in ``[S, P, L]`` order -> LPS mm."""
        kji = np.asarray(kji, dtype=float)
        origin = np.asarray(self.reference.GetOrigin(), dtype=float)
        return origin + kji[..., ::-1] * self.spacing_mm

    def lps_to_index(self, lps: np.ndarray) -> np.ndarray:
        """LPS mm ``(..., 3)`` -> continuous array indices in ``[S, P, L]`` order."""
        lps = np.asarray(lps, dtype=float)
        origin = np.asarray(self.reference.GetOrigin(), dtype=float)
        return ((lps - origin) / self.spacing_mm)[..., ::-1]


def acquisition_spacing(image: sitk.Image) -> tuple[float, float]:
    """(in-plane spacing, slice spacing) in mm: the coarser of the two finest axes, and the
    coarsest axis. Orientation-agnostic, so sagittal or coronal acquisitions work too."""
    sp = sorted(float(s) for s in image.GetSpacing())
    return sp[1], sp[2]


def check_resolution(image: sitk.Image) -> dict:
    """Refuse (``GeometryError``, code ``resolution_too_coarse``) a scan too coarse for a pedicle.

    Returns ``{"inplane_mm", "slice_mm"}`` when the scan is fine enough.
    """
    inplane, slab = acquisition_spacing(image)
    info = {"inplane_mm": round(inplane, 3), "slice_mm": round(slab, 3),
            "max_inplane_mm": MAX_INPLANE_SPACING_MM, "max_slice_mm": MAX_SLICE_SPACING_MM}
    if inplane > MAX_INPLANE_SPACING_MM or slab > MAX_SLICE_SPACING_MM:
        sizes = " x ".join(f"{float(v):.2f}" for v in image.GetSpacing())
        raise GeometryError(
            f"The scan is too coarse to measure a 4-5 mm C2 pedicle: its voxels are {sizes} mm "
            f"(a pedicle needs two axes of at most {MAX_INPLANE_SPACING_MM} mm and the third of "
            f"at most {MAX_SLICE_SPACING_MM} mm; here the finer two are {sorted(image.GetSpacing())[0]:.2f} "
            f"and {inplane:.2f} mm, the coarsest {slab:.2f} mm).",
            hint="Reconstruct the CT with thin slices (<= 1 mm in-plane, <= 2 mm slices, a bone "
                 "kernel) and assess that series.",
            code="resolution_too_coarse",
        )
    return info


def _shrink_factors(image: sitk.Image, target_mm: float) -> list[int]:
    return [max(1, int(np.floor(target_mm / float(s) + 1e-6))) for s in image.GetSpacing()]


def make_work_volume(image: sitk.Image, spacing_mm: float = WORK_SPACING_MM) -> WorkVolume:
    """Average the input down to about ``spacing_mm`` (BinShrink: a box filter, so thin cortex
    is averaged, not aliased) and resample it onto a canonical grid through LPS space."""
    img = image
    factors = _shrink_factors(img, spacing_mm)
    if any(f > 1 for f in factors):
        img = sitk.BinShrink(img, factors)  # box average; keeps the integer type (cheap)
    ref = canonical_reference(image, spacing_mm)
    # one resampling: voxels outside the input get a sentinel, so the field of view comes free
    hu_img = sitk.Resample(img, ref, sitk.Transform(), sitk.sitkLinear, _OUTSIDE, sitk.sitkFloat32)
    hu = sitk.GetArrayFromImage(hu_img)
    valid = hu > _OUTSIDE_CUT
    hu[~valid] = AIR_HU
    np.maximum(hu, AIR_HU, out=hu)  # padding values (-2000, -3024) read as air
    return WorkVolume(hu=hu, valid=valid, reference=ref, spacing_mm=float(spacing_mm))
