"""``report.pdf``: the case report on A4 pages (matplotlib PdfPages, no extra dependency).

Page 1: title, research-use banner, identifiers, the per-side table (borderline and disagreement
flagged in colour), and per side the axial and oblique isthmus views. Page 2: the classifier's
five-slice strips with the probability, settings with the cutoff source, models, software,
warnings and timings (continued on further pages when long). Every page carries the disclaimer
in its footer.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .. import DISCLAIMER
from ..results import SIDES, Assessment
from . import summary as S
from .figures import PlaneView, draw_plane, draw_strip
from .html_report import _warnings

REPORT_PDF = "report.pdf"
A4_IN = (8.27, 11.69)
_FLAG_COLOURS = {"ok": "#d9f2dd", "alert": "#ffd0d0", "borderline": "#ffe9a8", "": "white"}
_LINE_H = 0.0135      # figure fraction per text line at 7.5 pt
_WRAP = 125


def _page(title_suffix: str = "") -> Figure:
    fig = Figure(figsize=A4_IN)
    fig.text(0.06, 0.965, S.TITLE + title_suffix, fontsize=17, fontweight="bold", va="center")
    fig.add_artist(Rectangle((0.06, 0.928), 0.88, 0.022, transform=fig.transFigure,
                             color="#b00020"))
    fig.text(0.5, 0.939, DISCLAIMER, fontsize=11, color="white", fontweight="bold",
             ha="center", va="center")
    return fig


def _footer(fig: Figure, page: int, n_pages: int, patient: str) -> None:
    fig.text(0.06, 0.018, f"{DISCLAIMER}  |  {S.TITLE}  |  patient {patient}", fontsize=7.5,
             color="#b00020", fontweight="bold")
    fig.text(0.94, 0.018, f"page {page}/{n_pages}", fontsize=7.5, ha="right")


def _identifiers(fig: Figure, report: Mapping[str, Any], top: float) -> float:
    y = top
    for label, value in S.identifiers(report):
        fig.text(0.06, y, label, fontsize=8, fontweight="bold", va="top")
        fig.text(0.20, y, textwrap.shorten(value, 110, placeholder="..."), fontsize=8, va="top")
        y -= 0.0135
    return y


def _side_table(fig: Figure, report: Mapping[str, Any], top: float) -> float:
    rows = S.side_rows(report)
    if not rows:
        fig.text(0.06, top, "No side was assessed.", fontsize=10, va="top")
        return top - 0.03
    labels = dict(S.TABLE_ROWS)
    labels.update(S.verdict_labels(report))
    n = len(S.TABLE_ROWS) + 1
    height = n * 0.0185
    ax = fig.add_axes((0.06, top - height, 0.88, height))
    ax.axis("off")
    text = [[labels[k]] + [r.cells.get(k, "n/a") for r in rows] for k, _ in S.TABLE_ROWS]
    colours = [["#f2f2f2"] + [_FLAG_COLOURS.get(r.flags.get(k, ""), "white") for r in rows]
               for k, _ in S.TABLE_ROWS]
    head = [""] + [f"{S.SIDE_SHORT[r.side].upper()} (patient {r.side})" for r in rows]
    widths = [0.46] + [0.54 / len(rows)] * len(rows)
    table = ax.table(cellText=text, colLabels=head, cellColours=colours, colWidths=widths,
                     bbox=(0, 0, 1, 1), cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8.5)
    for (r, c), cell in table.get_celld().items():
        if r == 0:
            cell.set_text_props(fontweight="bold")
            cell.set_facecolor("#dddddd")
        if c == 0:
            cell.set_text_props(ha="left", fontweight="bold")
            cell.PAD = 0.02
    y = top - height - 0.012
    for alert in S.side_alerts(report):
        for line in textwrap.wrap(alert, 115):
            fig.text(0.06, y, line, fontsize=8, color="#8a0000", fontweight="bold", va="top")
            y -= 0.0135
    return y


def _views_rows(fig: Figure, views: List[Tuple[str, Optional[Tuple[PlaneView, PlaneView]]]],
                top: float, bottom: float) -> None:
    present = [(s, v) for s, v in views if v is not None]
    if not present:
        return
    row_h = (top - bottom) / len(present)
    size_h = row_h - 0.02
    size_w = size_h * A4_IN[1] / A4_IN[0]
    for i, (_side, (axial, oblique)) in enumerate(present):
        y0 = top - (i + 1) * row_h
        for j, view in enumerate((axial, oblique)):
            x0 = 0.5 - size_w - 0.01 if j == 0 else 0.51
            ax = fig.add_axes((x0, y0 + 0.005, size_w, size_h))
            draw_plane(ax, view, fontsize=8)
    fig.text(0.06, bottom - 0.004,
             "Left image: axial plane through the isthmus; right: plane perpendicular to the "
             "pedicle axis, seen from anterior. Patient right (R) on the image's left.\n"
             "Outline: segmented pedicle (green left, orange right); cyan: MPD line (dashed = "
             "projected); dotted yellow: pedicle axis; colour wash: C2-Net attention.",
             fontsize=7, va="top", color="#333333")


def _text_lines(report: Mapping[str, Any]) -> List[Tuple[str, str]]:
    """(style, text) lines of the settings/models/software/warnings section."""
    lines: List[Tuple[str, str]] = []

    def block(title: str, items: List[str]) -> None:
        lines.append(("h", title))
        if not items:
            lines.append(("t", "none"))
        for item in items:
            for i, w in enumerate(textwrap.wrap(item, _WRAP) or [""]):
                lines.append(("t", w if i == 0 else "    " + w))
        lines.append(("t", ""))

    block("Settings", [f"{k}: {v}" for k, v in S.settings_lines(report)])
    block("Models", S.model_lines(report))
    block("Software", S.software_lines(report))
    block("Warnings", _warnings(report))
    t = S.timing_line(report)
    if t:
        block("Timings", [t])
    return lines


def _draw_lines(fig: Figure, lines: List[Tuple[str, str]], top: float) -> None:
    y = top
    for style, text in lines:
        if style == "h":
            fig.text(0.06, y, text, fontsize=10.5, fontweight="bold", va="top")
            y -= _LINE_H * 1.35
        else:
            fig.text(0.07, y, text, fontsize=7.5, va="top", family="DejaVu Sans")
            y -= _LINE_H


def write_pdf_report(report: Mapping[str, Any], assessment: Assessment, out_dir: Path,
                     views: List[Tuple[str, Optional[Tuple[PlaneView, PlaneView]]]]) -> Path:
    """Write ``report.pdf`` (A4) into ``out_dir`` and return its path."""
    patient = str((report.get("input") or {}).get("patient_id") or "n/a")
    threshold = (report.get("settings") or {}).get("network_threshold")
    pages: List[Figure] = []

    p1 = _page()
    y = _identifiers(p1, report, 0.915)
    y = _side_table(p1, report, y - 0.008)
    _views_rows(p1, views, y - 0.004, 0.085)
    pages.append(p1)

    p2 = _page(" (continued)")
    strips: Dict[str, Any] = {s: assessment.sides[s] for s in SIDES
                              if s in assessment.sides and assessment.sides[s].slices is not None}
    y = 0.915
    for _side, sa in strips.items():
        strip_h = 0.155
        w = 0.88 / 5
        axes = [p2.add_axes((0.06 + i * w + 0.003, y - strip_h, w - 0.006, strip_h - 0.025))
                for i in range(5)]
        caption = draw_strip(axes, sa, threshold, fontsize=7.5)
        p2.text(0.06, y, caption, fontsize=9.5, fontweight="bold", va="top")
        y -= strip_h + 0.012
    if strips:
        p2.text(0.06, y + 0.004, "C2-Net input: five consecutive 1 mm axial slices (wide -> "
                "narrow), outline = segmented pedicle, colour wash = attention (Grad-CAM).",
                fontsize=7, va="top", color="#333333")
        y -= 0.025
    lines = _text_lines(report)
    capacity = int((y - 0.05) / _LINE_H)
    _draw_lines(p2, lines[:capacity], y)
    pages.append(p2)
    rest = lines[capacity:]
    per_page = int((0.915 - 0.05) / _LINE_H)
    while rest:
        p = _page(" (continued)")
        _draw_lines(p, rest[:per_page], 0.915)
        rest = rest[per_page:]
        pages.append(p)

    path = Path(out_dir) / REPORT_PDF
    with PdfPages(path, metadata={"Title": S.TITLE, "Subject": DISCLAIMER,
                                  "Creator": "C2NetPlanner"}) as pdf:
        for i, fig in enumerate(pages, 1):
            _footer(fig, i, len(pages), patient)
            pdf.savefig(fig)
    return path
