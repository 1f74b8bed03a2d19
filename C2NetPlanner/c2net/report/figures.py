"""Pictures of the report (matplotlib, Agg): isthmus views and the classifier's slice strip.

Per side:

* **Axial view** through the isthmus centre (the axial plane of the patient frame, whatever the
  scan's direction matrix), radiological convention: patient right on the image's left,
  anterior at the top.
* **Oblique view**: the plane perpendicular to the pedicle axis through the isthmus centre,
  seen from anterior: patient right on the image's left, superior at the top. The MPD line lies
  in this plane.
* **Five-slice strip**: the classifier's input slices (wide -> narrow) with the Grad-CAM and the
  calibrated probability.

Every view shows the pedicle outlines (segment colours), the MPD measurement line (cyan), the
attention overlay and the patient directions on its edges. The drawing functions draw into
given axes so that the HTML (PNG) and the PDF (A4 pages) share one implementation.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..results import Assessment, SideAssessment  # noqa: E402
from .style import (  # noqa: E402
    AXIS_LINE_COLOR,
    MPD_LINE_COLOR,
    SIDE_COLORS,
    SIDE_LABELS,
    SIDE_SHORT,
    verdict_text,
    window_to_unit,
)

AXIAL_FOV_MM = 60.0
AXIAL_PX_MM = 0.2
OBLIQUE_FOV_MM = 30.0
OBLIQUE_PX_MM = 0.125
CAM_MIN = 0.15            # attention below this is not drawn
OUT_OF_PLANE_MM = 1.0     # MPD end points farther than this from a view plane: dashed line


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
        ("Axial through the isthmus", np.array([1.0, 0, 0]), np.array([0, 1.0, 0]),
         AXIAL_FOV_MM, AXIAL_PX_MM, ("R", "L", "A", "P")),
        ("Perpendicular to the pedicle axis", *oblique_basis(axis),
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


def _edge_labels(ax, edges: Tuple[str, str, str, str], size: float = 11) -> None:
    style = dict(transform=ax.transAxes, color="yellow", fontsize=size, fontweight="bold",
                 bbox=dict(boxstyle="square,pad=0.15", fc="black", ec="none", alpha=0.75))
    left, right, top, bottom = edges
    ax.text(0.015, 0.5, left, ha="left", va="center", **style)
    ax.text(0.985, 0.5, right, ha="right", va="center", **style)
    ax.text(0.5, 0.985, top, ha="center", va="top", **style)
    ax.text(0.5, 0.015, bottom, ha="center", va="bottom", **style)


def _scale_bar(ax, n_px: int, px_mm: float, mm: float = 5.0) -> None:
    length = mm / px_mm
    x1, y = n_px * 0.95, n_px * 0.90
    ax.plot([x1 - length, x1], [y, y], color="white", lw=2.5, solid_capstyle="butt")
    ax.text(x1 - length / 2, y - n_px * 0.02, f"{mm:g} mm", color="white", fontsize=7,
            ha="center", va="bottom")


def _overlay_attention(ax, att: Optional[np.ndarray]) -> None:
    if att is None:
        return
    a = np.ma.masked_less(np.clip(att, 0, 1), CAM_MIN)
    if a.count():
        ax.imshow(a, cmap="jet", vmin=0, vmax=1, alpha=0.4, interpolation="bilinear")


def _outline_labels(ax, labels: np.ndarray, lw: float = 1.4) -> None:
    for side, value in SIDE_LABELS.items():
        m = labels == value
        if m.any() and not m.all():
            ax.contour(m.astype(np.float32), levels=[0.5], colors=[SIDE_COLORS[side]],
                       linewidths=lw)


def draw_plane(ax, view: PlaneView, fontsize: float = 8.5) -> None:
    """Draw one isthmus view with outline, MPD line, pedicle axis, heat map and directions."""
    ax.imshow(window_to_unit(view.ct_hu), cmap="gray", vmin=0, vmax=1, interpolation="bilinear")
    _overlay_attention(ax, view.attention)
    _outline_labels(ax, view.labels)
    n_px = view.ct_hu.shape[0]
    if view.axis_px is not None:
        (c0, r0), (c1, r1) = view.axis_px
        ax.plot([c0, c1], [r0, r1], ls=":", lw=1.2, color=AXIS_LINE_COLOR)
    if view.mpd_px is not None:
        (c0, r0), (c1, r1) = view.mpd_px
        ax.plot([c0, c1], [r0, r1], ls="-" if view.mpd_in_plane else "--", lw=2.0,
                color=MPD_LINE_COLOR, marker="|", ms=7, mew=2)
        label = f"MPD {view.mpd_mm:.2f} mm" + ("" if view.mpd_in_plane else " (projected)")
        ax.text(max(c0, c1) + n_px * 0.03, (r0 + r1) / 2 - n_px * 0.05, label,
                color=MPD_LINE_COLOR, fontsize=fontsize, fontweight="bold",
                bbox=dict(boxstyle="round,pad=0.2", fc="black", ec="none", alpha=0.6))
    _scale_bar(ax, n_px, view.px_mm)
    _edge_labels(ax, view.edges)
    ax.set_xlim(-0.5, n_px - 0.5)
    ax.set_ylim(n_px - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{SIDE_SHORT[view.side]}: {view.title}", fontsize=fontsize + 0.5)


def draw_strip(axes: Sequence, side: SideAssessment, threshold: Optional[float] = None,
               fontsize: float = 8.0) -> str:
    """Draw the five classifier slices into ``axes`` (one per slice); return the caption."""
    sl = side.slices
    cam = None
    if side.prediction is not None:
        cam = np.asarray(side.prediction.cam_high_risk, np.float32)
        if sl is not None and cam.shape != np.asarray(sl.hu).shape:
            cam = None
    n = 0 if sl is None else np.asarray(sl.hu).shape[0]
    for s, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if s >= n:
            ax.axis("off")
            continue
        ax.imshow(window_to_unit(sl.hu[s]), cmap="gray", vmin=0, vmax=1,
                  interpolation="bilinear")
        _overlay_attention(ax, None if cam is None else cam[s])
        if sl.mask is not None:
            m = np.asarray(sl.mask[s]) > 0
            if m.any() and not m.all():
                ax.contour(m.astype(np.float32), levels=[0.5],
                           colors=[SIDE_COLORS[side.side]], linewidths=1.0)
        tag = " wide" if s == 0 else (" narrow" if s == n - 1 else "")
        ax.set_title(f"{s + 1}{tag}", fontsize=fontsize)
        _edge_labels(ax, ("R", "L", "A", "P"), size=7)
    p = None if side.prediction is None else float(side.prediction.p_high_risk)
    thr = "" if threshold is None else f", threshold {threshold:.2f}"
    if p is None:
        return f"{SIDE_SHORT[side.side]}: classifier not run"
    return (f"{SIDE_SHORT[side.side]}: C2-Net p(high risk) = {p:.2f} -> "
            f"{verdict_text(side.verdict_network)}{thr}")


def views_figure(views: Tuple[PlaneView, PlaneView]) -> Figure:
    """A figure with the axial and the oblique view of one side, side by side."""
    fig = Figure(figsize=(7.2, 3.7), dpi=100)
    axes = fig.subplots(1, 2)
    for ax, view in zip(axes, views):
        draw_plane(ax, view)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.92, wspace=0.04)
    return fig


def strip_figure(side: SideAssessment, threshold: Optional[float] = None) -> Figure:
    """A figure with the five classifier slices of one side and the probability."""
    fig = Figure(figsize=(7.2, 1.95), dpi=100)
    axes = fig.subplots(1, 5)
    caption = draw_strip(axes, side, threshold)
    fig.suptitle(caption, fontsize=9.5, fontweight="bold", y=0.99)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.80, wspace=0.05)
    return fig


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """PNG bytes of a figure (then closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    plt.close(fig)
    return buf.getvalue()


def all_side_views(assessment: Assessment) -> List[Tuple[str, Optional[Tuple[PlaneView, PlaneView]]]]:
    """``[(side, views or None), ...]`` for the sides present, left first."""
    return [(s, side_views(assessment, s)) for s in ("left", "right") if s in assessment.sides]
