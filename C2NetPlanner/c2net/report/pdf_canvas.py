"""A small PDF writer for the case report: text in the PDF core fonts, filled rectangles,
lines and RGB images, on pages addressed in page fractions.

The report needs no more than that, and drawing it directly costs a few milliseconds where a
plotting library's PDF backend costs about a second to import. Text is real text
(Helvetica / Helvetica-Bold, WinAnsi encoding; characters those fonts lack are spelt in ASCII
by :func:`pdf_text`), so a report stays searchable and sharp at any zoom. Images are embedded
losslessly (8-bit RGB, Flate with PNG row filters: :class:`FlateImage`) at their own pixel
size and scaled by the page, never resampled.

    page = Page()
    page.text(0.06, 0.96, "C2NetPlanner", size=17, bold=True, va="center")
    page.image(pil_image, x0=0.06, y0=0.5, width=0.88, height=0.3)
    write_pdf("report.pdf", [page], title="...", subject="...", creator="...")

Coordinates: (0, 0) is the page's bottom-left corner, (1, 1) its top-right, as in a plotting
figure. Research use only - not a medical device.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from ._helvetica_widths import HELVETICA, HELVETICA_BOLD

A4_PT = (595.44, 841.68)                  # 8.27 x 11.69 in
#: Helvetica's ascender and descender (font units / 1000 of the size), from its AFM metrics.
ASCENT, DESCENT = 0.718, 0.207
LINE_SPACING = 1.2
#: Flate level of the embedded images: 1 is ~5x faster than 6 at ~15 % larger files.
IMAGE_COMPRESSION = 1


class FlateImage:
    """An 8-bit RGB picture deflated once for both documents: its rows PNG-filtered ("Up":
    each byte minus the one above it, which suits pictures of CT) and compressed with zlib.
    The same bytes are a PNG's image data (:meth:`png`, for the HTML) and a PDF image stream
    (FlateDecode with the PNG predictor, :meth:`Page.image`), so the report compresses each
    picture once instead of twice (Pillow's PNG encoder, then raw RGB for the PDF); the Up
    filter also makes the PDF's images about half the size of unfiltered ones. Lossless: the
    decoded pixels are the picture's own."""

    def __init__(self, img, level: int = IMAGE_COMPRESSION):
        a = np.asarray(img.convert("RGB") if hasattr(img, "convert") else img, dtype=np.uint8)
        if a.ndim != 3 or a.shape[2] != 3:
            raise ValueError("page images must be RGB")
        self.height, self.width = int(a.shape[0]), int(a.shape[1])
        rows = a.reshape(self.height, self.width * 3)
        filtered = np.empty((self.height, self.width * 3 + 1), np.uint8)
        filtered[:, 0] = 2                                  # PNG filter type 2: Up
        filtered[0, 1:] = rows[0]                           # the row above the first is zero
        np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])   # modulo 256
        self.data = zlib.compress(filtered.tobytes(), level)

    @property
    def size(self) -> Tuple[int, int]:
        return self.width, self.height

    def png(self) -> bytes:
        """The picture as a PNG file (8-bit RGB, the same compressed data)."""
        def chunk(kind: bytes, body: bytes) -> bytes:
            return (struct.pack(">I", len(body)) + kind + body
                    + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", self.data)
                + chunk(b"IEND", b""))

_NAMED = {"white": "#ffffff", "black": "#000000"}
_SPELL = {"\u2265": ">=", "\u2264": "<=", "\u2192": "->", "\u2212": "-", "\u2009": " "}
Colour = Union[str, Tuple[float, float, float]]


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


def rgb(colour: Colour) -> Tuple[float, float, float]:
    """``"#rrggbb"``, a few names, or an (r, g, b) tuple in 0..1 -> (r, g, b) in 0..1."""
    if isinstance(colour, str):
        h = _NAMED.get(colour, colour).lstrip("#")
        if len(h) != 6:
            raise ValueError(f"unknown colour {colour!r}")
        return tuple(int(h[i:i + 2], 16) / 255.0 for i in (0, 2, 4))  # type: ignore[return-value]
    return tuple(float(c) for c in colour[:3])  # type: ignore[return-value]


def text_width(s: str, size: float, bold: bool = False) -> float:
    """Width in points of ``s`` (already :func:`pdf_text`) at ``size`` pt."""
    table = HELVETICA_BOLD if bold else HELVETICA
    total = 0
    for b in s.encode("cp1252", "replace"):
        w = table[b - 32] if 32 <= b < 256 else 0
        total += w or 556
    return total * size / 1000.0


def _escape(raw: bytes) -> bytes:
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") \
        .replace(b"\r", b"\\r").replace(b"\n", b"\\n")


def _num(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))


class Page:
    """One page's drawing operations (page-fraction coordinates)."""

    def __init__(self, size_pt: Tuple[float, float] = A4_PT):
        self.size_pt = size_pt
        self._ops: List[str] = []
        self.images: List[FlateImage] = []

    def _pt(self, x: float, y: float) -> Tuple[float, float]:
        return x * self.size_pt[0], y * self.size_pt[1]

    def text(self, x: float, y: float, s: str, size: float = 10.0, bold: bool = False,
             colour: Colour = "#000000", ha: str = "left", va: str = "baseline") -> None:
        """Text at (x, y); ``ha`` left/center/right, ``va`` baseline/top/center (of the whole
        block); ``\\n`` starts a new line."""
        lines = [pdf_text(t) for t in s.split("\n")]
        block = (len(lines) - 1) * LINE_SPACING * size
        px, py = self._pt(x, y)
        if va == "top":
            base = py - ASCENT * size
        elif va == "center":
            base = py + block / 2 - (ASCENT - DESCENT) * size / 2
        else:
            base = py
        r, g, b = rgb(colour)
        font = "F2" if bold else "F1"
        for i, line in enumerate(lines):
            w = text_width(line, size, bold)
            lx = px - (w if ha == "right" else w / 2 if ha == "center" else 0.0)
            raw = _escape(line.encode("cp1252", "replace")).decode("latin-1")
            self._ops.append(f"BT /{font} {_num(size)} Tf {r:.3f} {g:.3f} {b:.3f} rg "
                             f"{lx:.2f} {base - i * LINE_SPACING * size:.2f} Td ({raw}) Tj ET")

    def rect(self, x: float, y: float, w: float, h: float, fill: Optional[Colour] = None,
             stroke: Optional[Colour] = None, line_width: float = 0.5) -> None:
        """A rectangle with its bottom-left corner at (x, y), filled and/or outlined."""
        x0, y0 = self._pt(x, y)
        ww, hh = w * self.size_pt[0], h * self.size_pt[1]
        ops = ["q"]
        if fill is not None:
            ops.append("{:.3f} {:.3f} {:.3f} rg".format(*rgb(fill)))
        if stroke is not None:
            ops.append("{:.3f} {:.3f} {:.3f} RG {} w".format(*rgb(stroke), _num(line_width)))
        paint = "B" if fill is not None and stroke is not None else "f" if fill is not None else "S"
        ops.append(f"{x0:.2f} {y0:.2f} {ww:.2f} {hh:.2f} re {paint} Q")
        self._ops.append(" ".join(ops))

    def image(self, img, x0: float, y0: float, width: float, height: float) -> None:
        """An RGB image (PIL image, (H, W, 3) uint8 array or :class:`FlateImage`) filling the
        box whose bottom-left corner is (x0, y0)."""
        self.images.append(img if isinstance(img, FlateImage) else FlateImage(img))
        x, y = self._pt(x0, y0)
        w, h = width * self.size_pt[0], height * self.size_pt[1]
        self._ops.append(f"q {w:.2f} 0 0 {h:.2f} {x:.2f} {y:.2f} cm /Im{len(self.images)} Do Q")

    def content(self) -> bytes:
        return "\n".join(self._ops).encode("latin-1")


def _info_string(s: str) -> bytes:
    """A PDF text string in UTF-16BE with its byte-order mark (any character)."""
    return b"(" + _escape(b"\xfe\xff" + s.encode("utf-16-be")) + b")"


def write_pdf(path: Union[str, Path], pages: Sequence[Page], title: str = "",
              subject: str = "", creator: str = "") -> Path:
    """Write ``pages`` as a PDF file at ``path``; return the path."""
    objects: List[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    def stream(head: str, data: bytes) -> bytes:
        return (f"<< {head} /Length {len(data)} >>\nstream\n").encode("latin-1") + data + \
            b"\nendstream"

    catalog = add(b"")                    # filled in below
    pages_obj = add(b"")
    fonts = [add(f"<< /Type /Font /Subtype /Type1 /BaseFont /{name} /Encoding /WinAnsiEncoding >>"
                 .encode("latin-1")) for name in ("Helvetica", "Helvetica-Bold")]
    kids = []
    for page in pages:
        xobjects = []
        for i, im in enumerate(page.images, 1):
            n = add(stream(f"/Type /XObject /Subtype /Image /Width {im.width} "
                           f"/Height {im.height} /ColorSpace /DeviceRGB /BitsPerComponent 8 "
                           "/Filter /FlateDecode /DecodeParms << /Predictor 15 /Colors 3 "
                           f"/BitsPerComponent 8 /Columns {im.width} >>", im.data))
            xobjects.append(f"/Im{i} {n} 0 R")
        contents = add(stream("/Filter /FlateDecode", zlib.compress(page.content(), 6)))
        resources = (f"<< /Font << /F1 {fonts[0]} 0 R /F2 {fonts[1]} 0 R >> "
                     f"/XObject << {' '.join(xobjects)} >> >>")
        kids.append(add((f"<< /Type /Page /Parent {pages_obj} 0 R "
                         f"/MediaBox [ 0 0 {page.size_pt[0]:.2f} {page.size_pt[1]:.2f} ] "
                         f"/Resources {resources} /Contents {contents} 0 R >>").encode("latin-1")))
    objects[catalog - 1] = f"<< /Type /Catalog /Pages {pages_obj} 0 R >>".encode("latin-1")
    objects[pages_obj - 1] = (f"<< /Type /Pages /Kids [ {' '.join(f'{k} 0 R' for k in kids)} ] "
                              f"/Count {len(kids)} >>").encode("latin-1")
    info = add(b"<< /Title " + _info_string(title) + b" /Subject " + _info_string(subject)
               + b" /Creator " + _info_string(creator) + b" /Producer (C2NetPlanner) >>")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode("latin-1") + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode("latin-1")
    out += b"".join(f"{o:010d} 00000 n \n".encode("latin-1") for o in offsets)
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root {catalog} 0 R /Info {info} 0 R >>\n"
            f"startxref\n{xref}\n%%EOF\n").encode("latin-1")
    path = Path(path)
    path.write_bytes(bytes(out))
    return path
