"""``report.pdf``: the case report on A4 pages (drawn by :mod:`.pdf_canvas`, no dependency).

Page 1: title, research-use banner, identifiers, the per-side table (borderline and disagreement
flagged in colour), and per side the axial and oblique isthmus views. Page 2: the classifier's
five-slice strips with the probability, settings with the cutoff source, models, software,
warnings and timings (continued on further pages when long). Every page carries the disclaimer
in its footer.

Text uses the PDF core fonts (Helvetica, not embedded): universally available and searchable;
characters outside their WinAnsi set are spelled out (">=" for the greater-or-equal sign).
Pictures are the same pixels as the HTML's, embedded losslessly.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple, Union

from PIL import Image

from .. import DISCLAIMER
from ..results import SIDES
from . import summary as S
from .pdf_canvas import A4_PT, FlateImage, Page, pdf_text, write_pdf

#: a picture as drawn (Pillow) or already compressed for the page
Picture = Union[Image.Image, FlateImage]

__all__ = ["REPORT_PDF", "write_pdf_report", "pdf_text"]

REPORT_PDF = "report.pdf"
_FLAG_COLOURS = {"ok": "#d9f2dd", "alert": "#ffd0d0", "borderline": "#ffe9a8", "": "white"}
_LINE_H = 0.0135      # page fraction per text line at 7.5 pt
_WRAP = 125
_CELL_PAD = 0.02      # share of a table cell's width left free before left-aligned text


def _page(title_suffix: str = "") -> Page:
    page = Page()
    page.text(0.06, 0.965, S.TITLE + title_suffix, size=17, bold=True, va="center")
    page.rect(0.06, 0.928, 0.88, 0.022, fill="#b00020")
    page.text(0.5, 0.939, DISCLAIMER, size=11, colour="white", bold=True, ha="center",
              va="center")
    return page


def _footer(page: Page, number: int, n_pages: int, patient: str) -> None:
    page.text(0.06, 0.018, f"{DISCLAIMER}  |  {S.TITLE}  |  patient {patient}", size=7.5,
              colour="#b00020", bold=True)
    page.text(0.94, 0.018, f"page {number}/{n_pages}", size=7.5, ha="right")


def _identifiers(page: Page, report: Mapping[str, Any], top: float) -> float:
    rows = S.identifiers(report)
    half = (len(rows) + 1) // 2
    for col, chunk in enumerate((rows[:half], rows[half:])):
        y = top
        x = 0.06 + col * 0.47
        for label, value in chunk:
            page.text(x, y, label, size=8, bold=True, va="top")
            page.text(x + 0.11, y, textwrap.shorten(value, 62, placeholder="..."), size=8,
                      va="top")
            y -= 0.0135
    return top - half * 0.0135


def _side_table(page: Page, report: Mapping[str, Any], top: float) -> float:
    rows = S.side_rows(report)
    if not rows:
        page.text(0.06, top, "No side was assessed.", size=10, va="top")
        return top - 0.03
    shown = S.table_rows(rows)
    labels = dict(shown)
    labels.update(S.verdict_labels(report))
    row_h = 0.0175
    widths = [0.46 * 0.88] + [0.54 * 0.88 / len(rows)] * len(rows)
    head = [""] + [f"{S.SIDE_SHORT[r.side].upper()} (patient {r.side})" for r in rows]
    table: List[List[Tuple[str, str, bool]]] = [[(h, "#dddddd", True) for h in head]]
    for k, _ in shown:
        line = [(labels[k], "#f2f2f2", True)]
        for r in rows:
            flag = r.flags.get(k, "")
            line.append((r.cells.get(k, "n/a"), _FLAG_COLOURS.get(flag, "white"),
                         flag in ("alert", "borderline")))
        table.append(line)
    y = top
    for i, line in enumerate(table):
        x = 0.06
        for c, ((text, fill, bold), w) in enumerate(zip(line, widths)):
            page.rect(x, y - row_h, w, row_h, fill=fill, stroke="#000000", line_width=0.4)
            bold = bold or i == 0
            if c == 0:
                page.text(x + _CELL_PAD * w, y - row_h / 2, text, size=8.5, bold=bold,
                          va="center")
            else:
                page.text(x + w / 2, y - row_h / 2, text, size=8.5, bold=bold, ha="center",
                          va="center")
            x += w
        y -= row_h
    y -= 0.01
    for alert in S.side_alerts(report):
        for line in textwrap.wrap(alert, 115):
            page.text(0.06, y, line, size=8, colour="#8a0000", bold=True, va="top")
            y -= 0.0135
    return y


def _place(page: Page, img: Picture, x_centre: float, top: float, max_w: float,
           max_h: float) -> float:
    """Place ``img`` (its own pixels, scaled by the page) centred at ``x_centre`` below ``top``;
    return the bottom y (page fraction)."""
    aspect = img.height / img.width * A4_PT[0] / A4_PT[1]   # height/width in page fractions
    w = min(max_w, max_h / aspect)
    h = w * aspect
    page.image(img, x_centre - w / 2, top - h, w, h)
    return top - h


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
    block("Warnings", S.all_warnings(report))
    t = S.timing_line(report)
    if t:
        block("Timings", [t])
    return lines


def _draw_lines(page: Page, lines: List[Tuple[str, str]], top: float) -> None:
    y = top
    for style, text in lines:
        if style == "h":
            page.text(0.06, y, text, size=10.5, bold=True, va="top")
            y -= _LINE_H * 1.35
        else:
            page.text(0.07, y, text, size=7.5, va="top")
            y -= _LINE_H


def _basis_block(page: Page, report: Mapping[str, Any], top: float) -> float:
    """What the result rests on, the definitions and what "borderline" asks (page 1)."""
    y = top
    blocks = [(S.model_basis(report), "#8a0000", True), (S.verdict_basis(report), "#222222", False),
              (S.MPD_DEFINITION, "#333333", False), (S.ANGLE_DEFINITION, "#333333", False)]
    for text, colour, bold in blocks:
        for line in textwrap.wrap(text, 135 if bold else 150):
            page.text(0.06, y, line, size=6.8, colour=colour, bold=bold, va="top")
            y -= 0.0122
        y -= 0.003
    return y


def _page_one(report: Mapping[str, Any], images: Dict[str, Dict[str, Picture]]) -> Page:
    page = _page()
    y = _identifiers(page, report, 0.915)
    y = _side_table(page, report, y - 0.006)
    y = _basis_block(page, report, y - 0.002)
    views = [images[s]["views"] for s in SIDES if "views" in images.get(s, {})]
    if views:
        bottom_limit = 0.075
        row_h = (y - 0.004 - bottom_limit) / len(views)
        for img in views:
            y = _place(page, img, 0.5, y - 0.004, 0.88, row_h - 0.004)
        page.text(0.06, y - 0.004,
                  "Left image: axial plane through the isthmus; right: plane perpendicular to "
                  "the pedicle axis, seen from anterior. Patient right (R) on the image's left.\n"
                  "Outline: segmented pedicle (green left, orange right); cyan: MPD line (dashed "
                  "= projected); dotted yellow: pedicle axis; colour wash: C2-Net attention.",
                  size=7, va="top", colour="#333333")
    return page


def write_pdf_report(report: Mapping[str, Any], out_dir: Path,
                     images: Dict[str, Dict[str, Picture]]) -> Path:
    """Write ``report.pdf`` (A4) into ``out_dir`` and return its path.

    ``images`` maps side -> {"views": axial+oblique picture, "strip": five-slice strip}.
    """
    patient = str((report.get("input") or {}).get("patient_id") or "n/a")
    pages = [_page_one(report, images)]
    p2 = _page(" (continued)")
    y = 0.915
    strips = [images[s]["strip"] for s in SIDES if "strip" in images.get(s, {})]
    for img in strips:
        y = _place(p2, img, 0.5, y, 0.88, 0.2) - 0.012
    if strips:
        p2.text(0.06, y + 0.004, "C2-Net input: five consecutive 1 mm axial slices (wide "
                "-> narrow); outline = segmented pedicle, colour wash = attention (Grad-CAM).",
                size=7, va="top", colour="#333333")
        y -= 0.025
    lines = _text_lines(report)
    capacity = max(int((y - 0.05) / _LINE_H), 0)
    _draw_lines(p2, lines[:capacity], y)
    pages.append(p2)
    rest = lines[capacity:]
    per_page = int((0.915 - 0.05) / _LINE_H)
    while rest:
        p = _page(" (continued)")
        _draw_lines(p, rest[:per_page], 0.915)
        rest = rest[per_page:]
        pages.append(p)
    for i, page in enumerate(pages, 1):
        _footer(page, i, len(pages), patient)
    return write_pdf(Path(out_dir) / REPORT_PDF, pages, title=S.TITLE, subject=DISCLAIMER,
                     creator="C2NetPlanner")
