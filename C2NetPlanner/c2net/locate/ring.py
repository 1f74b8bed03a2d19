"""The C1 ring around the dens: the anterior arch in front of it, the lateral masses beside it.

At the level of the atlanto-axial joints the dens (C2) is an isolated island of bone whose
neighbours on the slice are C1: the anterior arch 1-12 mm in front (the atlanto-dental joint
between them) and the two lateral masses within 15 mm on either side. A vertebral body one
level lower has no such neighbours (its pedicles join it), nor does skull-base bone above. These
cues are what makes an island a dens and not another level (the wrong-level guard in
:mod:`c2net.locate.decide` requires them).
"""

from __future__ import annotations

import numpy as np

#: Gap (mm) in front of the dens within which the C1 anterior arch lies.
ARCH_GAP_MM = 12.0
#: Reach (mm) beside the dens within which the C1 lateral masses lie.
MASS_REACH_MM = 15.0


def c1_ring_cues(lab: np.ndarray, label: int, sp_: slice, sl_: slice, spacing_mm: float
                 ) -> tuple[bool, int]:
    """(C1 arch in front, number of sides 0-2 with a lateral mass) around the island ``label``
    of the labelled ``[P, L]`` slice ``lab`` whose bounding box is ``sp_`` x ``sl_``."""
    l_dim = lab.shape[1]
    front, l0, l1 = sp_.start, sl_.start, sl_.stop
    gap = int(round(ARCH_GAP_MM / spacing_mm))
    in_front = lab[max(0, front - gap):front, l0:l1]
    arch = bool(np.any((in_front > 0) & (in_front != label)))
    side = int(round(MASS_REACH_MM / spacing_mm))
    masses = 0
    for a, b in ((max(0, l0 - side), l0), (l1, min(l_dim, l1 + side))):
        region = lab[sp_, a:b]
        if np.any((region > 0) & (region != label)):
            masses += 1
    return arch, masses


def ring_slices(run) -> int:
    """Slices of a :class:`~c2net.locate.dens.DensRun` with the C1 anterior arch in front or a
    lateral mass beside."""
    return sum(1 for c in run.slices if c.arch_in_front or c.masses_beside)
