"""The vertebra's mid-sagittal plane from its bilateral symmetry: the finder's roll correction.

C2 is bilaterally symmetric about its mid-sagittal plane; the localiser's frame gives the
vertebra's front (its in-plane turn) but its "up" can be tilted sideways when C2 was read on
the scanner's own slices (a laterally bent or tilted neck: the frame's up is then the scanner's
axis, not a measurement) or when the canal's axis leans. Tilted sideways by 20 degrees, one
pedicle of the crop sits ~5 mm above the other and the corridor search takes the body's
corner. :func:`mirror_roll_deg` finds the rotation about the frame's posterior axis that makes
the crop most nearly its own mirror image (left <-> right), so the pedicles are searched in
the vertebra's own coronal orientation.

Research use only - not a medical device.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
from scipy import ndimage

#: Rolls searched (deg) and their step. The crop's coronal projection (its mean over the
#: posterior axis, which a roll rotates in its own plane) is compared with its mirror image.
MAX_ROLL_DEG = 30.0
ROLL_STEP_DEG = 1.0
#: Offsets (mm) of the mirror plane from the crop's centre searched: the C2 centre lies within
#: a few mm of the midline.
MAX_PLANE_OFFSET_MM = 6.0
#: The frame is rolled only by more than this (deg). A real neck is not perfectly symmetric
#: and the estimate wanders with it: on the three shared real scans in their native pose it
#: reads -2 to +6 deg, and the finder's answer moves 1-2 mm for a roll of 2 deg (its corridor
#: search tolerates a few degrees: at 10 deg the two pedicles, ~15 mm either side of the
#: midline, sit only ~2.6 mm higher and lower). A frame tilted further than this is
#: corrected; one within it is kept as the localiser gave it.
MIN_ROLL_CORRECTION_DEG = 10.0
#: Intensities compared (HU): soft tissue to cortex; air and metal would dominate otherwise.
HU_RANGE = (-100.0, 1200.0)


def _mirror_score(img: np.ndarray, max_shift: int) -> float:
    """Best correlation of the central half (left-right) of ``img`` [S, L] with its mirror,
    over mirror planes ``max_shift`` voxels either side of the centre."""
    n = img.shape[1]
    lo, hi = n // 4, n - n // 4
    best = -1.0
    for sh in range(-max_shift, max_shift + 1):
        a = img[:, lo + sh:hi + sh]
        b = a[:, ::-1]
        aa, bb = a - a.mean(), b - b.mean()
        den = float(np.sqrt((aa * aa).sum() * (bb * bb).sum()))
        if den > 0:
            best = max(best, float((aa * bb).sum()) / den)
    return best


def mirror_roll_deg(hu: np.ndarray) -> Tuple[float, float]:
    """(roll in degrees, its mirror correlation) of a 1 mm crop ``hu`` [S, P, L] around C2:
    the angle by which the crop's S-L plane must be rotated (in the sense of
    ``scipy.ndimage.rotate`` with ``axes=(0, 2)``) for its coronal projection to be most nearly
    left-right symmetric; parabolic refinement between the steps."""
    proj = np.clip(np.asarray(hu, np.float32), *HU_RANGE).mean(axis=1)          # [S, L]
    shift = int(round(MAX_PLANE_OFFSET_MM))
    angles = np.arange(-MAX_ROLL_DEG, MAX_ROLL_DEG + 1e-9, ROLL_STEP_DEG)
    scores = np.array([_mirror_score(ndimage.rotate(proj, a, reshape=False, order=1,
                                                    mode="nearest"), shift) for a in angles])
    i = int(np.argmax(scores))
    best = float(angles[i])
    if 0 < i < len(angles) - 1:
        den = scores[i - 1] - 2 * scores[i] + scores[i + 1]
        if den < -1e-9:
            best += float(np.clip(0.5 * (scores[i - 1] - scores[i + 1]) / den, -0.5, 0.5)) * ROLL_STEP_DEG
    return best, float(scores[i])
