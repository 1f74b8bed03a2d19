"""The spinal canal at C2: the soft-tissue hole that the vertebral ring encloses.

On each axial slice of the canonical C2 region (arrays ``[S, P, L]``, 1 mm) the holes of the
inside-bone mask of a thin slab around it (regions of soft tissue enclosed by the bone of the
slab: the ring need not close on one slice) are candidates; the canal is the
largest one of canal size (an adult C2 canal is ~15 x 25 mm, 250-450 mm^2; 40-900 mm^2
accepted) near the C2 centre, where the localiser puts it (the centroid of C2 lies at the front of
the canal: the posterior arch pulls it back from the body). Slices where the ring is open
(above the arch, at the dens) have no canal. Candidates far from the median canal centre of
the other slices are dropped (a foramen or a gap between C1 and C2 is not the canal).

Research use only - not a medical device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy import ndimage

#: Canal cross-section areas (mm^2 at 1 mm) accepted on one axial slice.
MIN_CANAL_MM2, MAX_CANAL_MM2 = 40.0, 900.0
#: How far (mm, in-plane) from the expected place a canal slice may lie.
MAX_OFFSET_MM = 16.0
#: How far (mm) one slice's canal centre may lie from the median of all slices.
MAX_SPREAD_MM = 6.0
#: Half-thickness (mm) of the axial slab whose bone must enclose the canal: the ring of C2
#: need not close on one axial slice (the pedicles rise 15-35 deg from the lamina to the body).
SLAB_HALF_MM = 4
#: Fewest slices with a closed canal that make a canal.
MIN_SLICES = 3
#: The C2 ring closes around the canal within this distance (mm) of C2's centroid level; the
#: C1 ring (with the dens inside it) closes another canal ~15-25 mm above, which is not C2's.
MAX_LEVEL_OFFSET_MM = 12.0
#: Slices without a closed ring that may interrupt the run of C2 canal slices (a gap in a
#: blurred lamina).
MAX_GAP_SLICES = 2
#: C1's ring closes around the dens: its anterior arch articulates with the dens a few mm below
#: the tip, and the ring (arches and lateral masses) ends ~15-20 mm below it; C2's own ring
#: (pedicles and laminae) closes below C2's superior facets and runs down to ~30 mm below the
#: tip (on the shared real scans C1's runs of canal slices ended 16-19 mm below the
#: localiser's tip, C2's 28-32 mm below it). A run that ends within this distance (mm) below
#: the dens tip is C1's.
C1_RING_MAX_BELOW_TIP_MM = 22.0


@dataclass
class Canal:
    mask: np.ndarray            # [S, P, L] bool, the canal on the slices where it is closed
    center_pl: np.ndarray       # (S, 2) (row, column) centroid per slice; NaN where none
    slices: np.ndarray          # indices of the slices with a closed canal

    @property
    def found(self) -> bool:
        return self.slices.size >= MIN_SLICES

    def median_center(self) -> np.ndarray:
        return np.nanmedian(self.center_pl[self.slices], axis=0)

    def per_slice(self) -> np.ndarray:
        """(S, 3) canal centre row, centre column and half-width (columns, mm) on every slice,
        carried over from the nearest slice with a closed canal."""
        out = np.zeros((self.mask.shape[0], 3))
        half = np.zeros(self.mask.shape[0])
        for k in self.slices:
            cols = np.nonzero(self.mask[k].any(axis=0))[0]
            half[k] = 0.5 * (cols.max() - cols.min() + 1)
        for k in range(self.mask.shape[0]):
            j = self.slices[np.argmin(np.abs(self.slices - k))]
            out[k] = (self.center_pl[j, 0], self.center_pl[j, 1], half[j])
        return out


def find_canal(solid: np.ndarray, expected_pl: np.ndarray, centre_slice: float,
               hu: np.ndarray, soft_max_hu: float, tip_slice: Optional[float] = None) -> Canal:
    """The C2 canal: enclosed by the ring on single axial slices (real C2), else by the ring of
    thin slabs (a ring that closes only obliquely, as the pedicles rise to the body).

    A hole whose median reads above ``soft_max_hu`` holds marrow (a gap in the inside-bone mask
    of the body), not the cord and CSF. ``tip_slice``: the dens tip's (continuous) slice, when
    the localiser saw it; C1's ring around the dens is then told from C2's.
    """
    canal = _find_canal(solid, expected_pl, centre_slice, 0, hu, soft_max_hu, tip_slice)
    if not canal.found:
        canal = _find_canal(solid, expected_pl, centre_slice, SLAB_HALF_MM, hu, soft_max_hu,
                            tip_slice)
    return canal


def _find_canal(solid: np.ndarray, expected_pl: np.ndarray, centre_slice: float,
                slab_half: int, hu: np.ndarray, soft_max_hu: float,
                tip_slice: Optional[float] = None) -> Canal:
    """The C2 canal in ``solid`` (inside-bone mask ``[S, P, L]``, slices 1 mm apart, upwards)
    near ``expected_pl`` (row, col).

    Only the run of closed-canal slices nearest ``centre_slice`` (C2's centroid level) within
    :data:`MAX_LEVEL_OFFSET_MM` of it is kept: C2's ring, not C1's; with ``tip_slice`` a run
    within :data:`C1_RING_MAX_BELOW_TIP_MM` below the dens tip is C1's and is passed over
    while another run is left.
    """
    n = solid.shape[0]
    mask = np.zeros_like(solid, dtype=bool)
    cents = np.full((n, 2), np.nan)
    picks = [None] * n
    for k in range(n):
        if abs(k - centre_slice) > MAX_LEVEL_OFFSET_MM:
            continue
        # the ring of a slab: pedicles that rise steeply meet the body above the slice
        slab = solid[max(k - slab_half, 0):k + slab_half + 1].any(axis=0)
        # a one-voxel closing seals hair-line gaps of a blurred ring (not a 2 mm joint space)
        ring = ndimage.binary_closing(slab, iterations=1) | slab
        holes = ndimage.binary_fill_holes(ring) & ~ring
        lab, m = ndimage.label(holes)
        if m == 0:
            continue
        areas = np.bincount(lab.ravel())[1:]
        cs = np.asarray(ndimage.center_of_mass(holes, lab, np.arange(1, m + 1)))
        dist = np.linalg.norm(cs - expected_pl[None, :], axis=1)
        med = np.asarray(ndimage.median(hu[k], lab, np.arange(1, m + 1)))
        ok = ((areas >= MIN_CANAL_MM2) & (areas <= MAX_CANAL_MM2) & (dist <= MAX_OFFSET_MM)
              & (med <= soft_max_hu))
        if ok.any():
            # the largest: a slit of marrow in the body or a foramen is far smaller
            best = int(np.argmax(np.where(ok, areas, -1)))
            picks[k] = (lab, best + 1)
            cents[k] = cs[best]
    have = np.nonzero(np.isfinite(cents[:, 0]))[0]
    if have.size:
        med = np.median(cents[have], axis=0)
        far = np.linalg.norm(cents[have] - med, axis=1) > MAX_SPREAD_MM
        cents[have[far]] = np.nan
        have = have[~far]
    have = _run_nearest(have, centre_slice, tip_slice)
    for k in have:
        lab, i = picks[k]
        mask[k] = (lab == i) & ~solid[k]
    return Canal(mask=mask, center_pl=cents, slices=have)


def _run_nearest(slices: np.ndarray, centre_slice: float,
                 tip_slice: Optional[float] = None) -> np.ndarray:
    """The run of (nearly) consecutive slices nearest ``centre_slice``; with ``tip_slice``,
    among the runs that are not C1's ring (wholly within :data:`C1_RING_MAX_BELOW_TIP_MM`
    below the dens tip) when there are any."""
    if slices.size == 0:
        return slices
    breaks = np.nonzero(np.diff(slices) > MAX_GAP_SLICES + 1)[0] + 1
    runs = np.split(slices, breaks)
    if tip_slice is not None:
        below_c1 = [r for r in runs if r[0] < tip_slice - C1_RING_MAX_BELOW_TIP_MM]
        runs = below_c1 or runs
    dist = [0.0 if r[0] <= centre_slice <= r[-1] else min(abs(r[0] - centre_slice),
                                                          abs(r[-1] - centre_slice)) for r in runs]
    return runs[int(np.argmin(dist))]
