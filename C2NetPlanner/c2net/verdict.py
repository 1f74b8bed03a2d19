"""Decision rules: the measured-MPD verdict and the network verdict, with their sources.

The cutoff and the screw diameter are settings; every report states which were used and why.
"""

from __future__ import annotations

from dataclasses import dataclass

LOW_RISK = "low_risk"
HIGH_RISK = "high_risk"
BORDERLINE = "borderline"

DEFAULT_CUTOFF_MM = 4.78
DEFAULT_SCREW_MM = 3.5
DEFAULT_NETWORK_THRESHOLD = 0.5
#: Attention maps (normalised 0..1) are shown above this value (the paper's display threshold).
CAM_DISPLAY_THRESHOLD = 0.5

#: Known MPD cutoffs (mm) and where they come from.
CUTOFF_SOURCES = {
    4.78: ("Wu et al. 2023, J Orthop Surg Res 18:7: MPD >= 4.78 mm predicted safe 3.5 mm C2 "
           "pedicle screws in 3D-printed models (AUC 0.992); used for the C2-Net labels "
           "(Bao et al. 2026)."),
    4.30: ("Alternative cutoff of the C2-Net sensitivity analysis (Bao et al. 2026)."),
    4.00: ("Maki et al.: C2 pedicles <= 4 mm wide are considered unsuitable for pedicle "
           "screws."),
}


def cutoff_source(cutoff_mm: float) -> str:
    """The literature source of a cutoff, or a note that it was user-defined."""
    for value, source in CUTOFF_SOURCES.items():
        if abs(value - cutoff_mm) < 1e-6:
            return source
    return f"User-defined cutoff ({cutoff_mm:.2f} mm); no literature source recorded."


@dataclass(frozen=True)
class DecisionSettings:
    """Settings behind both verdicts (all in mm except the probability threshold)."""

    cutoff_mm: float = DEFAULT_CUTOFF_MM
    screw_mm: float = DEFAULT_SCREW_MM
    network_threshold: float = DEFAULT_NETWORK_THRESHOLD
    #: "mpd" (outer, cortex-to-cortex; default, as the cutoff's source) or "inner".
    verdict_measure: str = "mpd"

    def __post_init__(self):
        if not (0.5 <= self.cutoff_mm <= 20):
            raise ValueError(f"cutoff {self.cutoff_mm} mm is outside 0.5-20 mm")
        if not (1.0 <= self.screw_mm <= 10):
            raise ValueError(f"screw diameter {self.screw_mm} mm is outside 1-10 mm")
        if not (0.0 < self.network_threshold < 1.0):
            raise ValueError("network threshold must lie strictly between 0 and 1")
        if self.verdict_measure not in ("mpd", "inner"):
            raise ValueError("verdict_measure must be 'mpd' or 'inner'")

    def to_dict(self) -> dict:
        return {
            "cutoff_mm": self.cutoff_mm,
            "cutoff_source": cutoff_source(self.cutoff_mm),
            "screw_mm": self.screw_mm,
            "network_threshold": self.network_threshold,
            "verdict_measure": self.verdict_measure,
            "borderline_rule": "measured width within its uncertainty (mm) of the cutoff",
            "cam_threshold": CAM_DISPLAY_THRESHOLD,
        }


def mpd_verdict(width_mm: float, uncertainty_mm: float, cutoff_mm: float = DEFAULT_CUTOFF_MM,
                no_medullary_canal: bool = False) -> str:
    """low_risk if width >= cutoff, high_risk below; borderline within the uncertainty.

    An isthmus without a medullary canal (solid bone, e.g. over a high-riding vertebral
    artery) is high risk whatever its outer width: there is no canal for the screw."""
    if no_medullary_canal:
        return HIGH_RISK
    if abs(width_mm - cutoff_mm) <= max(uncertainty_mm, 0.0):
        return BORDERLINE
    return LOW_RISK if width_mm >= cutoff_mm else HIGH_RISK


def network_verdict(p_high_risk: float, threshold: float = DEFAULT_NETWORK_THRESHOLD) -> str:
    return HIGH_RISK if p_high_risk >= threshold else LOW_RISK


def agreement(verdict_a: str, verdict_b: str) -> str:
    """"agree", "disagree", or "borderline" when either verdict is borderline."""
    if BORDERLINE in (verdict_a, verdict_b):
        return BORDERLINE
    return "agree" if verdict_a == verdict_b else "disagree"


#: Screw diameter behind every literature cutoff above (all come from 3.5 mm C2 screws).
CUTOFF_REFERENCE_SCREW_MM = 3.5

SCREW_FIT_RULE = ("screw fits when MPD - screw >= cutoff - 3.5 mm, the bony margin the cutoff "
                  "allows a 3.5 mm screw (4.78 - 3.5 = 1.28 mm for Wu 2023); inner clearance = "
                  "inner (medullary) width - screw, negative when the screw must cut into the "
                  "cortex")


def screw_fit(mpd_mm: float, inner_width_mm: float, uncertainty_mm: float,
              settings: DecisionSettings, no_medullary_canal: bool = False) -> dict:
    """The planned screw against the measured isthmus (what ``--screw-mm`` means).

    Both verdicts are for the cutoff's own 3.5 mm screw: the cutoff and the network were
    derived for it. For another diameter this check carries the same bony margin over: a
    screw of ``d`` mm fits when ``MPD - d >= cutoff - 3.5``; within the measurement
    uncertainty of that limit it is "borderline". An extrapolation (constant margin), not a
    validated rule: the report says so. An isthmus without a medullary canal fits no screw.
    """
    required = settings.cutoff_mm - CUTOFF_REFERENCE_SCREW_MM
    margin = float(mpd_mm) - settings.screw_mm
    if no_medullary_canal:
        verdict = "does_not_fit"
    elif abs(margin - required) <= max(uncertainty_mm, 0.0):
        verdict = BORDERLINE
    else:
        verdict = "fits" if margin >= required else "does_not_fit"
    return {
        "screw_mm": settings.screw_mm,
        "margin_mm": round(margin, 3),
        "required_margin_mm": round(required, 3),
        "inner_clearance_mm": round(float(inner_width_mm) - settings.screw_mm, 3),
        "fit": verdict,
        "rule": SCREW_FIT_RULE,
        "validated": abs(settings.screw_mm - CUTOFF_REFERENCE_SCREW_MM) < 1e-6,
    }
