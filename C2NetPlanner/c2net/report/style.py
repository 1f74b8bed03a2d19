"""Shared look of the report: side names and colours, the CT display window, verdict wording.

The same colours are stored in ``segmentation.seg.nrrd`` so that Slicer shows the segments as
the report's pictures do.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

from ..verdict import BORDERLINE, HIGH_RISK, LOW_RISK

#: Segment colours (RGB 0..1), patient sides.
SIDE_COLORS: Dict[str, Tuple[float, float, float]] = {
    "left": (0.20, 0.80, 0.35),    # green
    "right": (1.00, 0.60, 0.10),   # orange
}
SIDE_TITLES = {"left": "LEFT pedicle (patient left)", "right": "RIGHT pedicle (patient right)"}
SIDE_SHORT = {"left": "Left", "right": "Right"}
#: Label values of segmentation.nii.gz / .seg.nrrd (docs/ARCHITECTURE.md).
SIDE_LABELS = {"left": 1, "right": 2}

#: Display window for bone (HU): level, width. Display only; the models use their own window.
BONE_WINDOW_HU = (400.0, 1800.0)

MPD_LINE_COLOR = (0.10, 0.85, 1.00)   # cyan
AXIS_LINE_COLOR = (1.00, 1.00, 0.40)  # pale yellow

VERDICT_TEXT = {LOW_RISK: "low risk", HIGH_RISK: "high risk", BORDERLINE: "borderline"}
AGREEMENT_TEXT = {"agree": "agree", "disagree": "DISAGREE - review",
                  "borderline": "borderline - review"}


def verdict_text(verdict: Optional[str]) -> str:
    """Human wording of a verdict code (``"n/a"`` when missing)."""
    if verdict is None:
        return "n/a"
    return VERDICT_TEXT.get(verdict, str(verdict))


def agreement_text(agreement: Optional[str]) -> str:
    if agreement is None:
        return "n/a"
    return AGREEMENT_TEXT.get(agreement, str(agreement))


def window_to_unit(hu, window: Tuple[float, float] = BONE_WINDOW_HU):
    """Map HU to 0..1 with a (level, width) display window (numpy arrays or floats)."""
    import numpy as np

    level, width = window
    return np.clip((np.asarray(hu, dtype=np.float32) - (level - width / 2.0)) / width, 0.0, 1.0)
