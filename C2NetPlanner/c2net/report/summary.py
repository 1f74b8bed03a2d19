"""The human-readable facts of a report, shared by the HTML and PDF writers.

Everything here is plain text/numbers taken from the ``report.json`` dict (so the human
reports show exactly the numbers of the machine-readable one) plus the flags a surgeon must not
miss: borderline measurements and disagreement between the two verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..results import SIDES, format_probability
from ..slicer_geometry import lps_to_ras_points
from .style import SIDE_SHORT, agreement_text, verdict_text

TITLE = "C2 pedicle screw assessment"


def _num(v: Any, fmt: str = "{:.2f}", unit: str = "") -> str:
    if v is None:
        return "n/a"
    return fmt.format(v) + unit


@dataclass
class SideRow:
    """One side's displayed values (strings) and flags."""

    side: str
    cells: Dict[str, str]
    flags: Dict[str, str] = field(default_factory=dict)   # cell key -> "borderline"/"alert"/"ok"


#: (key, row label) of the per-side table, in display order.
TABLE_ROWS: List[Tuple[str, str]] = [
    ("mpd", "MPD (outer, cortex to cortex)"),
    ("uncertainty", "MPD uncertainty"),
    ("inner", "Inner (medullary) width"),
    ("outer_transverse", "Outer width, transverse"),
    ("inner_transverse", "Inner width, transverse"),
    ("height", "Height (outer)"),
    ("medial", "Medial angle"),
    ("cranial", "Cranial angle"),
    ("verdict_mpd", "Measured-width verdict"),
    ("p", "C2-Net p(high risk)"),
    ("verdict_network", "C2-Net verdict"),
    ("agreement", "Agreement"),
    ("screw_fit", "Screw fit"),
    ("segmenter", "Pedicle mask from"),
    ("centre", "Isthmus centre (LPS mm)"),
    ("centre_ras", "Isthmus centre (RAS mm, 3D Slicer)"),
]

#: The definitions a reader needs to read the table (page 1 of the PDF, the HTML).
MPD_DEFINITION = ("MPD (minimum pediculoisthmic diameter): the smallest outer, cortex-to-cortex "
                  "diameter of the narrowest cross-section of the C2 pedicle isthmus, on the plane "
                  "perpendicular to the pedicle axis. Inner width: the medullary (cancellous) "
                  "channel at the same place. Transverse widths: along the vertebra's left-right "
                  "direction on that plane, as a reader measures them.")
ANGLE_DEFINITION = ("Medial angle: in the axial plane, between the pedicle axis and straight "
                    "anterior, positive when the axis converges towards the midline going "
                    "anteriorly. Cranial angle: elevation of the axis above the axial plane, "
                    "positive when it rises going anteriorly. LPS: scanner/DICOM millimetres; RAS: "
                    "the same point as 3D Slicer shows it (x and y negated).")


def verdict_basis(report: Mapping[str, Any]) -> str:
    """One sentence: which verdict rests on what, and what "borderline" asks the surgeon."""
    st = report.get("settings") or {}
    measure = "MPD" if st.get("verdict_measure", "mpd") == "mpd" else "inner width"
    cut = st.get("cutoff_mm")
    cut_text = f"{cut:.2f} mm" if isinstance(cut, (int, float)) else "the"
    return (f"Measured-width verdict: the measured {measure} against the {cut_text} cutoff (its "
            "source under Settings), for a 3.5 mm screw. C2-Net verdict: the network's "
            "probability from five axial slices around the isthmus, a second, independent "
            "opinion. Screw fit: your planned screw against the measured MPD. Borderline means "
            "the width lies within its measurement uncertainty of the cutoff: measure the isthmus "
            "yourself on oblique reformats before choosing a screw or another fixation.")


def model_basis(report: Mapping[str, Any]) -> str:
    """One line: what the models were trained on and that they are not validated on patients."""
    parts = []
    for m in report.get("models") or []:
        basis = m.get("basis") or "training data not recorded"
        parts.append(f"{m.get('kind') or m.get('id')}: {basis}")
    if not parts:
        return "Models: none used for this result."
    return "Models: " + "; ".join(parts) + ". Not validated on patients."


def _fit_text(fit: Optional[Mapping[str, Any]]) -> str:
    if not fit:
        return "n/a"
    words = {"fits": "fits", "does_not_fit": "does not fit", "borderline": "BORDERLINE"}
    text = f"{words.get(fit.get('fit'), fit.get('fit'))}, margin {fit.get('margin_mm'):+.2f} mm"
    return text if fit.get("validated") else text + " *"


#: Rows shown only when some side has a value (fields that older reports do not carry).
OPTIONAL_ROWS = ("outer_transverse", "inner_transverse", "segmenter")


def table_rows(rows: List[SideRow]) -> List[Tuple[str, str]]:
    """:data:`TABLE_ROWS` without the optional rows that no side fills."""
    return [(k, label) for k, label in TABLE_ROWS
            if k not in OPTIONAL_ROWS or any(r.cells.get(k, "n/a") != "n/a" for r in rows)]


def side_rows(report: Mapping[str, Any]) -> List[SideRow]:
    """Per-side displayed cells, left then right."""
    out = []
    for side in SIDES:
        s = (report.get("sides") or {}).get(side)
        if s is None:
            continue
        cells: Dict[str, str] = {}
        flags: Dict[str, str] = {}
        if s.get("error"):
            cells["mpd"] = "not measured (see below)"
        else:
            cells["mpd"] = _num(s.get("mpd_mm"), unit=" mm")
        cells["uncertainty"] = _num(s.get("mpd_uncertainty_mm"), "\u00b1 {:.2f}", " mm")
        cells["inner"] = _num(s.get("inner_width_mm"), unit=" mm")
        if s.get("no_medullary_canal"):
            cells["inner"] = "0 (no medullary canal)"
            flags["inner"] = "alert"
        cells["outer_transverse"] = _num(s.get("outer_width_transverse_mm"), unit=" mm")
        cells["inner_transverse"] = _num(s.get("inner_width_transverse_mm"), unit=" mm")
        cells["screw_fit"] = _fit_text(s.get("screw_fit"))
        flags["screw_fit"] = {"does_not_fit": "alert", "borderline": "borderline",
                              "fits": "ok"}.get((s.get("screw_fit") or {}).get("fit") or "", "")
        seg = s.get("segmenter")
        cells["segmenter"] = ({"unet": "U-Net", "anatomical_finder": "anatomical finder"}.get(seg, seg)
                              if seg else "n/a")
        if s.get("check_segmentation"):
            cells["segmenter"] += " - CHECK"
            flags["segmenter"] = "alert"
        cells["height"] = _num(s.get("height_mm"), unit=" mm")
        cells["medial"] = _num(s.get("medial_angle_deg"), "{:.1f}", "\u00b0")
        cells["cranial"] = _num(s.get("cranial_angle_deg"), "{:.1f}", "\u00b0")
        cells["verdict_mpd"] = verdict_text(s.get("verdict_mpd")).upper() \
            if s.get("verdict_mpd") == "borderline" else verdict_text(s.get("verdict_mpd"))
        cells["p"] = format_probability(s.get("p_high_risk"))
        cells["verdict_network"] = verdict_text(s.get("verdict_network"))
        cells["agreement"] = agreement_text(s.get("agreement"))
        c = s.get("isthmus_center_lps_mm")
        cells["centre"] = "n/a" if not c else ", ".join(f"{x:.1f}" for x in c)
        cells["centre_ras"] = "n/a" if not c else ", ".join(f"{x:.1f}" for x in lps_to_ras_points(c))
        for key, code in (("verdict_mpd", s.get("verdict_mpd")),
                          ("verdict_network", s.get("verdict_network"))):
            flags[key] = {"borderline": "borderline", "high_risk": "alert",
                          "low_risk": "ok"}.get(code or "", "")
        flags["agreement"] = {"disagree": "alert", "borderline": "borderline",
                              "agree": "ok"}.get(s.get("agreement") or "", "")
        if s.get("error"):
            flags["mpd"] = "alert"
        out.append(SideRow(side, cells, flags))
    return out


def verdict_labels(report: Mapping[str, Any]) -> Dict[str, str]:
    """Row labels that carry the settings (cutoff, threshold)."""
    st = report.get("settings") or {}
    cut = st.get("cutoff_mm")
    thr = st.get("network_threshold")
    measure = "MPD" if st.get("verdict_measure", "mpd") == "mpd" else "inner width"
    screw = st.get("screw_mm")
    return {
        "screw_fit": (f"Screw fit ({screw:.1f} mm screw; MPD - screw >= {cut - 3.5:.2f} mm)"
                      if screw is not None and cut is not None else "Screw fit"),
        "verdict_mpd": (f"Measured-width verdict ({measure} \u2265 {cut:.2f} mm = low risk)"
                        if cut is not None else "Measured-width verdict"),
        "verdict_network": (f"C2-Net verdict (p \u2265 {thr:.2f} = high risk)"
                            if thr is not None else "C2-Net verdict"),
    }


def side_alerts(report: Mapping[str, Any]) -> List[str]:
    """Sentences for the flags a reader must not miss (borderline, disagreement, side errors)."""
    out = []
    st = report.get("settings") or {}
    for side in SIDES:
        s = (report.get("sides") or {}).get(side)
        if s is None:
            continue
        name = SIDE_SHORT[side]
        if s.get("error"):
            e = s["error"]
            msg = str(e.get("message", "")).rstrip(".")
            hint = f" What to do: {e['hint']}" if e.get("hint") else ""
            out.append(f"{name}: not assessed: {msg}.{hint}")
            continue
        if s.get("verdict_mpd") == "borderline":
            out.append(f"{name}: the measured width ({_num(s.get('mpd_mm'))} mm "
                       f"\u00b1 {_num(s.get('mpd_uncertainty_mm'))} mm) is within its uncertainty "
                       f"of the {_num(st.get('cutoff_mm'))} mm cutoff: borderline.")
        fit = s.get("screw_fit") or {}
        if fit and not fit.get("validated"):
            out.append(f"{name}: * the screw fit for a {fit.get('screw_mm'):.1f} mm screw carries "
                       "the 3.5 mm cutoff's bony margin over to another diameter; an "
                       "extrapolation, not a validated rule.")
        if s.get("check_segmentation"):
            why = str((s.get("segmentation_check") or {}).get("reason") or
                      "the two segmenters disagree about this pedicle").rstrip(".")
            why = why.removesuffix(": check the segmentation")
            out.append(f"{name}: {why}: check the segmentation outline before trusting the "
                       "numbers.")
        if s.get("no_medullary_canal"):
            out.append(f"{name}: no medullary canal at the isthmus (a solid bony bar, e.g. over "
                       "a high-riding vertebral artery): a screw cannot pass inside the pedicle.")
        if s.get("agreement") == "disagree":
            out.append(f"{name}: the measured-width verdict ({verdict_text(s.get('verdict_mpd'))}) "
                       f"and the network verdict ({verdict_text(s.get('verdict_network'))}) "
                       "disagree: review the images.")
    return out


def identifiers(report: Mapping[str, Any]) -> List[Tuple[str, str]]:
    """(label, value) pairs identifying the patient, study, series and input."""
    inp = report.get("input") or {}

    def g(key: str) -> str:
        v = inp.get(key)
        return "n/a" if v in (None, "") else str(v)

    size = inp.get("size")
    spacing = inp.get("spacing_mm", inp.get("spacing"))
    rows = [
        ("Patient ID", g("patient_id")),
        ("Study UID", g("study_instance_uid")),
        ("Series UID", g("series_instance_uid")),
        ("Series", g("series_description")),
        ("Input", g("path")),
    ]
    if size:
        rows.append(("Size (voxels)", " x ".join(str(s) for s in size)))
    if spacing:
        rows.append(("Spacing (mm)", " x ".join(f"{s:.3g}" for s in spacing)))
    rows.append(("Assessed (UTC)", str(report.get("created_utc") or "n/a")))
    return rows


def settings_lines(report: Mapping[str, Any]) -> List[Tuple[str, str]]:
    st = report.get("settings") or {}
    out = []
    labels = [("cutoff_mm", "MPD cutoff (mm)"), ("cutoff_source", "Cutoff source"),
              ("screw_mm", "Screw diameter (mm)"), ("verdict_measure", "Verdict measure"),
              ("network_threshold", "Network threshold"), ("borderline_rule", "Borderline rule")]
    for key, label in labels:
        if key in st:
            out.append((label, str(st[key])))
    for key, value in st.items():
        if key not in dict(labels):
            out.append((key, str(value)))
    return out


def model_lines(report: Mapping[str, Any]) -> List[str]:
    out = []
    for m in report.get("models") or []:
        parts = [str(m.get("id"))]
        if m.get("kind"):
            parts.append(f"({m['kind']})")
        if m.get("version"):
            parts.append(f"version {m['version']}")
        if m.get("sha256"):
            parts.append(f"sha256 {m['sha256']}")
        out.append(" ".join(parts))
    return out


def software_lines(report: Mapping[str, Any]) -> List[str]:
    sw = report.get("software") or {}
    return [f"{k}: {v}" for k, v in sw.items()]


def timing_line(report: Mapping[str, Any]) -> Optional[str]:
    t = report.get("timings_s") or {}
    if not t:
        return None
    return ", ".join(f"{k} {v:.2f} s" for k, v in t.items())


def all_warnings(report: Mapping[str, Any]) -> List[str]:
    """Run warnings followed by each side's measurement warnings."""
    out = list(report.get("warnings") or [])
    for side in SIDES:
        s = (report.get("sides") or {}).get(side) or {}
        out += [f"{side}: {w}" for w in s.get("measurement_warnings") or []]
    return out
