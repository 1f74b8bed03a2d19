"""What the C3D classifier sees of one side: its own pedicle's neighbourhood only.

The classifier's input is five 64 x 64 mm axial slices centred on one isthmus. The two C2
isthmi lie 20-30 mm apart, so such a crop also holds the *other* pedicle, and a network
trained on it learned to look there (its Grad-CAM for a high-risk right pedicle peaked over
the left one). Each side's slices therefore go through a circular aperture centred on the
isthmus: inside it the CT is unchanged; outside it every pixel is set to the window's floor
(-200 HU, 0 after windowing, what the network sees as "nothing"), with a 2 mm linear taper.

Radius: 12 mm keeps the pedicle (outer widths up to ~11 mm, so within ~6 mm of its centre)
with the canal wall, the foramen transversarium and the roots of the body and the pillar
around it; it is capped at half the distance between the two isthmi when both are known, so
the aperture never reaches the other pedicle whatever the neck's size (every pixel inside
lies nearer to this isthmus than to the other). Training (``c2net.training.data``) and run
time (``c2net.classify``) apply the same function.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

#: Largest aperture radius (mm) and the width of its edge taper (mm).
APERTURE_RADIUS_MM = 12.0
APERTURE_TAPER_MM = 2.0
#: What lies outside the aperture: the lower end of the W2000/L800 window.
OUTSIDE_HU = -200.0


def aperture_radius_mm(isthmus_lps_mm: Sequence[float],
                       other_isthmus_lps_mm: Optional[Sequence[float]] = None) -> float:
    """12 mm, or half the in-plane distance to the other isthmus when that is smaller."""
    r = APERTURE_RADIUS_MM
    if other_isthmus_lps_mm is not None:
        d = np.subtract(other_isthmus_lps_mm, isthmus_lps_mm)[:2]
        r = min(r, 0.5 * float(np.hypot(d[0], d[1])))
    return max(r, APERTURE_TAPER_MM + 1.0)


def aperture_weights(shape_hw: Sequence[int], radius_mm: float, pixel_mm: float = 1.0) -> np.ndarray:
    """(H, W) weights: 1 inside ``radius_mm - taper`` of the centre, 0 beyond ``radius_mm``."""
    h, w = (int(s) for s in shape_hw)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = np.hypot(yy - (h - 1) / 2.0, xx - (w - 1) / 2.0) * pixel_mm
    return np.clip((radius_mm - r) / APERTURE_TAPER_MM, 0.0, 1.0).astype(np.float32)


def own_side_view(hu: np.ndarray, radius_mm: float, pixel_mm: float = 1.0) -> np.ndarray:
    """``hu`` (5, H, W) with everything outside the aperture faded to :data:`OUTSIDE_HU`."""
    hu = np.asarray(hu, dtype=np.float32)
    wgt = aperture_weights(hu.shape[-2:], radius_mm, pixel_mm)
    return (OUTSIDE_HU + (hu - OUTSIDE_HU) * wgt).astype(np.float32)
