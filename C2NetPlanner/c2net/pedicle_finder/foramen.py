"""The foramen transversarium: the vertebral artery's hole lateral to each C2 pedicle.

On an axial slice it is a small soft-tissue hole enclosed by bone (the transverse process
around the artery, 4-7 mm across: 10-60 mm^2; 5-90 mm^2 accepted), lateral to the canal by
10-30 mm from the canal centre. At C2 the foramen turns laterally under the superior
articular facet, so it is closed only on some slices; it bounds the pedicle laterally there.

Research use only - not a medical device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .canal import Canal

MIN_FORAMEN_MM2, MAX_FORAMEN_MM2 = 5.0, 90.0
#: Lateral distance (mm) of the foramen's centre from the canal centre.
LATERAL_RANGE_MM = (10.0, 30.0)
#: Antero-posterior distance (mm) of the foramen's centre from the canal centre (it lies
#: level with the front half of the canal; + is posterior).
AP_RANGE_MM = (-16.0, 6.0)


@dataclass
class Foramen:
    side: str
    mask: np.ndarray          # [S, P, L] bool
    center_pl: np.ndarray     # (S, 2) per slice, NaN where none is closed

    @property
    def n_slices(self) -> int:
        return int(np.isfinite(self.center_pl[:, 0]).sum())


def find_foramen(solid: np.ndarray, canal: Canal, side: str, slices: np.ndarray) -> Foramen:
    """The foramen transversarium of ``side`` ("left": +column) on the given axial ``slices``."""
    sgn = 1.0 if side == "left" else -1.0
    mask = np.zeros_like(solid, dtype=bool)
    cents = np.full((solid.shape[0], 2), np.nan)
    cc = canal.median_center()
    for k in slices:
        ref = canal.center_pl[k] if np.isfinite(canal.center_pl[k, 0]) else cc
        ring = ndimage.binary_closing(solid[k], iterations=1) | solid[k]
        holes = ndimage.binary_fill_holes(ring) & ~ring & ~canal.mask[k]
        lab, m = ndimage.label(holes)
        if m == 0:
            continue
        areas = np.bincount(lab.ravel())[1:]
        cs = np.asarray(ndimage.center_of_mass(holes, lab, np.arange(1, m + 1)))
        lat = sgn * (cs[:, 1] - ref[1])
        ap = cs[:, 0] - ref[0]
        ok = ((areas >= MIN_FORAMEN_MM2) & (areas <= MAX_FORAMEN_MM2)
              & (lat >= LATERAL_RANGE_MM[0]) & (lat <= LATERAL_RANGE_MM[1])
              & (ap >= AP_RANGE_MM[0]) & (ap <= AP_RANGE_MM[1]))
        if ok.any():
            best = int(np.argmax(np.where(ok, areas, -1)))
            mask[k] = lab == best + 1
            cents[k] = cs[best]
    return Foramen(side=side, mask=mask, center_pl=cents)
