"""C2NetPlanner core: Slicer-free C2 pedicle screw planning from cervical CT.

Research use only - not a medical device.

Conventions (see docs/ARCHITECTURE.md):
- Physical points and vectors are LPS millimetres (SimpleITK / DICOM patient frame).
- Images travel as ``SimpleITK.Image`` so spacing, origin and direction are never lost.
- The canonical frame is identity direction at 1.0 mm: numpy arrays from it are indexed
  ``[S, P, L]`` (axis 0 -> superior, axis 1 -> posterior, axis 2 -> patient left).
"""

__version__ = "0.1.0"

DISCLAIMER = "Research use only \u2014 not a medical device."
