"""``report.pdf``: the case report on A4 pages (matplotlib PdfPages, no extra dependency).

Page 1: title, research-use banner, identifiers, the per-side table (borderline and disagreement
flagged in colour), and per side the axial and oblique isthmus views. Page 2: the classifier's
five-slice strips with the probability, settings with the cutoff source, models, software,
warnings and timings (continued on further pages when long). Every page carries the disclaimer
in its footer.

Text uses the PDF core fonts (Helvetica, not embedded): ~7x faster to write than embedded
TrueType and universally available; characters outside their Latin-1/WinAnsi set are spelled
out (">=" for the greater-or-equal sign). Pictures are the same pixels as the HTML's.
"""

from __future__ import annotations

import contextlib
import logging
import textwrap
from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple

import matplotlib
import numpy as np
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.image import BboxImage
from matplotlib.patches import Rectangle
from matplotlib.transforms import Bbox, TransformedBbox
from PIL import Image

from .. import DISCLAIMER
from ..results import SIDES
from . import summary as S

REPORT_PDF = "report.pdf"
A4_IN = (8.27, 11.69)
_FLAG_COLOURS = {"ok": "#d9f2dd", "alert": "#ffd0d0", "borderline": "#ffe9a8", "": "white"}
_LINE_H = 0.0135      # figure fraction per text line at 7.5 pt
_WRAP = 125
_RC = {"pdf.use14corefonts": True, "font.family": "sans-serif",
       "font.sans-serif": ["Helvetica"], "font.weight": "medium", "pdf.compression": 6}
_SPELL = {"\u2265": ">=", "\u2264": "<=", "\u2192": "->", "\u2212": "-", "\u2009": " "}


@contextlib.contextmanager
def _quiet_font_manager():
    """Silence matplotlib's "findfont: Failed to find font weight ..." notes about the core
    fonts' weight names while the PDF is drawn (restored afterwards)."""
    logger = logging.getLogger("matplotlib.font_manager")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def pdf_text(s: str) -> str:
    """``s`` with characters the PDF core fonts lack replaced by ASCII spellings."""
    out = []
    for ch in s:
        try:
            ch.encode("cp1252")
            out.append(ch)
        except UnicodeEncodeError:
            out.append(_SPELL.get(ch, "?"))
    return "".join(out)


def _text(fig: Figure, x: float, y: float, s: str, **kw) -> None:
    fig.text(x, y, pdf_text(s), **kw)


def _page(title_suffix: str = "") -> Figure:
    fig = Figure(figsize=A4_IN)
    _text(fig, 0.06, 0.965, S.TITLE + title_suffix, fontsize=17, fontweight="bold",
          va="center")
    fig.add_artist(Rectangle((0.06, 0.928), 0.88, 0.022, transform=fig.transFigure,
                             color="#b00020"))
    _text(fig, 0.5, 0.939, DISCLAIMER, fontsize=11, color="white", fontweight="bold",
          ha="center", va="center")
    return fig


def _footer(fig: Figure, page: int, n_pages: int, patient: str) -> None:
    _text(fig, 0.06, 0.018, f"{DISCLAIMER}  |  {S.TITLE}  |  patient {patient}", fontsize=7.5,
          color="#b00020", fontweight="bold")
    _text(fig, 0.94, 0.018, f"page {page}/{n_pages}", fontsize=7.5, ha="right")


def _identifiers(fig: Figure, report: Mapping[str, Any], top: float) -> float:
    rows = S.identifiers(report)
    half = (len(rows) + 1) // 2
    for col, chunk in enumerate((rows[:half], rows[half:])):
        y = top
        x = 0.06 + col * 0.47
        for label, value in chunk:
            _text(fig, x, y, label, fontsize=8, fontweight="bold", va="top")
            _text(fig, x + 0.11, y, textwrap.shorten(value, 62, placeholder="..."), fontsize=8,
                  va="top")
            y -= 0.0135
    return top - half * 0.0135


def _side_table(fig: Figure, report: Mapping[str, Any], top: float) -> float:
    rows = S.side_rows(report)
    if not rows:
        _text(fig, 0.06, top, "No side was assessed.", fontsize=10, va="top")
        return top - 0.03
    shown = S.table_rows(rows)
    labels = dict(shown)
    labels.update(S.verdict_labels(report))
    height = (len(shown) + 1) * 0.0175
    ax = fig.add_axes((0.06, top - height, 0.88, height))
    ax.axis("off")
    text = [[pdf_text(labels[k])] + [pdf_text(r.cells.get(k, "n/a")) for r in rows]
            for k, _ in shown]
    colours = [["#f2f2f2"] + [_FLAG_COLOURS.get(r.flags.get(k, ""), "white") for r in rows]
               for k, _ in shown]
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
        elif r > 0 and rows[c - 1].flags.get(shown[r - 1][0]) in ("alert", "borderline"):
            cell.set_text_props(fontweight="bold")
    y = top - height - 0.01
    for alert in S.side_alerts(report):
        for line in textwrap.wrap(alert, 115):
            _text(fig, 0.06, y, line, fontsize=8, color="#8a0000", fontweight="bold", va="top")
            y -= 0.0135
    return y


def _place(fig: Figure, img: Image.Image, x_centre: float, top: float, max_w: float,
           max_h: float) -> float:
    """Place ``img`` (pixels unresampled in the PDF) centred at ``x_centre`` below ``top``;
    return the bottom y (figure fraction)."""
    aspect = img.height / img.width * A4_IN[0] / A4_IN[1]   # height/width in figure fractions
    w = min(max_w, max_h / aspect)
    h = w * aspect
    # A BboxImage straight on the figure: no Axes (whose creation costs ~50 ms each).
    box = TransformedBbox(Bbox([[x_centre - w / 2, top - h], [x_centre + w / 2, top]]),
                          fig.transFigure)
    artist = BboxImage(box, interpolation="none", origin="upper")
    artist.set_data(np.asarray(img))
    fig.add_artist(artist)
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


def _draw_lines(fig: Figure, lines: List[Tuple[str, str]], top: float) -> None:
    y = top
    for style, text in lines:
        if style == "h":
            _text(fig, 0.06, y, text, fontsize=10.5, fontweight="bold", va="top")
            y -= _LINE_H * 1.35
        else:
            _text(fig, 0.07, y, text, fontsize=7.5, va="top")
            y -= _LINE_H


def _basis_block(fig: Figure, report: Mapping[str, Any], top: float) -> float:
    """What the result rests on, the definitions and what "borderline" asks (page 1)."""
    y = top
    blocks = [(S.model_basis(report), "#8a0000", "bold"), (S.verdict_basis(report), "#222222", "normal"),
              (S.MPD_DEFINITION, "#333333", "normal"), (S.ANGLE_DEFINITION, "#333333", "normal")]
    for text, colour, weight in blocks:
        for line in textwrap.wrap(text, 135 if weight == "bold" else 150):
            _text(fig, 0.06, y, line, fontsize=6.8, color=colour, fontweight=weight, va="top")
            y -= 0.0122
        y -= 0.003
    return y


def _page_one(report: Mapping[str, Any], images: Dict[str, Dict[str, Image.Image]]) -> Figure:
    fig = _page()
    y = _identifiers(fig, report, 0.915)
    y = _side_table(fig, report, y - 0.006)
    y = _basis_block(fig, report, y - 0.002)
    views = [images[s]["views"] for s in SIDES if "views" in images.get(s, {})]
    if views:
        bottom_limit = 0.075
        row_h = (y - 0.004 - bottom_limit) / len(views)
        for img in views:
            y = _place(fig, img, 0.5, y - 0.004, 0.88, row_h - 0.004)
        _text(fig, 0.06, y - 0.004,
              "Left image: axial plane through the isthmus; right: plane perpendicular to the "
              "pedicle axis, seen from anterior. Patient right (R) on the image's left.\n"
              "Outline: segmented pedicle (green left, orange right); cyan: MPD line (dashed = "
              "projected); dotted yellow: pedicle axis; colour wash: C2-Net attention.",
              fontsize=7, va="top", color="#333333")
    return fig


def write_pdf_report(report: Mapping[str, Any], out_dir: Path,
                     images: Dict[str, Dict[str, Image.Image]]) -> Path:
    """Write ``report.pdf`` (A4) into ``out_dir`` and return its path.

    ``images`` maps side -> {"views": axial+oblique picture, "strip": five-slice strip}.
    """
    patient = str((report.get("input") or {}).get("patient_id") or "n/a")
    with matplotlib.rc_context(_RC), _quiet_font_manager():
        pages = [_page_one(report, images)]
        p2 = _page(" (continued)")
        y = 0.915
        strips = [images[s]["strip"] for s in SIDES if "strip" in images.get(s, {})]
        for img in strips:
            y = _place(p2, img, 0.5, y, 0.88, 0.2) - 0.012
        if strips:
            _text(p2, 0.06, y + 0.004, "C2-Net input: five consecutive 1 mm axial slices (wide "
                  "-> narrow); outline = segmented pedicle, colour wash = attention (Grad-CAM).",
                  fontsize=7, va="top", color="#333333")
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

        path = Path(out_dir) / REPORT_PDF
        with PdfPages(path, metadata={"Title": S.TITLE, "Subject": DISCLAIMER,
                                      "Creator": "C2NetPlanner"}) as pdf:
            for i, fig in enumerate(pages, 1):
                _footer(fig, i, len(pages), patient)
                pdf.savefig(fig)
    return path
