"""``report.html``: the self-contained case report (one file, images inline as base64 PNG).

Opens in any browser without network access. Content: title, research-use banner, identifiers,
the per-side table with borderline/disagreement flags, per side the axial and oblique isthmus
views and the classifier's five-slice strip, settings with the cutoff source, models (id,
version, sha256), software versions, warnings and timings. For a failed run: the error message
and its hint instead of the results.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from .. import DISCLAIMER
from ..results import SIDES
from . import summary as S

REPORT_HTML = "report.html"

_CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0 auto;max-width:1000px;
padding:0 16px 40px;color:#111;font-size:14px}
h1{font-size:24px;margin:18px 0 6px}
h2{font-size:18px;border-bottom:2px solid #333;padding-bottom:3px;margin-top:26px}
.banner{background:#b00020;color:#fff;font-weight:bold;padding:8px 12px;font-size:16px;
text-align:center;border-radius:3px}
table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #999;padding:4px 9px;text-align:left;vertical-align:top}
th{background:#eee}
table.ids td:first-child{font-weight:bold;background:#f6f6f6}
table.sides td{text-align:center;min-width:170px}
table.sides td:first-child{text-align:left;font-weight:bold;background:#f6f6f6}
.ok{background:#d9f2dd}
.alert{background:#ffd0d0;font-weight:bold;color:#8a0000}
.borderline{background:#ffe9a8;font-weight:bold;color:#6a4a00}
.flags li{margin:3px 0;font-weight:bold;color:#8a0000}
.error{background:#ffe0e0;border:2px solid #b00020;padding:10px 14px;border-radius:3px}
.muted{color:#555;font-size:12px}
img{max-width:100%;border:1px solid #ccc}
code{font-size:12px;word-break:break-all}
.footer{margin-top:30px;border-top:1px solid #999;padding-top:6px;color:#b00020;font-weight:bold}
@page{size:A4;margin:12mm}
@media print{body{max-width:none;font-size:11px}img{page-break-inside:avoid;max-width:100%}
h2{page-break-after:avoid}table{page-break-inside:avoid}}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _img(png: bytes, alt: str) -> str:
    return (f'<img alt="{_e(alt)}" src="data:image/png;base64,'
            f'{base64.b64encode(png).decode("ascii")}">')


def _ids_table(report: Mapping[str, Any]) -> str:
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in S.identifiers(report))
    return f'<table class="ids">{rows}</table>'


def _sides_table(report: Mapping[str, Any]) -> str:
    rows = S.side_rows(report)
    if not rows:
        return "<p>No side was assessed.</p>"
    shown = S.table_rows(rows)
    labels = dict(shown)
    labels.update(S.verdict_labels(report))
    head = "<tr><th></th>" + "".join(
        f"<th>{_e(S.SIDE_SHORT[r.side].upper())} (patient {r.side})</th>" for r in rows) + "</tr>"
    body = []
    for key, _ in shown:
        cells = "".join(
            f'<td class="{r.flags.get(key, "")}">{_e(r.cells.get(key, "n/a"))}</td>' for r in rows)
        body.append(f"<tr><td>{_e(labels[key])}</td>{cells}</tr>")
    return f'<table class="sides">{head}{"".join(body)}</table>'


def _list(items: List[str], cls: str = "") -> str:
    if not items:
        return "<p class='muted'>none</p>"
    c = f' class="{cls}"' if cls else ""
    return f"<ul{c}>" + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>"


def _kv_table(pairs: List[tuple]) -> str:
    return '<table class="ids">' + "".join(
        f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in pairs) + "</table>"


def render_html(report: Mapping[str, Any], images: Optional[Dict[str, Dict[str, bytes]]] = None
                ) -> str:
    """The HTML text. ``images`` maps side -> {"views": PNG bytes, "strip": PNG bytes}."""
    images = images or {}
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(S.TITLE)}</title>", f"<style>{_CSS}</style></head><body>",
        f'<div class="banner">{_e(DISCLAIMER)}</div>', f"<h1>{_e(S.TITLE)}</h1>",
        _ids_table(report),
    ]
    if report.get("status") == "error":
        err = report.get("error") or {}
        parts += [
            "<h2>The assessment did not complete</h2>",
            '<div class="error">',
            f"<p><b>Error:</b> {_e(err.get('message', 'unknown error'))}</p>",
            f"<p><b>What to do:</b> {_e(err.get('hint') or 'no hint available')}</p>",
            f"<p class='muted'>code: <code>{_e(err.get('code', ''))}</code></p></div>",
        ]
    else:
        parts += ["<h2>Result per side</h2>", _sides_table(report)]
        alerts = S.side_alerts(report)
        if alerts:
            parts.append(_list(alerts, "flags"))
        parts.append(f"<p class='flags'><b>{_e(S.model_basis(report))}</b></p>")
        parts += [f"<p class='muted'>{_e(t)}</p>" for t in
                  (S.verdict_basis(report), S.MPD_DEFINITION, S.ANGLE_DEFINITION)]
        for side in SIDES:
            imgs = images.get(side) or {}
            if not imgs:
                continue
            parts.append(f"<h2>{_e(S.SIDE_SHORT[side])} pedicle (patient {side}) at the "
                         "isthmus</h2>")
            if "views" in imgs:
                parts.append(_img(imgs["views"], f"{side} isthmus views"))
                parts.append(
                    "<p class='muted'>Left: axial plane through the isthmus centre. Right: plane "
                    "perpendicular to the pedicle axis, seen from anterior. Patient right (R) is "
                    "on the image's left (radiological convention). Coloured outline: "
                    "segmented pedicle (green = left, orange = right); cyan: MPD line (dashed "
                    "when projected); dotted yellow: pedicle axis; colour wash: C2-Net attention "
                    "(Grad-CAM, high-risk class).</p>")
            if "strip" in imgs:
                parts.append(_img(imgs["strip"], f"{side} classifier slices"))
                parts.append("<p class='muted'>The network's input: five consecutive 1 mm "
                             "axial slices, wide to narrow, with its attention.</p>")
    parts += ["<h2>Settings</h2>", _kv_table(S.settings_lines(report)) if S.settings_lines(report)
              else "<p class='muted'>n/a</p>",
              "<h2>Models</h2>", _list(S.model_lines(report)),
              "<h2>Software</h2>", _list(S.software_lines(report)),
              "<h2>Warnings</h2>", _list(S.all_warnings(report))]
    t = S.timing_line(report)
    if t:
        parts.append(f"<p class='muted'>Timings: {_e(t)}</p>")
    parts.append(f'<div class="footer">{_e(DISCLAIMER)} Not for diagnosis or treatment '
                 "decisions without independent review of the images.</div></body></html>")
    return "\n".join(parts)


def write_html_report(report: Mapping[str, Any], out_dir: Path,
                      images: Optional[Dict[str, Dict[str, bytes]]] = None) -> Path:
    """Write ``report.html`` into ``out_dir`` and return its path."""
    path = Path(out_dir) / REPORT_HTML
    path.write_text(render_html(report, images), encoding="utf-8")
    return path
