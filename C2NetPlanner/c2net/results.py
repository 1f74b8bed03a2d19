"""Result objects that cross module boundaries (measure -> classify -> report -> Slicer).

Units are in the names (``_mm``, ``_deg``, ``_s``); points and vectors are LPS. ``to_dict``
gives the JSON form that ``report.json`` uses (schema in ``c2net/schemas/report.schema.json``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

SIDES = ("left", "right")
REPORT_SCHEMA_VERSION = "1.0"

Vec3 = Tuple[float, float, float]


def _r(x: Optional[float], nd: int = 3) -> Optional[float]:
    return None if x is None else round(float(x), nd)


def _v(v: Any, nd: int = 4) -> Optional[List[float]]:
    return None if v is None else [round(float(c), nd) for c in v]


@dataclass
class PedicleMeasurement:
    """One side's isthmus measurement (output of :mod:`c2net.measure`)."""

    side: str
    mpd_mm: float                     # smallest outer (cortex-to-cortex) diameter, narrowest section
    mpd_direction_lps: Vec3           # unit vector, in the section plane, along which MPD lies
    mpd_endpoints_lps_mm: Tuple[Vec3, Vec3]  # the line across the isthmus (length = MPD)
    inner_width_mm: float             # medullary (cancellous) width along the MPD direction
    outer_height_mm: float            # outer diameter perpendicular to the MPD direction
    inner_height_mm: float
    isthmus_center_lps_mm: Vec3
    axis_lps: Vec3                    # unit pedicle axis, pointing posterior -> anterior
    medial_angle_deg: float           # axial-plane convergence towards the midline (anteriorly)
    cranial_angle_deg: float          # elevation of the axis above the axial plane
    mpd_uncertainty_mm: float         # estimated 1-sigma-ish uncertainty of mpd_mm
    profile: List[Dict[str, float]] = field(default_factory=list)  # t_mm, outer/inner width
    warnings: List[str] = field(default_factory=list)
    # what a reader reads on the perpendicular plane at the isthmus: widths along the
    # vertebra's left-right direction projected onto it (half-way edges, canal opened 0.5 mm)
    outer_width_transverse_mm: Optional[float] = None
    inner_width_transverse_mm: Optional[float] = None
    transverse_direction_lps: Optional[Vec3] = None
    no_medullary_canal: bool = False  # solid (all-cortex) isthmus or canal < 1 mm: high risk
    axis_source: str = "mask"         # what seeded the axis: "mask" or "trajectory"
    cortical_density_hu: Optional[float] = None  # the scan's cortical density used by the edges
    scan_blur_mm: Optional[float] = None  # the scan's reconstruction blur sigma fitted with it

    def to_dict(self) -> dict:
        return {
            "mpd_mm": _r(self.mpd_mm),
            "mpd_direction_lps": _v(self.mpd_direction_lps),
            "mpd_endpoints_lps_mm": [_v(p, 3) for p in self.mpd_endpoints_lps_mm],
            "inner_width_mm": _r(self.inner_width_mm),
            "height_mm": _r(self.outer_height_mm),
            "inner_height_mm": _r(self.inner_height_mm),
            "isthmus_center_lps_mm": _v(self.isthmus_center_lps_mm, 3),
            "axis_lps": _v(self.axis_lps),
            "medial_angle_deg": _r(self.medial_angle_deg, 2),
            "cranial_angle_deg": _r(self.cranial_angle_deg, 2),
            "mpd_uncertainty_mm": _r(self.mpd_uncertainty_mm),
            "outer_width_transverse_mm": _r(self.outer_width_transverse_mm),
            "inner_width_transverse_mm": _r(self.inner_width_transverse_mm),
            "transverse_direction_lps": _v(self.transverse_direction_lps),
            "no_medullary_canal": bool(self.no_medullary_canal),
            "axis_source": self.axis_source,
            "cortical_density_hu": _r(self.cortical_density_hu, 1),
            "scan_blur_mm": _r(self.scan_blur_mm),
            "profile": [{k: _r(v) for k, v in row.items()} for row in self.profile],
            "measurement_warnings": list(self.warnings),
        }


@dataclass
class IsthmusSlices:
    """Five consecutive 1 mm axial slices around one isthmus, ready for the C3D.

    ``hu`` is (5, H, W) float32 Hounsfield units, ordered wide -> narrow along the pedicle.
    ``slice_centers_lps_mm`` gives, per slice in that order, the LPS point at the crop centre;
    the crop is axis-aligned in the canonical frame (row -> posterior, column -> patient left)
    with ``pixel_mm`` spacing, so pixel (r, c) of slice s sits at
    ``center[s] + ((c - (W-1)/2) * pixel_mm, (r - (H-1)/2) * pixel_mm, 0)``.
    """

    side: str
    hu: np.ndarray
    slice_centers_lps_mm: List[Vec3]
    pixel_mm: float = 1.0
    mask: Optional[np.ndarray] = None   # (5, H, W) uint8 pedicle mask on the same pixels


@dataclass
class RiskPrediction:
    """C2-Net output for one side (output of :mod:`c2net.classify`)."""

    side: str
    p_high_risk: float               # calibrated (temperature-scaled) softmax probability
    logits: Tuple[float, float]      # raw (low, high) logits before calibration
    temperature: float
    cam_high_risk: np.ndarray        # (5, H, W) Grad-CAM of the high-risk class, 0..1
    model_id: str = ""


@dataclass
class SideAssessment:
    side: str
    measurement: Optional[PedicleMeasurement] = None
    prediction: Optional[RiskPrediction] = None
    slices: Optional[IsthmusSlices] = None
    verdict_mpd: Optional[str] = None
    verdict_network: Optional[str] = None
    agreement: Optional[str] = None
    error: Optional[dict] = None
    screw_fit: Optional[dict] = None   # c2net.verdict.screw_fit: the planned screw vs the isthmus
    # which segmenter produced the mask ("unet" / "anatomical_finder"; None: none or given)
    segmenter: Optional[str] = None
    # c2net.pedicle_finder.check.SegmentationCheck: U-Net mask vs the anatomical finder's
    segmentation_check: Any = None

    @property
    def check_segmentation(self) -> bool:
        """True when the side is flagged "check the segmentation"."""
        return bool(self.segmentation_check is not None and self.segmentation_check.flagged)

    def to_dict(self) -> dict:
        d: Dict[str, Any] = {}
        if self.measurement is not None:
            d.update(self.measurement.to_dict())
        d["segmenter"] = self.segmenter
        d["check_segmentation"] = self.check_segmentation
        d["segmentation_check"] = (None if self.segmentation_check is None
                                   else self.segmentation_check.to_dict())
        d["verdict_mpd"] = self.verdict_mpd
        d["screw_fit"] = self.screw_fit
        d["p_high_risk"] = None if self.prediction is None else _r(self.prediction.p_high_risk, 4)
        d["verdict_network"] = self.verdict_network
        d["agreement"] = self.agreement
        if self.slices is not None:
            d["classifier_slice_centers_lps_mm"] = [_v(c, 3) for c in self.slices.slice_centers_lps_mm]
        if self.error is not None:
            d["error"] = self.error
        return d


@dataclass
class Assessment:
    """Everything one "Assess C2" run produced (output of :func:`c2net.assess.assess`).

    The images are kept as SimpleITK images with the **input's own geometry** so that the
    report writer and the Slicer module can save or display them without resampling:
    ``segmentation`` (uint8: 0 background, 1 C2 pedicle left, 2 C2 pedicle right) and
    ``attention`` (float32 0..1 Grad-CAM heat map, 0 outside the classifier's slices).
    """

    status: str = "ok"                       # "ok" or "error"
    error: Optional[dict] = None             # {"code", "message", "hint"} when status == "error"
    warnings: List[str] = field(default_factory=list)
    input: Dict[str, Any] = field(default_factory=dict)        # path, format, size, spacing, ...
    localisation: Dict[str, Any] = field(default_factory=dict)  # C2Location.to_dict()
    sides: Dict[str, SideAssessment] = field(default_factory=dict)
    settings: Dict[str, Any] = field(default_factory=dict)      # DecisionSettings.to_dict()
    models: List[Dict[str, Any]] = field(default_factory=list)  # id, version, sha256, file
    software: Dict[str, Any] = field(default_factory=dict)      # versions, execution provider
    timings_s: Dict[str, float] = field(default_factory=dict)
    ct: Any = None             # sitk.Image, the loaded input CT (HU, input geometry)
    segmentation: Any = None   # sitk.Image on the input grid
    segmentation_sources: Any = None  # c2net.segment.SegmentationOutcome (which segmenter, finder)
    attention: Any = None      # sitk.Image on the input grid
    created_utc: str = ""

    def to_dict(self) -> dict:
        from . import DISCLAIMER

        return {
            "schema": "c2netplanner-report",
            "schema_version": REPORT_SCHEMA_VERSION,
            "status": self.status,
            "error": self.error,
            "warnings": list(self.warnings),
            "created_utc": self.created_utc,
            "input": self.input,
            "localisation": self.localisation,
            "sides": {s: self.sides[s].to_dict() for s in SIDES if s in self.sides},
            "settings": self.settings,
            "models": self.models,
            "software": self.software,
            "timings_s": {k: round(float(v), 4) for k, v in self.timings_s.items()},
            "disclaimer": DISCLAIMER,
        }


def format_probability(p: Optional[float]) -> str:
    """A probability as a person should read it: "< 0.001", "0.274", "> 0.999" (never 0.000/1.000)."""
    if p is None:
        return "n/a"
    if p < 0.001:
        return "< 0.001"
    if p > 0.999:
        return "> 0.999"
    return f"{p:.3f}"


def jsonable(obj: Any) -> Any:
    """A deep copy of ``obj`` that ``json.dumps(allow_nan=False)`` accepts.

    numpy scalars/arrays become Python numbers/lists, tuples become lists, paths become strings,
    NaN and infinities become ``null`` (JSON has no NaN).
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)
