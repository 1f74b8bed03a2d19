"""Pictures of the report: isthmus views and the classifier's slices, drawn as RGB images.

Per side:

* **Axial view** through the isthmus centre (the axial plane of the patient frame, whatever the
  scan's direction matrix), radiological convention: patient right on the image's left,
  anterior at the top.
* **Oblique view**: the plane perpendicular to the pedicle axis through the isthmus centre,
  seen from anterior: patient right on the image's left, superior at the top. The MPD line lies
  in this plane.
* **Slices**: the classifier's five input slices (wide -> narrow) with the Grad-CAM; the same
  drawing makes the report's strip and the GIF frames.

Every picture shows the pedicle outlines (segment colours), the MPD line (cyan), the attention
overlay and the patient directions (R/L, A/P or S/I) on its edges. Pictures are composed with
numpy + Pillow (a few ms each, ~10x faster than matplotlib); the HTML embeds them as PNG and
the PDF places the same pixels on its pages.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
from PIL import Image, ImageDraw, ImageFont

from ..results import Assessment, SideAssessment
from .style import (
    AXIS_LINE_COLOR,
    MPD_LINE_COLOR,
    SIDE_COLORS,
    SIDE_LABELS,
    SIDE_SHORT,
    verdict_text,
    window_to_unit,
)

_BILINEAR = getattr(Image, "Resampling", Image).BILINEAR   # Pillow >= 9.1 / older

AXIAL_FOV_MM = 60.0
AXIAL_PX_MM = 0.2
OBLIQUE_FOV_MM = 30.0
OBLIQUE_PX_MM = 0.1
VIEW_SCALE = 2            # drawn at 2x the sampling grid so lines and letters stay sharp
SLICE_SCALE = 3           # 64 px (1 mm) slice -> 192 px
CAM_MIN = 0.15            # attention below this is not drawn
CAM_ALPHA_MAX = 0.5        # opacity of the attention wash at attention 1
OUT_OF_PLANE_MM = 1.0     # MPD end points farther than this from a view plane: dashed line
TITLE_PX = 38
VIEW_FONT_PX = 24         # letters on the 600 px views (~8-9 pt on the A4 page)


def _rgb255(c: Sequence[float]) -> Tuple[int, int, int]:
    return tuple(int(round(255 * x)) for x in c[:3])  # type: ignore[return-value]


def _dejavu_dir() -> Optional[str]:
    """matplotlib's bundled DejaVu fonts folder, found without importing matplotlib (whose
    import costs more than the whole report)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("matplotlib")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(list(spec.submodule_search_locations)[0], "mpl-data", "fonts", "ttf")


@lru_cache(maxsize=16)
def font(size: int, bold: bool = False):
    """DejaVu Sans (shipped with matplotlib) at ``size`` px; Pillow's default as fallback."""
    folder = _dejavu_dir()
    if folder is not None:
        name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
        try:
            return ImageFont.truetype(os.path.join(folder, name), size)
        except OSError:
            pass
    try:
        return ImageFont.load_default(size=size)
    except TypeError:     # Pillow < 10.1
        return ImageFont.load_default()


#: The "jet" colour map's piecewise-linear (position, value) nodes per channel (as matplotlib
#: defines it), so the attention wash looks the same without importing a plotting library.
_JET_NODES = {
    "red": ((0.0, 0.0), (0.35, 0.0), (0.66, 1.0), (0.89, 1.0), (1.0, 0.5)),
    "green": ((0.0, 0.0), (0.125, 0.0), (0.375, 1.0), (0.64, 1.0), (0.91, 0.0), (1.0, 0.0)),
    "blue": ((0.0, 0.5), (0.11, 1.0), (0.34, 1.0), (0.65, 0.0), (1.0, 0.0)),
}


@lru_cache(maxsize=1)
def _jet_lut() -> np.ndarray:
    x = np.linspace(0.0, 1.0, 256)
    lut = np.stack([np.interp(x, [p for p, _ in _JET_NODES[c]], [v for _, v in _JET_NODES[c]])
                    for c in ("red", "green", "blue")], axis=1)
    return (lut * 255).astype(np.float32)


# --------------------------------------------------------------------------- sampling planes

@dataclass
class PlaneView:
    """One resampled 2-D view. Pixel (r, c) sits at ``origin + c*px*u + r*px*v`` (LPS mm)."""

    title: str
    side: str
    ct_hu: np.ndarray                 # (rows, cols) HU
    labels: np.ndarray                # (rows, cols) uint8 segmentation labels
    attention: Optional[np.ndarray]   # (rows, cols) 0..1 or None
    origin_lps: np.ndarray
    u: np.ndarray                     # unit LPS vector of increasing column (image right)
    v: np.ndarray                     # unit LPS vector of increasing row (image down)
    px_mm: float
    edges: Tuple[str, str, str, str]  # patient direction at the left, right, top, bottom edge
    mpd_mm: Optional[float] = None
    mpd_px: Optional[np.ndarray] = None     # (2, 2) [(c, r), (c, r)]
    mpd_in_plane: bool = True
    axis_px: Optional[np.ndarray] = None    # (2, 2) projected pedicle axis segment

    def to_px(self, lps: Sequence[Sequence[float]]) -> np.ndarray:
        """LPS points (N, 3) -> pixel coordinates (N, 2) as (column, row)."""
        d = np.atleast_2d(np.asarray(lps, float)) - self.origin_lps
        return np.stack([d @ self.u, d @ self.v], axis=1) / self.px_mm

    def out_of_plane_mm(self, lps: Sequence[Sequence[float]]) -> np.ndarray:
        n = np.cross(self.u, self.v)
        d = np.atleast_2d(np.asarray(lps, float)) - self.origin_lps
        return np.abs(d @ n)


def _unit(v: Sequence[float]) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def sample_plane(image: sitk.Image, center_lps: Sequence[float], u: np.ndarray, v: np.ndarray,
                 fov_mm: float, px_mm: float, interpolator: int, default: float,
                 pixel_type: int) -> Tuple[np.ndarray, np.ndarray]:
    """Resample ``image`` on a square plane (``fov_mm`` wide) spanned by ``u`` (columns) and
    ``v`` (rows) around ``center_lps``. Returns (array (rows, cols), LPS of pixel (0, 0))."""
    n_px = int(round(fov_mm / px_mm))
    u, v = _unit(u), _unit(v)
    normal = np.cross(u, v)
    origin = np.asarray(center_lps, float) - (n_px - 1) / 2.0 * px_mm * (u + v)
    ref = sitk.Image([n_px, n_px, 1], sitk.sitkUInt8)
    ref.SetSpacing([px_mm, px_mm, px_mm])
    ref.SetOrigin(origin.tolist())
    ref.SetDirection(np.column_stack([u, v, normal]).ravel().tolist())
    out = sitk.Resample(image, ref, sitk.Transform(), interpolator, default, pixel_type)
    return sitk.GetArrayFromImage(out)[0], origin


def oblique_basis(axis_lps: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
    """(u, v) of the plane perpendicular to the pedicle axis, seen from anterior.

    u (image right) is patient left projected into the plane, v (image down) is inferior
    projected into the plane, so patient right is on the image's left and superior on top.
    """
    a = _unit(axis_lps)
    x = np.array([1.0, 0.0, 0.0])
    u = x - (x @ a) * a
    if np.linalg.norm(u) < 1e-3:          # axis along left-right: cannot happen for a pedicle
        u = np.array([0.0, 1.0, 0.0]) - a[1] * a
    u = _unit(u)
    z = np.array([0.0, 0.0, 1.0])
    up = z - (z @ a) * a - (z @ u) * u
    if np.linalg.norm(up) < 1e-3:
        up = np.cross(a, u)
    return u, -_unit(up)


def side_views(assessment: Assessment, side: str) -> Optional[Tuple[PlaneView, PlaneView]]:
    """The axial and oblique :class:`PlaneView` at one side's isthmus (None without data)."""
    sa = assessment.sides.get(side)
    if sa is None or sa.measurement is None or assessment.ct is None:
        return None
    m = sa.measurement
    centre = np.asarray(m.isthmus_center_lps_mm, float)
    axis = _unit(m.axis_lps)
    planes = [
        ("axial through the isthmus", np.array([1.0, 0, 0]), np.array([0, 1.0, 0]),
         AXIAL_FOV_MM, AXIAL_PX_MM, ("R", "L", "A", "P")),
        ("perpendicular to the pedicle axis", *oblique_basis(axis),
         OBLIQUE_FOV_MM, OBLIQUE_PX_MM, ("R", "L", "S", "I")),
    ]
    out = []
    for title, u, v, fov, px, edges in planes:
        ct, origin = sample_plane(assessment.ct, centre, u, v, fov, px, sitk.sitkLinear,
                                  -1024.0, sitk.sitkFloat32)
        labels = np.zeros_like(ct, dtype=np.uint8)
        if assessment.segmentation is not None:
            labels, _ = sample_plane(assessment.segmentation, centre, u, v, fov, px,
                                     sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        att = None
        if assessment.attention is not None:
            att, _ = sample_plane(assessment.attention, centre, u, v, fov, px, sitk.sitkLinear,
                                  0.0, sitk.sitkFloat32)
        view = PlaneView(title, side, ct, labels, att, origin, _unit(u), _unit(v), px, edges,
                         mpd_mm=float(m.mpd_mm))
        ends = np.asarray(m.mpd_endpoints_lps_mm, float)
        view.mpd_px = view.to_px(ends)
        view.mpd_in_plane = bool(np.all(view.out_of_plane_mm(ends) <= OUT_OF_PLANE_MM))
        view.axis_px = view.to_px([centre - 12.0 * axis, centre + 12.0 * axis])
        out.append(view)
    return out[0], out[1]


def all_side_views(assessment: Assessment) -> List[Tuple[str, Optional[Tuple[PlaneView, PlaneView]]]]:
    """``[(side, views or None), ...]`` for the sides present, left first."""
    return [(s, side_views(assessment, s)) for s in ("left", "right") if s in assessment.sides]


# --------------------------------------------------------------------------- drawing

def _upscale(a: np.ndarray, k: int) -> np.ndarray:
    return a if k == 1 else np.repeat(np.repeat(a, k, axis=0), k, axis=1)


def _outline(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """Boundary pixels (inside the mask, ``width`` thick) of a 2-D boolean mask."""
    m = mask.astype(bool)
    inner = m.copy()
    for _ in range(width):
        e = inner.copy()
        e[1:, :] &= inner[:-1, :]
        e[:-1, :] &= inner[1:, :]
        e[:, 1:] &= inner[:, :-1]
        e[:, :-1] &= inner[:, 1:]
        inner = e
    return m & ~inner


def base_rgb(hu: np.ndarray, attention: Optional[np.ndarray], labels: Optional[np.ndarray],
             scale: int, outline_px: int = 2) -> np.ndarray:
    """Bone-window grey + attention wash + pedicle outlines, as uint8 RGB ``scale``x larger.

    The grey level is interpolated (bilinear) when enlarging; label outlines are traced on the
    enlarged nearest-neighbour label map so they follow the voxels.
    """
    h, w = hu.shape
    size = (w * scale, h * scale)
    grey = Image.fromarray((window_to_unit(hu) * 255).astype(np.uint8), "L")
    if scale != 1:
        grey = grey.resize(size, _BILINEAR)
    rgb = np.asarray(Image.merge("RGB", (grey, grey, grey))).copy()
    if attention is not None:
        att = np.clip(np.nan_to_num(np.asarray(attention, np.float32)), 0, 1)
        if (att >= CAM_MIN).any():
            if scale != 1:
                att = np.asarray(Image.fromarray(att, "F").resize(size, _BILINEAR))
            sel = att >= CAM_MIN                 # blend only where the wash is drawn
            a = (CAM_ALPHA_MAX * att[sel])[:, None]
            heat = _jet_lut()[(att[sel] * 255).astype(np.uint8)]
            rgb[sel] = (rgb[sel] * (1 - a) + heat * a).clip(0, 255).astype(np.uint8)
    if labels is not None:
        lab = np.asarray(labels)
        for side, value in SIDE_LABELS.items():
            m = lab == value
            if not m.any():
                continue
            # trace the outline only inside the label's bounding box (+1 px margin)
            rows, cols = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
            r0, r1 = max(rows[0] - 1, 0), min(rows[-1] + 2, h)
            c0, c1 = max(cols[0] - 1, 0), min(cols[-1] + 2, w)
            big = _upscale(m[r0:r1, c0:c1], scale)
            edge = _outline(big, outline_px)
            rgb[r0 * scale:r1 * scale, c0 * scale:c1 * scale][edge] = _rgb255(SIDE_COLORS[side])
    return rgb


def _label(d: ImageDraw.ImageDraw, xy: Tuple[float, float], text: str, size: int,
           fill=(255, 255, 0), anchor: str = "mm", bold: bool = True) -> None:
    """Text on a dark box (readable on any background)."""
    f = font(size, bold)
    box = d.textbbox(xy, text, font=f, anchor=anchor)
    d.rectangle((box[0] - 3, box[1] - 2, box[2] + 3, box[3] + 2), fill=(0, 0, 0))
    d.text(xy, text, font=f, fill=fill, anchor=anchor)


def edge_letters(d: ImageDraw.ImageDraw, box: Tuple[int, int, int, int],
                 edges: Tuple[str, str, str, str], size: int) -> None:
    """Patient directions at the middle of the left, right, top and bottom edges of ``box``."""
    x0, y0, x1, y1 = box
    pad = size * 0.75
    left, right, top, bottom = edges
    _label(d, (x0 + pad, (y0 + y1) / 2), left, size)
    _label(d, (x1 - pad, (y0 + y1) / 2), right, size)
    _label(d, ((x0 + x1) / 2, y0 + pad), top, size)
    _label(d, ((x0 + x1) / 2, y1 - pad), bottom, size)


def _dashed(d: ImageDraw.ImageDraw, p0, p1, fill, width: int, dash: float, gap: float) -> None:
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    length = float(np.linalg.norm(p1 - p0))
    if length < 1e-6:
        return
    step = (p1 - p0) / length
    s = 0.0
    while s < length:
        e = min(s + dash, length)
        d.line([tuple(p0 + s * step), tuple(p0 + e * step)], fill=fill, width=width)
        s = e + gap


def render_view(view: PlaneView, scale: int = VIEW_SCALE) -> Image.Image:
    """One isthmus view as an RGB image (title bar on top)."""
    body = base_rgb(view.ct_hu, view.attention, view.labels, scale, outline_px=3)
    h, w = body.shape[:2]
    img = Image.new("RGB", (w, h + TITLE_PX), (255, 255, 255))
    img.paste(Image.fromarray(body), (0, TITLE_PX))
    d = ImageDraw.Draw(img)
    d.text((w / 2, TITLE_PX / 2), f"{SIDE_SHORT[view.side]}: {view.title}",
           font=font(VIEW_FONT_PX, True),
           fill=(0, 0, 0), anchor="mm")
    k = float(scale)

    def px(cr):   # sampling-grid (column, row) -> image pixel (x, y); pixel centres at +0.5
        return ((cr[0] + 0.5) * k, (cr[1] + 0.5) * k + TITLE_PX)

    if view.axis_px is not None:
        _dashed(d, px(view.axis_px[0]), px(view.axis_px[1]), _rgb255(AXIS_LINE_COLOR), 3, 6, 7)
    if view.mpd_px is not None:
        p0, p1 = np.array(px(view.mpd_px[0])), np.array(px(view.mpd_px[1]))
        colour = _rgb255(MPD_LINE_COLOR)
        if view.mpd_in_plane:
            d.line([tuple(p0), tuple(p1)], fill=colour, width=4)
        else:
            _dashed(d, p0, p1, colour, 4, 9, 5)
        along = (p1 - p0) / max(np.linalg.norm(p1 - p0), 1e-6)
        normal = np.array([-along[1], along[0]]) * 9
        for p in (p0, p1):
            d.line([tuple(p - normal), tuple(p + normal)], fill=colour, width=4)
        # the value goes in the bottom-left corner, clear of the anatomy around the line and
        # of the bottom edge's direction letter ("(projected)" on a line of its own above it)
        size = VIEW_FONT_PX - 2
        _label(d, (14, TITLE_PX + h - 14), f"MPD {view.mpd_mm:.2f} mm", size, fill=colour,
               anchor="lb")
        if not view.mpd_in_plane:
            _label(d, (14, TITLE_PX + h - 14 - int(1.6 * size)), "(projected)", size,
                   fill=colour, anchor="lb")
    # scale bar: 5 mm
    bar = 5.0 / view.px_mm * k
    x1, y = w - 22, TITLE_PX + h - 20
    d.line([(x1 - bar, y), (x1, y)], fill=(255, 255, 255), width=5)
    d.text((x1 - bar / 2, y - 6), "5 mm", font=font(VIEW_FONT_PX - 4, True), fill=(255, 255, 255),
           anchor="mb")
    edge_letters(d, (0, TITLE_PX, w, TITLE_PX + h), view.edges, VIEW_FONT_PX + 2)
    return img


def render_views(views: Tuple[PlaneView, PlaneView], gap: int = 8) -> Image.Image:
    """The axial and the oblique view of one side, side by side."""
    a, b = render_view(views[0]), render_view(views[1])
    h = max(a.height, b.height)
    img = Image.new("RGB", (a.width + gap + b.width, h), (255, 255, 255))
    img.paste(a, (0, 0))
    img.paste(b, (a.width + gap, 0))
    return img


def render_slice(side: SideAssessment, index: int, scale: int = SLICE_SCALE,
                 letters_px: int = 14) -> Image.Image:
    """Slice ``index`` of the classifier's input with attention and pedicle outline."""
    sl = side.slices
    hu = np.asarray(sl.hu[index], np.float32)
    cam = None
    if side.prediction is not None:
        c = np.asarray(side.prediction.cam_high_risk, np.float32)
        if c.shape == np.asarray(sl.hu).shape:
            cam = c[index]
    labels = None
    if sl.mask is not None:
        labels = (np.asarray(sl.mask[index]) > 0).astype(np.uint8) * SIDE_LABELS[side.side]
    img = Image.fromarray(base_rgb(hu, cam, labels, scale, outline_px=max(1, scale // 2)))
    edge_letters(ImageDraw.Draw(img), (0, 0, img.width, img.height), ("R", "L", "A", "P"),
                 letters_px)
    return img


def strip_caption(side: SideAssessment, threshold: Optional[float]) -> str:
    p = None if side.prediction is None else float(side.prediction.p_high_risk)
    if p is None:
        return f"{SIDE_SHORT[side.side]}: classifier not run"
    thr = "" if threshold is None else f" (threshold {threshold:.2f})"
    return (f"{SIDE_SHORT[side.side]} pedicle: C2-Net p(high risk) = {p:.2f} -> "
            f"{verdict_text(side.verdict_network)}{thr}")


def render_strip(side: SideAssessment, threshold: Optional[float] = None,
                 gap: int = 6) -> Image.Image:
    """The five classifier slices in a row under a caption with the probability."""
    n = np.asarray(side.slices.hu).shape[0]
    tiles = [render_slice(side, s) for s in range(n)]
    tw, th = tiles[0].size
    head = 50
    img = Image.new("RGB", (n * tw + (n - 1) * gap, th + head), (255, 255, 255))
    d = ImageDraw.Draw(img)
    d.text((2, 2), strip_caption(side, threshold), font=font(17, True), fill=(0, 0, 0))
    for s, tile in enumerate(tiles):
        x = s * (tw + gap)
        img.paste(tile, (x, head))
        tag = " (wide)" if s == 0 else (" (narrow)" if s == n - 1 else "")
        d.text((x + tw / 2, head - 3), f"slice {s + 1}{tag}", font=font(13), fill=(0, 0, 0),
               anchor="mb")
    return img
