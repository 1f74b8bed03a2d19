"""Isthmus measurement: pedicle axis, perpendicular cross-sections and the MPD per side.

Given a CT (HU) and one C2 pedicle mask (any grid; both carry their geometry), the pedicle is
measured in physical LPS millimetres, never in voxels:

1. **Axis.** The mask voxels' principal directions give candidate axes; the one closest to
   the anatomical antero-posterior course is refined as the line through the centroids of
   perpendicular mask slabs (robust to the mask being taller than it is long).
2. **Sweep.** Cross-sections perpendicular to the axis every ``step_mm`` (0.25 mm). In each,
   rays from the section centre sample the CT (trilinear interpolation of a lightly smoothed
   local crop) every 0.1 mm.
3. **Edges from intensities.** Along each ray the outer cortex peak near the mask boundary is
   found; the profile around it is modelled as cancellous bone, a cortical step and soft
   tissue, blurred by the scanner. Blurring keeps the profile's zeroth and first moments, so
   the **outer** (periosteal) and **inner** (endosteal) edge radii follow in closed form from
   them once the cortical density is known (the larger of the observed peak and
   ``CORTICAL_BONE_HU``): sub-voxel edges that do not shift with the blur. r(theta) is then
   smoothed circularly (median of 5 rays, mean of 3).
4. **Widths.** From the edge points, caliper widths in every in-plane direction (1 degree
   steps; the width is flat at its minimum, so the step costs < 0.01 mm). The section's MPD is
   its smallest outer caliper width. A quadratic fit of the (3-section median) width profile
   along the axis locates the isthmus; the reported MPD is the median of the minimum widths of
   the valid sections within +-0.5 mm of it, and its direction and endpoints are that
   section's. Inner width and outer/inner heights are taken along and across the MPD
   direction there.

Pedicle axis vectors point posterior -> anterior. Angles are relative to the scanner's axial
plane in the LPS frame (see ``docs/ARCHITECTURE.md``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from . import geometry
from .errors import MeasurementError
from .progress import ProgressCallback, null_progress
from .results import IsthmusSlices, PedicleMeasurement

SECTION_STEP_MM = 0.25
RAY_STEP_MM = 0.1
N_RAYS = 120
RAY_LENGTH_MM = 11.0
MIN_VALID_RAY_FRACTION = 0.85
MIN_MASK_VOLUME_MM3 = 15.0
MIN_ELONGATION = 1.2
SMOOTHING_SIGMA_MM = 0.1
#: Window of the moment integrals around the cortical peak (mm inside / outside).
MOMENT_INSIDE_MM = 2.0
MOMENT_OUTSIDE_MM = 2.5
#: Prior density of cortical bone (HU) for cortex thinner than the scanner blur, where only
#: density x thickness is visible. Clinical CT: ~1200-1900 HU; the phantoms draw 1200-1800.
CORTICAL_BONE_HU = 1500.0
#: Systematic resolution term of the uncertainty, per mm of the coarsest voxel spacing, and a
#: base term (edge model, axis and mask effects). Calibrated on the phantom benchmark
#: (benchmarks/bench_measure.py) so that the band holds roughly two thirds of the errors at
#: fine spacing (a 1-sigma band; with a 0.1 mm base only 42 % were inside at <= 0.6 mm).
RESOLUTION_UNCERTAINTY_PER_MM = 0.2
BASE_UNCERTAINTY_MM = 0.2
#: Added (in quadrature) for thin (< THIN_ISTHMUS_MM) or all-cortex isthmi.
SOLID_ISTHMUS_UNCERTAINTY_MM = 0.4
THIN_ISTHMUS_MM = 3.0


@dataclass
class _Section:
    t_mm: float
    center: np.ndarray          # LPS point of the section centre
    outer_pts: np.ndarray       # (n, 2) in-plane (u, v) outer edge points, mm
    inner_pts: np.ndarray       # (m, 2) inner edge points, mm (may be empty)
    valid_fraction: float


# --------------------------------------------------------------------------------------
# public API


def measure_pedicle(
    ct: sitk.Image,
    mask: sitk.Image,
    side: str,
    step_mm: float = SECTION_STEP_MM,
    progress: Optional[ProgressCallback] = None,
) -> PedicleMeasurement:
    """Measure one C2 pedicle isthmus.

    Parameters
    ----------
    ct : CT in Hounsfield units, any spacing/direction.
    mask : binary mask of the pedicle (nonzero = pedicle); may be on another grid than ``ct``
        as long as both describe the same patient space.
    side : ``"left"`` or ``"right"`` (patient side; used for the medial angle and messages).

    Raises
    ------
    MeasurementError
        empty or tiny mask, mask touching the scan edge, no elongated pedicle, or no
        measurable cortex (e.g. the mask is not on bone).
    """
    if side not in ("left", "right"):
        raise ValueError("side must be 'left' or 'right'")
    progress = progress or null_progress
    label = f"{side} C2 pedicle"
    mask = crop_to_mask(mask)
    pts = _mask_points(mask, label)
    axis, centroid = _pedicle_axis(pts, label)
    crop = _local_ct(ct, pts)
    spacing = np.asarray(ct.GetSpacing(), dtype=float)

    t_vals = (pts - centroid) @ axis
    t_lo, t_hi = np.percentile(t_vals, [2, 98])
    t_grid = np.arange(t_lo + 0.5, t_hi - 0.5 + 1e-9, step_mm)
    if t_grid.size < 3:
        raise MeasurementError(
            f"The {label} mask is too short along its axis ({t_hi - t_lo:.1f} mm) to find an isthmus.",
            hint="Check the segmentation: the pedicle mask should cover the pedicle from the "
                 "lateral mass to the vertebral body.")
    u, v = _section_basis(axis)
    mask_arr, mask_img = _mask_array(mask)
    sections = []
    for n, t in enumerate(t_grid):
        c = _slab_centroid(pts, t_vals, t, centroid, axis)
        sections.append(_measure_section(crop, mask_img, mask_arr, c, t, u, v, axis))
        if n % 10 == 0:
            progress("measure", 0.9 * (n + 1) / len(t_grid), f"{side}: section {n + 1}/{len(t_grid)}")

    widths = np.array([_min_caliper(s.outer_pts)[0] if s.valid_fraction >= MIN_VALID_RAY_FRACTION
                       else np.nan for s in sections])
    if np.all(np.isnan(widths)):
        raise MeasurementError(
            f"No cortical bone outline was found around the {label} mask.",
            hint="The mask may not lie on the pedicle, or the scan is too noisy/coarse. Check "
                 "the segmentation overlay and the scan's bone window.")
    smooth = _nan_median3(widths)
    i_min = int(np.nanargmin(smooth))
    t_star, _ = _quadratic_min(t_grid, smooth, i_min)
    i_min = int(np.argmin(np.abs(t_grid - t_star)))
    if not np.isfinite(smooth[i_min]):
        i_min = int(np.nanargmin(smooth))
    sec = sections[i_min]
    # The MPD is the median of the minimum widths of the sections within +-0.5 mm of the
    # isthmus (the hourglass is flat there; the median suppresses noise of single sections).
    near = [sections[j] for j in range(max(0, i_min - 2), min(len(sections), i_min + 3))
            if sections[j].valid_fraction >= MIN_VALID_RAY_FRACTION]
    near_widths = np.array([_min_caliper(s_.outer_pts)[0] for s_ in near])
    sec = near[int(np.argsort(near_widths)[len(near_widths) // 2])]
    mpd, n_dir, pmin, pmax, m2 = _min_caliper(sec.outer_pts, full=True)
    mpd_value = float(mpd)

    perp = np.array([-n_dir[1], n_dir[0]])
    height = _caliper_along(sec.outer_pts, perp)
    inner_w = _caliper_along(sec.inner_pts, n_dir) if len(sec.inner_pts) >= 0.5 * N_RAYS else 0.0
    inner_h = _caliper_along(sec.inner_pts, perp) if len(sec.inner_pts) >= 0.5 * N_RAYS else 0.0

    def to_lps(p2: np.ndarray) -> np.ndarray:
        return sec.center + p2[0] * u + p2[1] * v

    mid = m2 - n_dir * (m2 @ n_dir)  # the line through the outline's centroid along n_dir
    e1 = to_lps(mid + n_dir * pmin)
    e2 = to_lps(mid + n_dir * pmax)
    center = 0.5 * (e1 + e2)
    direction3 = n_dir[0] * u + n_dir[1] * v

    warnings = []
    uncertainty = _uncertainty(widths, i_min, spacing)
    if inner_w == 0.0 or mpd_value < THIN_ISTHMUS_MM:
        # a thin or all-cortex isthmus: the two walls' edge windows overlap and the edges rest
        # on the cortical-density prior; the phantom benchmark's largest errors (0.6-0.8 mm)
        # are 2-3 mm pedicles
        uncertainty = float(np.hypot(uncertainty, SOLID_ISTHMUS_UNCERTAINTY_MM))
        warnings.append(f"The {side} isthmus is thin (< {THIN_ISTHMUS_MM:.0f} mm) or shows no "
                        "medullary cavity: its edges are resolution-limited and the MPD "
                        "uncertainty is widened.")
    if inner_w == 0.0:
        warnings.append(f"No medullary cavity detected at the {side} isthmus (all cortex or too "
                        "coarse); inner width reported as 0 mm.")
    if i_min <= 1 or i_min >= len(sections) - 2:
        warnings.append(f"The narrowest {side} cross-section lies at the end of the mask: the "
                        "isthmus may lie outside the segmented pedicle.")
    medial, cranial = axis_angles_deg(axis, side)
    profile = [
        {"t_mm": float(t - t_star), "outer_width_mm": float(w) if np.isfinite(w) else None,
         "inner_width_mm": float(_caliper_along(s.inner_pts, n_dir)) if len(s.inner_pts) >= 0.5 * N_RAYS else None}
        for t, w, s in zip(t_grid[::2], widths[::2], sections[::2])
    ]
    progress("measure", 1.0, f"{side}: MPD {mpd_value:.2f} mm")
    return PedicleMeasurement(
        side=side,
        mpd_mm=mpd_value,
        mpd_direction_lps=tuple(float(c) for c in direction3),
        mpd_endpoints_lps_mm=(tuple(float(c) for c in e1), tuple(float(c) for c in e2)),
        inner_width_mm=float(inner_w),
        outer_height_mm=float(height),
        inner_height_mm=float(inner_h),
        isthmus_center_lps_mm=tuple(float(c) for c in center),
        axis_lps=tuple(float(c) for c in axis),
        medial_angle_deg=medial,
        cranial_angle_deg=cranial,
        mpd_uncertainty_mm=uncertainty,
        profile=profile,
        warnings=warnings,
    )


def measure_both(
    ct: sitk.Image, labels: sitk.Image, left_label: int, right_label: int,
    progress: Optional[ProgressCallback] = None,
) -> Dict[str, PedicleMeasurement]:
    """Measure both sides from one label map (values ``left_label`` and ``right_label``)."""
    out = {}
    for side, value in (("left", left_label), ("right", right_label)):
        mask = sitk.Cast(labels == int(value), sitk.sitkUInt8)
        out[side] = measure_pedicle(ct, mask, side, progress=progress)
    return out


def axis_angles_deg(axis_lps: Sequence[float], side: str) -> Tuple[float, float]:
    """(medial, cranial) angles in degrees of a posterior->anterior pedicle axis.

    Medial: angle in the axial plane from straight anterior, positive towards the midline
    (towards -x for the left pedicle, +x for the right). Cranial: elevation above the axial
    plane, positive towards superior.
    """
    a = np.asarray(axis_lps, dtype=float)
    a = a / np.linalg.norm(a)
    anterior = -a[1]
    medial_comp = -a[0] if side == "left" else a[0]
    medial = float(np.degrees(np.arctan2(medial_comp, anterior)))
    cranial = float(np.degrees(np.arctan2(a[2], np.hypot(a[0], a[1]))))
    return medial, cranial


def isthmus_slices(
    ct: sitk.Image, measurement: PedicleMeasurement, mask: Optional[sitk.Image] = None,
    size_px: int = 64, pixel_mm: float = 1.0, n_slices: int = 5,
) -> IsthmusSlices:
    """The classifier's input: ``n_slices`` consecutive 1 mm axial slices around the isthmus.

    The slices are canonical (identity direction) crops of ``size_px`` x ``size_px`` pixels
    centred on the isthmus centre, ordered wide -> narrow: the end of the stack where the
    pedicle is wider comes first (by mask area when a mask is given, otherwise along the
    pedicle axis from posterior to anterior).
    """
    c = np.asarray(measurement.isthmus_center_lps_mm, dtype=float)
    if pixel_mm != 1.0:
        raise MeasurementError(f"isthmus slices are sampled at 1 mm, not {pixel_mm} mm")
    # the same crop (only the CT around the isthmus is read, fine axes smoothed) as the
    # classifier's training data: c2net.training.data.fallback_isthmus_crop
    size = (size_px, size_px, n_slices)
    hu = geometry.array_lps(geometry.canonical_crop(ct, c, size)).astype(np.float32)
    m = None
    if mask is not None:
        m = geometry.array_lps(geometry.canonical_crop(sitk.Cast(mask > 0, sitk.sitkUInt8), c, size,
                                                       "label")).astype(np.uint8)
    reverse = False
    if m is not None and m[0].sum() != m[-1].sum():
        reverse = m[0].sum() < m[-1].sum()
    centers = [(float(c[0]), float(c[1]), float(c[2] - (n_slices - 1) / 2.0 + k)) for k in range(n_slices)]
    if reverse:
        hu = hu[::-1].copy()
        m = m[::-1].copy() if m is not None else None
        centers = centers[::-1]
    return IsthmusSlices(side=measurement.side, hu=hu, slice_centers_lps_mm=centers,
                         pixel_mm=pixel_mm, mask=m)


# --------------------------------------------------------------------------------------
# mask handling and axis


def crop_to_mask(mask: sitk.Image, margin: int = 2) -> sitk.Image:
    """The mask's bounding box (+``margin`` voxels, never beyond the image), same geometry.

    A mask on a 512 x 512 x 300 grid is 80 M voxels; the pedicle fills a few thousand. Where
    the mask touches the image edge the crop does too, so the edge check still sees it.
    """
    if mask.GetDimension() != 3:
        return mask
    arr = sitk.GetArrayViewFromImage(mask) != 0
    lo, hi = [], []
    for axis in range(3):
        hit = np.nonzero(arr.any(axis=tuple(a for a in range(3) if a != axis)))[0]
        if len(hit) == 0:
            return mask
        lo.append(max(0, int(hit[0]) - margin))
        hi.append(min(arr.shape[axis], int(hit[-1]) + margin + 1))
    size = [hi[a] - lo[a] for a in (2, 1, 0)]
    index = [lo[a] for a in (2, 1, 0)]
    return sitk.RegionOfInterest(mask, size, index)


def _mask_array(mask: sitk.Image) -> Tuple[np.ndarray, sitk.Image]:
    arr = (sitk.GetArrayViewFromImage(mask) > 0).astype(np.float32)
    return arr, mask


def _mask_points(mask: sitk.Image, label: str) -> np.ndarray:
    if mask.GetDimension() != 3:
        raise MeasurementError(f"The {label} mask is not a 3D image.",
                               hint="Give a 3D label map on the CT's patient space.")
    arr = sitk.GetArrayViewFromImage(mask) > 0
    kji = np.argwhere(arr)
    voxel_mm3 = float(np.prod(mask.GetSpacing()))
    if kji.shape[0] * voxel_mm3 < MIN_MASK_VOLUME_MM3:
        raise MeasurementError(
            f"The {label} mask is empty or too small ({kji.shape[0] * voxel_mm3:.1f} mm3).",
            hint="Check the label values (--left-label/--right-label) or correct the segmentation.")
    shape = np.asarray(arr.shape)
    if np.any(kji.min(axis=0) == 0) or np.any(kji.max(axis=0) == shape - 1):
        raise MeasurementError(
            f"The {label} mask touches the edge of the scan: the pedicle may be cut off.",
            hint="Use a scan whose field of view contains the whole C2 vertebra.")
    return geometry.index_to_lps(mask, kji[:, ::-1].astype(float))


def _pedicle_axis(pts: np.ndarray, label: str) -> Tuple[np.ndarray, np.ndarray]:
    centroid = pts.mean(axis=0)
    d = pts - centroid
    evals, evecs = np.linalg.eigh(d.T @ d / len(d))
    # Candidate: the principal direction closest to the antero-posterior course that C2
    # pedicles take (medial 20-40 deg, cranial 15-35 deg); then refine by slab centroids.
    scores = np.abs(evecs[1, :]) * np.sqrt(np.maximum(evals, 1e-9))
    axis = evecs[:, int(np.argmax(scores))]
    for _ in range(4):
        axis = _refine_axis(pts, centroid, axis)
    if axis[1] > 0:
        axis = -axis  # posterior -> anterior (anterior is -y in LPS)
    t = d @ axis
    length = np.percentile(t, 98) - np.percentile(t, 2)
    rest = d - np.outer(t, axis)
    u, v = _section_basis(axis)
    wu = np.percentile(rest @ u, 98) - np.percentile(rest @ u, 2)
    wv = np.percentile(rest @ v, 98) - np.percentile(rest @ v, 2)
    elong = length / max(np.sqrt(max(wu, 1e-3) * max(wv, 1e-3)), 1e-3)
    if elong < MIN_ELONGATION:
        raise MeasurementError(
            f"The {label} mask is not an elongated pedicle (length {length:.1f} mm vs "
            f"cross-section {wu:.1f} x {wv:.1f} mm).",
            hint="The mask should cover the pedicle between lateral mass and vertebral body; "
                 "correct the segmentation and recompute.")
    return axis, centroid


def _refine_axis(pts: np.ndarray, centroid: np.ndarray, axis: np.ndarray) -> np.ndarray:
    t = (pts - centroid) @ axis
    lo, hi = np.percentile(t, [5, 95])
    edges = np.arange(lo, hi + 1e-9, 1.0)
    cents, weights = [], []
    for a, b in zip(edges[:-1], edges[1:]):
        sel = (t >= a) & (t < b)
        if sel.sum() >= 5:
            cents.append(pts[sel].mean(axis=0))
            weights.append(sel.sum())
    if len(cents) < 3:
        return axis
    c = np.asarray(cents)
    w = np.asarray(weights, dtype=float)
    mu = (c * w[:, None]).sum(axis=0) / w.sum()
    cov = ((c - mu) * w[:, None]).T @ (c - mu)
    new = np.linalg.eigh(cov)[1][:, -1]
    if new @ axis < 0:
        new = -new
    # guard against a degenerate refit swinging the axis
    return new if new @ axis > np.cos(np.radians(35)) else axis


def _section_basis(axis: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """In-plane orthonormal basis: v towards superior (projected), u = v x axis."""
    sup = np.array([0.0, 0.0, 1.0])
    v = sup - (sup @ axis) * axis
    if np.linalg.norm(v) < 1e-3:
        v = np.array([1.0, 0.0, 0.0]) - axis[0] * axis
    v /= np.linalg.norm(v)
    u = np.cross(v, axis)
    return u / np.linalg.norm(u), v


def _slab_centroid(pts, t_vals, t, centroid, axis, half_width=0.75) -> np.ndarray:
    sel = np.abs(t_vals - t) <= half_width
    base = centroid + t * axis
    if sel.sum() < 5:
        return base
    c = pts[sel].mean(axis=0)
    return c - ((c - base) @ axis) * axis  # project onto the section plane


# --------------------------------------------------------------------------------------
# CT sampling and edges


@dataclass
class _Crop:
    array: np.ndarray        # smoothed float32 HU, [k, j, i]
    image: sitk.Image        # geometry of the crop


def _local_ct(ct: sitk.Image, pts: np.ndarray, margin_mm: float = RAY_LENGTH_MM + 4.0) -> _Crop:
    lo = pts.min(axis=0) - margin_mm
    hi = pts.max(axis=0) + margin_mm
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    idx = geometry.lps_to_index(ct, corners)
    size = np.asarray(ct.GetSize())
    i0 = np.clip(np.floor(idx.min(axis=0)).astype(int), 0, size - 1)
    i1 = np.clip(np.ceil(idx.max(axis=0)).astype(int), 0, size - 1)
    roi = sitk.RegionOfInterest(ct, [int(s) for s in (i1 - i0 + 1)], [int(s) for s in i0])
    roi = sitk.Cast(roi, sitk.sitkFloat32)
    sigma = [max(SMOOTHING_SIGMA_MM, 0.0)] * 3
    if min(roi.GetSize()) >= 4:
        roi = sitk.SmoothingRecursiveGaussian(roi, sigma)
    return _Crop(array=sitk.GetArrayFromImage(roi), image=roi)


def _sample(img: sitk.Image, arr: np.ndarray, pts: np.ndarray, cval: float) -> np.ndarray:
    kji = geometry.lps_to_index(img, pts.reshape(-1, 3))[:, ::-1].T
    vals = ndimage.map_coordinates(arr, kji, order=1, mode="constant", cval=cval)
    return vals.reshape(pts.shape[:-1])


def _measure_section(crop: _Crop, mask_img, mask_arr, center, t, u, v, axis) -> _Section:
    angles = np.linspace(0.0, 2 * np.pi, N_RAYS, endpoint=False)
    radii = np.arange(0.0, RAY_LENGTH_MM + 1e-9, RAY_STEP_MM)
    dirs2 = np.stack([np.cos(angles), np.sin(angles)], axis=1)            # (R, 2)
    dirs3 = dirs2[:, 0:1] * u + dirs2[:, 1:2] * v                          # (R, 3)
    pts = center + radii[None, :, None] * dirs3[:, None, :]                # (R, S, 3)
    prof = _sample(crop.image, crop.array, pts, cval=-1000.0)              # (R, S)
    mprof = _sample(mask_img, mask_arr, pts, cval=0.0)
    r_out, r_in = _ray_edges(prof, mprof, radii)
    # extreme projections of noisy edge points inflate caliper widths: smooth r(theta)
    r_out = _smooth_circular(r_out)
    r_in = _smooth_circular(r_in)
    ok = np.isfinite(r_out)
    outer = dirs2[ok] * r_out[ok, None]
    ok_in = np.isfinite(r_in)
    inner = dirs2[ok_in] * r_in[ok_in, None]
    return _Section(t_mm=float(t), center=np.asarray(center, float), outer_pts=outer,
                    inner_pts=inner, valid_fraction=float(ok.mean()))


def _ray_edges(prof: np.ndarray, mprof: np.ndarray, radii: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Outer and inner edge radius (mm) per ray; NaN where no edge was found.

    Along each ray the cortical peak nearest the mask boundary is found; the profile around it
    is modelled as cancellous bone (level C) up to the inner edge, cortex (level K) up to the
    outer edge, soft tissue (level bg) beyond, blurred by the scanner. Blurring preserves the
    zeroth and first moments of the profile, so both edges follow in closed form from them
    (:func:`_edges_from_moments`) whatever the blur, once K is known. For cortex thinner than
    the blur K cannot be read off the image (only K x thickness can), so K is the larger of
    the observed peak and the prior :data:`CORTICAL_BONE_HU`.
    """
    n_rays, n_s = prof.shape
    step = radii[1] - radii[0]
    inside = mprof >= 0.5
    has = inside.any(axis=1)
    last_in = np.where(has, n_s - 1 - np.argmax(inside[:, ::-1], axis=1), -1)
    r_mask = np.where(has, radii[np.clip(last_in, 0, n_s - 1)], np.nan)
    r_out = np.full(n_rays, np.nan)
    r_in = np.full(n_rays, np.nan)
    n_in, n_out = int(MOMENT_INSIDE_MM / step), int(MOMENT_OUTSIDE_MM / step)
    n_bg = int(1.0 / step)
    rows = np.nonzero(has)[0]
    if len(rows) == 0:
        return r_out, r_in
    p = prof[rows].astype(np.float64)
    # search window for the cortical peak around the mask boundary (all rays at once)
    lo = np.floor(np.maximum(0.0, (r_mask[rows] - 3.0) / step)).astype(int)
    hi = np.floor(np.minimum(n_s - 1.0, (r_mask[rows] + 1.5) / step)).astype(int)
    j = np.arange(n_s)
    in_win = (j[None, :] >= lo[:, None]) & (j[None, :] <= hi[:, None])
    ip = np.argmax(np.where(in_win, p, -np.inf), axis=1)
    b = ip + n_out
    keep = (hi - lo >= 3) & (b + n_bg < n_s)
    take = np.arange(len(rows))
    peak = p[take, ip]
    bg_idx = np.clip(b[:, None] + np.arange(-(n_bg // 2), n_bg)[None, :], 0, n_s - 1)
    bg = np.median(p[take[:, None], bg_idx], axis=1)
    keep &= peak - bg >= 150.0
    a = np.maximum(0, ip - n_in)
    b = np.minimum(b, n_s - 1)
    inner_level = p[take[:, None], np.clip(a[:, None] + np.arange(3)[None, :], 0, n_s - 1)].mean(axis=1)
    # trapezoidal zeroth and first moments of (profile - bg) over [a, b], via cumulative sums
    c0 = np.concatenate([np.zeros((len(rows), 1)), np.cumsum(p, axis=1)], axis=1)
    c1 = np.concatenate([np.zeros((len(rows), 1)), np.cumsum(p * radii[None, :], axis=1)], axis=1)
    cr = np.concatenate([[0.0], np.cumsum(radii)])
    length = b - a + 1
    sum0 = c0[take, b + 1] - c0[take, a] - length * bg
    sum1 = (c1[take, b + 1] - c1[take, a]) - bg * (cr[b + 1] - cr[a])
    end0 = (p[take, a] - bg) + (p[take, b] - bg)
    end1 = (p[take, a] - bg) * radii[a] + (p[take, b] - bg) * radii[b]
    m0 = (sum0 - 0.5 * end0) * step
    m1 = (sum1 - 0.5 * end1) * step
    k = np.maximum(CORTICAL_BONE_HU, peak)
    for i in np.nonzero(keep)[0]:
        ro, ri = _edges_from_moments(float(m0[i]), float(m1[i]), float(radii[a[i]]),
                                     float(inner_level[i] - bg[i]), float(k[i] - bg[i]))
        if np.isfinite(ro) and radii[a[i]] < ro < radii[b[i]]:
            r_out[rows[i]] = ro
            r_in[rows[i]] = ri
    return r_out, r_in


def _smooth_circular(r: np.ndarray, half: int = 2) -> np.ndarray:
    """Median over 2*half+1 neighbouring rays (circularly), then a 3-ray mean; NaN-aware."""
    n = r.size
    idx = (np.arange(n)[:, None] + np.arange(-half, half + 1)[None, :]) % n
    win = r[idx]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        valid = np.isfinite(win).sum(axis=1) >= half + 1
        srt = np.sort(win, axis=1)              # NaNs sort last
        cnt = np.isfinite(win).sum(axis=1)
        rows = np.arange(n)
        mid = 0.5 * (srt[rows, np.maximum(cnt - 1, 0) // 2] + srt[rows, cnt // 2 - (cnt == 0)])
        med = np.where(valid & np.isfinite(r), mid, np.nan)
        idx3 = (np.arange(n)[:, None] + np.arange(-1, 2)[None, :]) % n
        w3 = med[idx3]
        out = np.where(np.isfinite(med), np.nanmean(w3, axis=1), np.nan)
    return out


def _trapezoid(y: np.ndarray, dx: float) -> float:
    return float((y.sum() - 0.5 * (y[0] + y[-1])) * dx)


def _edges_from_moments(m0: float, m1: float, a: float, inner: float, cortex: float) -> Tuple[float, float]:
    """Solve the two moment equations of a step-cortex profile for (outer, inner) radii.

    With levels relative to the outside (``inner`` = C - bg, ``cortex`` = K - bg) and the
    window starting at ``a`` in the inner region:
        m0 = inner (r_i - a) + cortex (r_o - r_i)
        2 m1 = inner (r_i^2 - a^2) + cortex (r_o^2 - r_i^2)
    which is a quadratic in r_i. When the inside is as bright as cortex (a solid pedicle)
    the first equation alone gives r_o and there is no marrow (r_i = NaN).
    """
    A, B = inner, cortex
    if B <= 0:
        return np.nan, np.nan
    if (B - A) / B < 0.15:
        return a + m0 / B, np.nan
    p = (m0 + A * a) / B
    alpha = A * (A - B) / B
    beta = 2.0 * p * (B - A)
    gamma = -A * a * a + B * p * p - 2.0 * m1
    disc = beta * beta - 4 * alpha * gamma
    if disc < 0 or abs(alpha) < 1e-9:
        return np.nan, np.nan
    best = (np.nan, np.nan)
    for x in ((-beta + np.sqrt(disc)) / (2 * alpha), (-beta - np.sqrt(disc)) / (2 * alpha)):
        d = p - (A / B) * x
        if x >= a - 1e-6 and d >= 0:
            best = (x + d, x)
    ro, ri = best
    if np.isfinite(ri) and ri <= a + 0.05:
        ri = np.nan  # no marrow inside the window
    return ro, ri


def _parabola_offset(y0: float, y1: float, y2: float) -> float:
    den = y0 - 2.0 * y1 + y2
    if abs(den) < 1e-12:
        return 0.0
    return float(np.clip(0.5 * (y0 - y2) / den, -0.5, 0.5))


# --------------------------------------------------------------------------------------
# widths


_PHI = np.radians(np.arange(0.0, 180.0, 1.0))
_NDIRS = np.stack([np.cos(_PHI), np.sin(_PHI)], axis=1)


def _min_caliper(pts2: np.ndarray, full: bool = False):
    """Smallest caliper width of 2D points over directions (1 degree steps)."""
    if len(pts2) < 3:
        return (np.nan, None, None, None, None) if full else (np.nan,)
    proj = pts2 @ _NDIRS.T
    w = proj.max(axis=0) - proj.min(axis=0)
    k = int(np.argmin(w))
    wk = w[k]
    if not full:
        return (float(wk),)
    n = _NDIRS[k]
    return float(wk), n, float(proj[:, k].min()), float(proj[:, k].max()), pts2.mean(axis=0)


def _caliper_along(pts2: np.ndarray, n: np.ndarray) -> float:
    if len(pts2) < 3:
        return 0.0
    p = pts2 @ n
    return float(p.max() - p.min())


def _nan_median3(x: np.ndarray) -> np.ndarray:
    out = x.copy()
    for i in range(len(x)):
        w = x[max(0, i - 1): i + 2]
        w = w[np.isfinite(w)]
        out[i] = np.median(w) if (np.isfinite(x[i]) and w.size) else np.nan
    return out


def _quadratic_min(t: np.ndarray, w: np.ndarray, i: int, half_window_mm: float = 3.0) -> Tuple[float, float]:
    """Vertex (t, width) of a least-squares parabola through the width profile near index i.

    The hourglass is shallow, so the position comes from several millimetres of profile rather
    than from the noisy single minimum. Falls back to the sample minimum when the fit is not
    convex or its vertex leaves the window.
    """
    sel = np.isfinite(w) & (np.abs(t - t[i]) <= half_window_mm)
    if sel.sum() < 5:
        return float(t[i]), float(w[i])
    tt, ww = t[sel], w[sel]
    a, b, c = np.polyfit(tt - t[i], ww, 2)
    if a <= 1e-6:
        return float(t[i]), float(w[i])
    tv = -b / (2 * a)
    if abs(tv) > half_window_mm:
        return float(t[i]), float(w[i])
    return float(t[i] + tv), float(c - b * b / (4 * a))


def _uncertainty(widths: np.ndarray, i: int, spacing: np.ndarray) -> float:
    """Estimated uncertainty (mm) of the MPD: section-to-section scatter of the width near the
    isthmus plus a resolution term proportional to the coarsest voxel spacing (calibrated on
    the phantom benchmark, ``benchmarks/bench_measure.py``)."""
    near = widths[max(0, i - 4): i + 5]
    near = near[np.isfinite(near)]
    noise = float(np.std(np.diff(near)) / np.sqrt(2)) if near.size > 2 else 0.2
    resolution = RESOLUTION_UNCERTAINTY_PER_MM * float(np.max(spacing))
    return float(np.sqrt(BASE_UNCERTAINTY_MM**2 + resolution**2 + noise**2))
