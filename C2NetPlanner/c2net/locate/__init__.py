"""Localise the C2 vertebra in a CT in any head pose, or say truthfully why it cannot be done.

``locate_c2(image, seed_lps_mm=None, vertebra_mask=None, c2_label=None)`` returns a
:class:`C2Location`: the C2 centroid and dens tip (LPS mm), a physical box that contains all
of C2 with a margin, a confidence and the evidence used. The package's modules are the cues it
reads; the decision is made in one place, :mod:`c2net.locate.decide`:

* :mod:`~c2net.locate.volume` - input resolution checks and the coarse 2 mm working volume;
* :mod:`~c2net.locate.canal` - the spinal canal, followed as bone-enclosed soft tissue;
* :mod:`~c2net.locate.frame` - the spine's own frame (axis from the canal, front from symmetry);
* :mod:`~c2net.locate.crop` - 1 mm crops, canonical or in the spine frame;
* :mod:`~c2net.locate.dens` - the dens: a round bone island in front of the canal;
* :mod:`~c2net.locate.ring` - the C1 ring around it (anterior arch, lateral masses);
* :mod:`~c2net.locate.disc` - the C2/C3 disc below the dens tip;
* :mod:`~c2net.locate.fov` - is C2 completely inside the scanned volume;
* :mod:`~c2net.locate.overrides` - a seed point or a vertebra label map;
* :mod:`~c2net.locate.result` - :class:`C2Location` and its summary.

Research use only - not a medical device.
"""

from .decide import locate_c2
from .result import C2Location, location_summary

__all__ = ["C2Location", "locate_c2", "location_summary"]
