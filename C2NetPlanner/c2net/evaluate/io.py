"""Reading and validating the CSV files of ``c2net evaluate``.

One row describes one C2 pedicle (one *side* of one patient). Files are comma-separated
(``;`` and tab are detected too), UTF-8 (a byte-order mark is accepted), with a header row.
Column names are case-insensitive; unknown columns are ignored.

predictions (``--predictions``)
    ``patient_id``, ``side`` (``left``/``right``, patient side), ``p_high_risk`` (the model's
    probability of high risk, 0..1), optional ``mpd_mm`` (the automatically measured minimum
    pedicle diameter, mm), optional fold column (default name ``fold``) when the file holds the
    test-set predictions of several cross-validation splits. One row per side, or per side and
    fold.
truth (``--truth``)
    ``patient_id``, ``side`` and ``label`` (``high_risk``/``low_risk``, ``high``/``low`` or
    ``1``/``0``) and/or ``mpd_mm`` (the reference MPD, mm). Without a label the label is derived
    from ``mpd_mm``: high risk when ``mpd_mm < cutoff``. The sensitivity analysis at the
    alternative cutoff needs ``mpd_mm``.
readers (``--readers``, repeatable)
    ``patient_id``, ``side``, ``call`` (same values as ``label``); the reader's name comes from a
    ``reader`` column (several readers in one file) or else from the file name without its
    extension; optional ``experience`` (free text, e.g. ``junior``, ``12 years``).
MPD reference (``--mpd-reference``)
    ``patient_id``, ``side``, ``mpd_mm`` measured by a second source (e.g. a reader), compared
    with the predictions' ``mpd_mm``.

Every problem raises :class:`c2net.errors.InputError` naming the file, the row (line number in
the file, header = line 1) and the column.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import InputError

SideKey = Tuple[str, str]  # (patient_id, side)

SIDE_VALUES = {"left": "left", "l": "left", "right": "right", "r": "right"}
LABEL_VALUES = {
    "high_risk": 1, "high": 1, "1": 1, "1.0": 1, "true": 1,
    "low_risk": 0, "low": 0, "0": 0, "0.0": 0, "false": 0,
}

FORMAT_HINT = {
    "predictions": ("predictions CSV columns: patient_id, side (left/right), p_high_risk (0..1), "
                    "optional mpd_mm, optional fold; one row per side (per side and fold)."),
    "truth": ("truth CSV columns: patient_id, side (left/right), and label (high_risk/low_risk "
              "or 1/0) and/or mpd_mm (label derived as high risk when mpd_mm < cutoff)."),
    "readers": ("readers CSV columns: patient_id, side (left/right), call (high_risk/low_risk or "
                "1/0), optional reader (else the file name is the reader's name), optional "
                "experience."),
    "mpd_reference": "MPD reference CSV columns: patient_id, side (left/right), mpd_mm.",
}


@dataclass(frozen=True)
class PredictionRow:
    patient_id: str
    side: str
    p_high_risk: float
    mpd_mm: Optional[float]
    fold: Optional[str]
    line: int


@dataclass
class Predictions:
    path: str
    rows: List[PredictionRow]
    has_folds: bool
    fold_column: Optional[str]


@dataclass(frozen=True)
class TruthRow:
    label: Optional[int]      # 1 high risk, 0 low risk, None when only mpd_mm was given
    mpd_mm: Optional[float]
    line: int


@dataclass
class Truth:
    path: str
    rows: Dict[SideKey, TruthRow]
    has_label: bool
    has_mpd: bool


@dataclass
class ReaderCalls:
    name: str
    path: str
    experience: Optional[str]
    calls: Dict[SideKey, int] = field(default_factory=dict)


def _fail(kind: str, path: str, message: str, line: Optional[int] = None,
          column: Optional[str] = None) -> InputError:
    where = os.path.basename(path)
    if line is not None:
        where += f", row {line}"
    if column is not None:
        where += f", column '{column}'"
    return InputError(f"{kind} file {where}: {message}", FORMAT_HINT.get(kind, ""),
                      code="evaluate_csv")


def read_table(path: str, kind: str) -> Tuple[List[str], List[Tuple[int, Dict[str, str]]]]:
    """Header (lower-cased) and ``(line_number, {column: raw value})`` rows of a CSV file."""
    if not os.path.isfile(path):
        raise _fail(kind, path, f"not found ({path})")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(kind, path, f"cannot be read as UTF-8 text ({exc})") from exc
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise _fail(kind, path, "is empty (a header row is required)")
    first = lines[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    reader = csv.reader(lines, delimiter=delimiter)
    header = [h.strip().lower() for h in next(reader)]
    seen = set()
    for name in header:
        if name in seen and name:
            raise _fail(kind, path, f"column '{name}' appears twice in the header", 1)
        seen.add(name)
    rows = []
    for index, values in enumerate(reader, start=2):
        if not values or all(not v.strip() for v in values):
            continue  # blank line
        if len(values) > len(header):
            raise _fail(kind, path, f"{len(values)} fields but the header has {len(header)}",
                        index)
        row = {name: (values[i].strip() if i < len(values) else "")
               for i, name in enumerate(header)}
        rows.append((index, row))
    if not rows:
        raise _fail(kind, path, "has a header but no data rows")
    return header, rows


def _require(kind: str, path: str, header: Sequence[str], columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in header]
    if missing:
        raise _fail(kind, path, f"missing column(s) {', '.join(missing)}; found "
                                f"{', '.join(h for h in header if h) or 'none'}")


def _text(kind: str, path: str, row: Dict[str, str], line: int, column: str) -> str:
    value = row.get(column, "")
    if not value:
        raise _fail(kind, path, "empty value", line, column)
    return value


def _side(kind: str, path: str, row: Dict[str, str], line: int) -> str:
    raw = _text(kind, path, row, line, "side")
    side = SIDE_VALUES.get(raw.lower())
    if side is None:
        raise _fail(kind, path, f"side must be 'left' or 'right' (patient side), got '{raw}'",
                    line, "side")
    return side


def _label(kind: str, path: str, row: Dict[str, str], line: int, column: str) -> int:
    raw = _text(kind, path, row, line, column)
    value = LABEL_VALUES.get(raw.lower())
    if value is None:
        raise _fail(kind, path, f"expected high_risk/low_risk or 1/0, got '{raw}'", line, column)
    return value


def _number(kind: str, path: str, row: Dict[str, str], line: int, column: str,
            low: float, high: float, what: str, optional: bool = False) -> Optional[float]:
    raw = row.get(column, "")
    if not raw:
        if optional:
            return None
        raise _fail(kind, path, "empty value", line, column)
    try:
        value = float(raw)
    except ValueError:
        raise _fail(kind, path, f"expected {what}, got '{raw}'", line, column) from None
    if not math.isfinite(value) or not (low <= value <= high):
        raise _fail(kind, path, f"expected {what}, got '{raw}'", line, column)
    return value


MPD_RANGE_MM = (0.0, 50.0)


def read_predictions(path: str, fold_column: Optional[str] = "fold") -> Predictions:
    """Validated model predictions (see the module docstring for the format)."""
    kind = "predictions"
    header, raw_rows = read_table(path, kind)
    _require(kind, path, header, ("patient_id", "side", "p_high_risk"))
    fold_col = fold_column.lower() if fold_column else None
    has_folds = bool(fold_col) and fold_col in header
    has_mpd = "mpd_mm" in header
    rows: List[PredictionRow] = []
    first_line: Dict[Tuple[str, str, Optional[str]], int] = {}
    for line, row in raw_rows:
        pid = _text(kind, path, row, line, "patient_id")
        side = _side(kind, path, row, line)
        p = _number(kind, path, row, line, "p_high_risk", 0.0, 1.0, "a probability in 0..1")
        mpd = (_number(kind, path, row, line, "mpd_mm", *MPD_RANGE_MM,
                       "a diameter in mm (0-50)", optional=True) if has_mpd else None)
        fold = _text(kind, path, row, line, fold_col) if has_folds else None
        key = (pid, side, fold)
        if key in first_line:
            extra = f" in fold '{fold}'" if has_folds else ""
            raise _fail(kind, path, f"patient '{pid}' {side} side{extra} appears twice (also on "
                                    f"row {first_line[key]})", line)
        first_line[key] = line
        rows.append(PredictionRow(pid, side, float(p), mpd, fold, line))
    return Predictions(path=path, rows=rows, has_folds=has_folds,
                       fold_column=fold_col if has_folds else None)


def read_truth(path: str) -> Truth:
    """Validated ground truth (label and/or reference MPD per side)."""
    kind = "truth"
    header, raw_rows = read_table(path, kind)
    _require(kind, path, header, ("patient_id", "side"))
    has_label, has_mpd = "label" in header, "mpd_mm" in header
    if not (has_label or has_mpd):
        raise _fail(kind, path, "needs a 'label' column, an 'mpd_mm' column, or both")
    rows: Dict[SideKey, TruthRow] = {}
    for line, row in raw_rows:
        pid = _text(kind, path, row, line, "patient_id")
        side = _side(kind, path, row, line)
        label = (_label(kind, path, row, line, "label")
                 if has_label and row.get("label") else None)
        mpd = (_number(kind, path, row, line, "mpd_mm", *MPD_RANGE_MM, "a diameter in mm (0-50)",
                       optional=True) if has_mpd else None)
        if label is None and mpd is None:
            raise _fail(kind, path, "neither label nor mpd_mm is given", line,
                        "label" if has_label else "mpd_mm")
        key = (pid, side)
        if key in rows:
            raise _fail(kind, path, f"patient '{pid}' {side} side appears twice (also on row "
                                    f"{rows[key].line})", line)
        rows[key] = TruthRow(label, mpd, line)
    return Truth(path=path, rows=rows, has_label=has_label, has_mpd=has_mpd)


def read_readers(path: str) -> List[ReaderCalls]:
    """One :class:`ReaderCalls` per reader in the file (``reader`` column or the file name)."""
    kind = "readers"
    header, raw_rows = read_table(path, kind)
    _require(kind, path, header, ("patient_id", "side", "call"))
    stem = os.path.basename(path)
    for ext in (".csv", ".tsv", ".txt"):
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
    by_name: Dict[str, ReaderCalls] = {}
    first_line: Dict[Tuple[str, SideKey], int] = {}
    for line, row in raw_rows:
        name = row.get("reader", "") if "reader" in header else stem
        if not name:
            raise _fail(kind, path, "empty value", line, "reader")
        pid = _text(kind, path, row, line, "patient_id")
        side = _side(kind, path, row, line)
        call = _label(kind, path, row, line, "call")
        experience = row.get("experience") or None
        reader = by_name.setdefault(name, ReaderCalls(name=name, path=path, experience=experience))
        if experience and reader.experience and experience != reader.experience:
            raise _fail(kind, path, f"reader '{name}' has two experience values "
                                    f"('{reader.experience}' and '{experience}')", line,
                        "experience")
        reader.experience = reader.experience or experience
        key = (name, (pid, side))
        if key in first_line:
            raise _fail(kind, path, f"reader '{name}' calls patient '{pid}' {side} side twice "
                                    f"(also on row {first_line[key]})", line)
        first_line[key] = line
        reader.calls[(pid, side)] = call
    return list(by_name.values())


def read_mpd_reference(path: str) -> Dict[SideKey, float]:
    """Reference MPD (mm) per side from a second source."""
    kind = "mpd_reference"
    header, raw_rows = read_table(path, kind)
    _require(kind, path, header, ("patient_id", "side", "mpd_mm"))
    out: Dict[SideKey, float] = {}
    lines: Dict[SideKey, int] = {}
    for line, row in raw_rows:
        pid = _text(kind, path, row, line, "patient_id")
        side = _side(kind, path, row, line)
        mpd = _number(kind, path, row, line, "mpd_mm", *MPD_RANGE_MM, "a diameter in mm (0-50)")
        key = (pid, side)
        if key in out:
            raise _fail(kind, path, f"patient '{pid}' {side} side appears twice (also on row "
                                    f"{lines[key]})", line)
        out[key] = float(mpd)
        lines[key] = line
    return out
