"""``report.csv``: one row per side, every number and verdict of ``report.json``.

The values are taken from the JSON form of the assessment (same rounding), so the two files
always agree. The first line is the header (no comment lines), so the file loads directly into
spreadsheets, pandas or R; cohort summaries concatenate these rows.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from ..results import SIDES

REPORT_CSV = "report.csv"

#: Column order of report.csv (units in the names; points and vectors LPS).
COLUMNS = [
    "patient_id", "study_instance_uid", "series_instance_uid", "series_description",
    "input_path", "created_utc", "status", "side",
    "mpd_mm", "mpd_uncertainty_mm", "inner_width_mm", "height_mm", "inner_height_mm",
    "outer_width_transverse_mm", "inner_width_transverse_mm", "no_medullary_canal", "axis_source",
    "isthmus_center_x_lps_mm", "isthmus_center_y_lps_mm", "isthmus_center_z_lps_mm",
    "axis_x_lps", "axis_y_lps", "axis_z_lps", "medial_angle_deg", "cranial_angle_deg",
    "verdict_measure", "cutoff_mm", "screw_mm", "verdict_mpd",
    "p_high_risk", "network_threshold", "verdict_network", "agreement",
    "segmenter", "check_segmentation", "segmentation_check_reason",
    "side_error", "classifier_model_id", "model_ids", "disclaimer",
]

_NUMBERS = ["mpd_mm", "mpd_uncertainty_mm", "inner_width_mm", "height_mm", "inner_height_mm",
            "outer_width_transverse_mm", "inner_width_transverse_mm",
            "medial_angle_deg", "cranial_angle_deg", "p_high_risk"]


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)          # shortest exact round-trip form of the JSON number
    return str(v)


def csv_rows(report: Mapping[str, Any], classifier_ids: Optional[Mapping[str, str]] = None
             ) -> List[Dict[str, str]]:
    """The rows of ``report.csv`` from a ``report.json`` dict (one per side present)."""
    inp = report.get("input") or {}
    settings = report.get("settings") or {}
    model_ids = ";".join(
        f"{m.get('id')}@{m.get('version')}" if m.get("version") else str(m.get("id"))
        for m in report.get("models") or [])
    rows = []
    for side in SIDES:
        s = (report.get("sides") or {}).get(side)
        if s is None:
            continue
        centre = s.get("isthmus_center_lps_mm") or [None] * 3
        axis = s.get("axis_lps") or [None] * 3
        err = s.get("error") or {}
        row: Dict[str, Any] = {
            "patient_id": inp.get("patient_id"),
            "study_instance_uid": inp.get("study_instance_uid"),
            "series_instance_uid": inp.get("series_instance_uid"),
            "series_description": inp.get("series_description"),
            "input_path": inp.get("path"),
            "created_utc": report.get("created_utc"),
            "status": report.get("status"),
            "side": side,
            "isthmus_center_x_lps_mm": centre[0],
            "isthmus_center_y_lps_mm": centre[1],
            "isthmus_center_z_lps_mm": centre[2],
            "axis_x_lps": axis[0], "axis_y_lps": axis[1], "axis_z_lps": axis[2],
            "verdict_measure": settings.get("verdict_measure"),
            "cutoff_mm": settings.get("cutoff_mm"),
            "screw_mm": settings.get("screw_mm"),
            "verdict_mpd": s.get("verdict_mpd"),
            "network_threshold": settings.get("network_threshold"),
            "verdict_network": s.get("verdict_network"),
            "agreement": s.get("agreement"),
            "no_medullary_canal": s.get("no_medullary_canal"),
            "axis_source": s.get("axis_source"),
            "segmenter": s.get("segmenter"),
            "check_segmentation": s.get("check_segmentation"),
            "segmentation_check_reason": (s.get("segmentation_check") or {}).get("reason"),
            "side_error": err.get("message") if err else None,
            "classifier_model_id": (classifier_ids or {}).get(side),
            "model_ids": model_ids,
            "disclaimer": report.get("disclaimer"),
        }
        for key in _NUMBERS:
            row[key] = s.get(key)
        rows.append({c: _cell(row.get(c)) for c in COLUMNS})
    return rows


def write_csv_report(report: Mapping[str, Any], out_dir: Path,
                     classifier_ids: Optional[Mapping[str, str]] = None) -> Path:
    """Write ``report.csv`` (header + one row per side) into ``out_dir``."""
    path = Path(out_dir) / REPORT_CSV
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(csv_rows(report, classifier_ids))
    return path
