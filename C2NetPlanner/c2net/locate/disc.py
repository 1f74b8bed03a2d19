"""The C2/C3 disc: walk down C2's anterior column from the dens tip to the first disc.

C2 is ~40 mm tall from the dens tip to its inferior endplate (adult morphometry, 28-52 mm
over small and large necks); below it the C2/C3 disc is soft tissue between two bodies. The
walk runs along the spine axis in the spine-frame crop, so it follows a flexed or tilted neck.
"""

from __future__ import annotations

import numpy as np

from .crop import Crop

#: How far (mm) below the C2/C3 disc the scan must reach (C2's inferior processes).
BELOW_DISC_MM = 10.0
#: C2 height (dens tip to the inferior endplate) the disc search accepts (mm).
C2_HEIGHT_RANGE_MM = (28.0, 52.0)


def column_profile(crop: Crop, tip_idx: np.ndarray, axis: np.ndarray, k_bottom: int
                   ) -> np.ndarray:
    """Mean HU of C2's anterior column in a 6 x 6 mm square every voxel (``spacing_mm``) down
    from the dens tip along ``axis``, until the scan (or the crop) ends."""
    sp = crop.spacing_mm
    half = max(1, int(round(3.0 / sp)))
    s_dim, p_dim, l_dim = crop.hu.shape
    profile = []
    for d in np.arange(0.0, C2_HEIGHT_RANGE_MM[1] + BELOW_DISC_MM + 1.0, sp):
        k, p, lat = np.round(tip_idx - axis * (d / sp) + np.array([0, 2.0 / sp, 0])).astype(int)
        if k < max(0, k_bottom) or not (0 <= p < p_dim and 0 <= lat < l_dim):
            break
        block = crop.hu[k, max(0, p - half):p + half + 1, max(0, lat - half):lat + half + 1]
        valid = crop.valid[k, max(0, p - half):p + half + 1, max(0, lat - half):lat + half + 1]
        if not valid.all():
            break
        profile.append(float(block.mean()))
    return np.asarray(profile)


#: C2 is bone from the dens tip to its inferior endplate: the dens, its base and the body. On
#: its anterior column, from ``SOLID_FROM_MM`` below the tip (the tip's rounding) to
#: ``SOLID_TO_MM`` (above the shortest C2's disc, 28 mm), a stretch longer than
#: ``SOFT_STRETCH_MM`` reading below ``SOFT_HU`` (soft tissue, a joint space, the canal: 0-100
#: HU; cancellous bone with its cortex >= 200 HU on the 6 x 6 mm mean) is no C2 under the
#: tip: the candidate is skull-base or C1 bone above it.
SOLID_FROM_MM, SOLID_TO_MM = 4.0, 24.0
SOFT_HU = 150.0
SOFT_STRETCH_MM = 4.0


def soft_stretch_mm(profile: np.ndarray, spacing_mm: float) -> float:
    """Longest stretch (mm) of ``profile`` below ``SOFT_HU`` between ``SOLID_FROM_MM`` and
    ``SOLID_TO_MM`` below the tip."""
    part = profile[int(SOLID_FROM_MM / spacing_mm):int(SOLID_TO_MM / spacing_mm) + 1]
    longest = run = 0
    for v in part:
        run = run + 1 if v < SOFT_HU else 0
        longest = max(longest, run)
    return longest * spacing_mm


#: The C2/C3 disc is 3-8 mm thick, with C3's body under it: a drop that stays soft for more
#: than this (mm) is no disc (soft tissue or air under bone that only sits above C2).
MAX_DISC_MM = 10.0


def disc_soft_mm(profile: np.ndarray, height_mm: float, spacing_mm: float) -> float:
    """How far (mm) the column stays soft (below ``SOFT_HU``) from the disc at ``height_mm``
    below the tip, up to where the profile ends."""
    part = profile[int(round(height_mm / spacing_mm)):]
    n = 0
    for v in part:
        if v >= SOFT_HU:
            break
        n += 1
    return n * spacing_mm


def c2_height(crop: Crop, tip_idx: np.ndarray, axis: np.ndarray, k_bottom: int,
              profile: np.ndarray | None = None) -> tuple[float, bool, bool]:
    """Walk down the anterior column from the dens tip: (height mm, disc found, body cut).

    The column's mean HU in a 6 x 6 mm square is sampled every 1 mm
    (:func:`column_profile`); the C2/C3 disc is the first stretch, 28-52 mm below the tip,
    whose density falls below halfway between the body and soft tissue and rises again within
    ``MAX_DISC_MM`` (C3's body under a 3-8 mm disc). If the scan ends before the disc, C2's body
    is cut.
    """
    sp = crop.spacing_mm
    if profile is None:
        profile = column_profile(crop, tip_idx, axis, k_bottom)
    lo_i = int(C2_HEIGHT_RANGE_MM[0] / sp)
    if len(profile) <= lo_i:
        return 0.0, False, True
    body = float(np.median(profile[int(15 / sp):lo_i])) if lo_i > int(15 / sp) else float(profile.max())
    cut = 0.5 * (body + 60.0)
    hi_i = int(C2_HEIGHT_RANGE_MM[1] / sp)
    below = np.nonzero(profile[lo_i:hi_i] < cut)[0]
    # a disc is a thin soft layer between two bodies: C3's body reads bone again within
    # MAX_DISC_MM below its top (or the scan ends there). A drop that stays below the cut
    # further is a change of bone density - the dense dens base above the body's cancellous
    # core - not a disc; the next drop is looked at instead
    starts = [i for n, i in enumerate(below) if n == 0 or below[n - 1] != i - 1]
    reach = int(round(MAX_DISC_MM / sp))
    below = [i for i in starts
             if lo_i + i + reach >= len(profile)
             or np.any(profile[lo_i + i:lo_i + i + reach + 1] >= cut)]
    if len(below):
        height = float((lo_i + below[0]) * sp)
        # C2's inferior articular and spinous processes reach ~10 mm below the disc
        return height, True, len(profile) * sp < height + BELOW_DISC_MM
    if len(profile) * sp < C2_HEIGHT_RANGE_MM[1]:
        # the scan ended before any disc was seen: the body runs into the scan's lower edge,
        # and C2's inferior processes reach below the disc, so C2 is cut
        return 0.0, False, True
    return 0.0, False, False




#: Where (mm below the dens run's lowest island slice) C2's body is looked for, and the least
#: mean density (HU) of the column there: cancellous bone with its cortex reads 150-400 HU on
#: real CT, the canal, the foramen magnum and soft tissue below a skull-base island 0-80 HU.
BODY_BELOW_MM = (3.0, 12.0)
BODY_MIN_HU = 120.0


def body_below(crop: Crop, run) -> float:
    """Mean HU of the column under a dens run (a disc of the dens's width around its lowest
    centres, ``BODY_BELOW_MM`` below it): the dens is the peg of C2, so C2's body lies under it;
    a bone island of the skull base or of C1 has the canal or soft tissue below."""
    sp = crop.spacing_mm
    low = run.slices[:min(len(run.slices), 3)]
    p, lat = np.mean([c.centre_pl for c in low], axis=0)
    radius = max(1.5, 0.35 * float(np.median([c.width_mm for c in run.slices])) / sp)
    pp, ll = np.ogrid[:crop.hu.shape[1], :crop.hu.shape[2]]
    disc = (pp - p) ** 2 + (ll - lat) ** 2 <= radius ** 2
    k0 = int(round(run.k_lo - BODY_BELOW_MM[1] / sp))
    k1 = int(round(run.k_lo - BODY_BELOW_MM[0] / sp))
    ks = [k for k in range(max(0, k0), k1 + 1) if crop.valid[k][disc].all()]
    if not ks or not disc.any():
        return float("nan")      # the scan ends below the run: nothing to say
    return float(np.mean([crop.hu[k][disc].mean() for k in ks]))
