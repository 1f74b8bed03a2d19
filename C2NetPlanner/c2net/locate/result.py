"""What the localiser answers: :class:`C2Location` (LPS mm) and a one-line summary."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

#: Margin (mm) added around C2 for the region of interest.
ROI_MARGIN_MM = 10.0


@dataclass
class C2Location:
    """Where C2 is (LPS mm) and how sure the localiser is.

    ``center_lps_mm`` estimates the centroid of the whole C2 vertebra (pedicles included);
    ``roi_min_lps_mm``/``roi_max_lps_mm`` bound a box containing all of C2 with a margin of
    ``ROI_MARGIN_MM``; ``method`` is ``"automatic"``, ``"seed"`` or ``"vertebra_mask"``;
    ``confidence`` (0..1) says how much of the expected evidence was seen (1 for a label map;
    see :func:`c2net.locate.decide.confidence` for the automatic answer).
    """

    center_lps_mm: tuple
    dens_tip_lps_mm: Optional[tuple]
    roi_min_lps_mm: tuple
    roi_max_lps_mm: tuple
    confidence: float
    method: str
    evidence: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("center_lps_mm", "dens_tip_lps_mm", "roi_min_lps_mm", "roi_max_lps_mm"):
            if d[key] is not None:
                d[key] = [round(float(v), 2) for v in d[key]]
        d["confidence"] = round(float(self.confidence), 3)
        d["frame"] = "LPS mm"
        return d


def location_summary(loc: C2Location) -> str:
    """One human-readable line (LPS mm)."""
    c = ", ".join(f"{v:.1f}" for v in loc.center_lps_mm)
    return f"C2 centre ({c}) LPS mm, {loc.method}, confidence {loc.confidence:.2f}"
