"""Isthmus measurement: pedicle axis, perpendicular cross-sections and the MPD per side.

Given a CT (HU) and a rough pedicle axis - from a pedicle mask (any grid) or a trajectory
(entry -> target) - each side is measured in physical LPS millimetres, with the edges taken
from the CT itself (the mask or trajectory only seeds the axis and bounds the search):

* :mod:`.axis` - the seed axis (mask principal direction / trajectory) and section basis;
* :mod:`.sampling` - slab-averaged CT profiles along rays of each cross-section;
* :mod:`.edges` - the first significant cortical peak per ray, the reader's half-way edges,
  and blur-corrected edges from the profile moments with the scan's own cortical density;
* :mod:`.widths` - caliper widths, the opened medullary canal, transverse chords;
* :mod:`.pedicle` - the sweep, re-centring/re-aiming, the narrowest section and the result;
* :mod:`.slices` - the classifier's five axial slices around the isthmus.

Pedicle axis vectors point posterior -> anterior. Angles are relative to the scanner's axial
plane in the LPS frame (see ``docs/ARCHITECTURE.md``).
"""

from .axis import axis_angles_deg, crop_to_mask
from .pedicle import measure_both, measure_pedicle, measure_trajectory
from .slices import isthmus_slices

__all__ = ["axis_angles_deg", "crop_to_mask", "isthmus_slices", "measure_both", "measure_pedicle",
           "measure_trajectory"]
