"""One C2 pedicle isthmus: sweep cross-sections along a rough axis, find the edges in the
image, locate the narrowest section and report its widths.

The rough axis comes from a mask (any segmenter's, or a quick manual paint) or from a
trajectory (entry -> target). The mask or trajectory only seeds the axis and bounds the
search along it; everything else comes from the CT:

1. **Sweep.** Sections perpendicular to the axis every ``step_mm``; rays from each section's
   centre (slab-averaged profiles, :mod:`.sampling`); edges per ray (:mod:`.edges`).
2. **Re-centre and re-aim.** Each section is re-centred on its own outer outline and the axis
   is refitted through the outline centres around the narrowest part, then swept again: a
   mask shifted by 2 mm or tilted by 10 degrees gives the same sections.
3. **Narrowest section.** The smallest caliper width of each closed outline (blur-corrected
   edges) along the axis; a parabola through the profile locates the isthmus; the MPD is the
   median of the sections within +-0.5 mm. Sections that are solid (no medullary dip on most
   rays) are measured like the others - as a bony bar - never skipped.
4. **What a reader reads.** The medullary canal (inner half-way edges, opened with a 0.5 mm
   disk) and its transverse width (mean of 5 chords along the vertebra's left-right direction
   projected onto the plane): the minimum of its 1 mm running mean over the closed tube (the
   canal's narrowest point, the reader's definition), and the outer transverse width along
   the same line at that place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from ..errors import MeasurementError
from ..progress import ProgressCallback, null_progress
from ..results import PedicleMeasurement
from . import edges as _edges
from . import widths as _w
from .axis import (
    axis_angles_deg,
    crop_to_mask,
    mask_points,
    pedicle_axis_from_mask,
    section_basis,
    slab_centroid,
    trajectory_axis,
)
from .sampling import DIRS2, N_RAYS, RADII, local_ct, ray_profiles

SECTION_STEP_MM = 0.25
#: A section counts when an outer edge was found on this share of its rays (the rest
#: interpolated over gaps of at most widths.MAX_GAP_DEG).
MIN_FOUND_FRACTION = 0.6
#: A section is solid (no medullary canal) when fewer than this share of its rays dip.
MIN_DIP_FRACTION = 0.5
#: Axis refit: sections within this distance (mm) of the provisional isthmus; largest change.
REFIT_HALF_WINDOW_MM = 5.0
MAX_REFIT_DEG = 20.0
#: Re-aim a mask's axis through the outline centres (off: on the phantom benchmark the
#: re-aimed axis erred by up to 9 degrees where the mask's own axis erred by 2-3; the
#: sections are still re-centred, and a 10 degree tilt widens a section by only 1.5 %).
REAIM_MASK_AXIS = False
#: Open sections (no closed outline) over at most this length (mm) still belong to the tube.
MAX_TUBE_GAP_MM = 1.0
#: Largest move (mm) of a section centre onto its outline's centroid.
MAX_RECENTRE_MM = 3.0
#: Neighbouring sections of one tube: their outline centres move less than this (mm) across.
MAX_CENTRE_JUMP_MM = 1.5
#: A tube with at least this much (mm) of sections with a canal: solid ends are trimmed.
MIN_CANAL_STRETCH_MM = 2.0
#: Uncertainty model (mm): base term, resolution term per mm of the coarsest voxel spacing,
#: and the extra term (in quadrature) for thin or solid isthmi.
BASE_UNCERTAINTY_MM = 0.2
RESOLUTION_UNCERTAINTY_PER_MM = 0.2
SOLID_ISTHMUS_UNCERTAINTY_MM = 0.4
THIN_ISTHMUS_MM = 3.0
#: The reader's running mean of the inner width (mm along the axis).
RUNNING_MEAN_MM = 1.0
#: The canal's narrowest stretch is searched on this raster (mm; 0: on the reader's raster,
#: widths.CANAL_PIXEL_MM) and read on the reader's within this margin (mm) of the answer.
TRANSVERSE_SEARCH_PIXEL_MM = 0.1
TRANSVERSE_SEARCH_MARGIN_MM = 0.5
#: The canal for the transverse widths is read with rays from its own centre (the reader's
#: ray origin), found by at most this many fixed-point steps, to this tolerance (mm).
CANAL_CORE_RAYS = True
CANAL_CORE_ITERATIONS = 5
CANAL_CORE_TOL_MM = 0.1
#: The outer transverse width from the canal wall's outer edges on the same rays.
OUTER_FROM_CANAL_WALL = True


@dataclass
class Section:
    t_mm: float
    center: np.ndarray            # LPS
    closed: bool
    solid: bool
    r_out: np.ndarray             # blur-corrected outer radii (N_RAYS), gaps filled
    r_in: np.ndarray              # blur-corrected inner radii (0 where no canal)
    r_out_half: np.ndarray        # the reader's half-way outer radii
    r_in_half: np.ndarray         # the reader's half-way inner radii
    width: float = np.nan         # smallest outer caliper width (mm)
    axis: np.ndarray = None       # LPS axis and in-plane basis of the section
    u: np.ndarray = None
    v: np.ndarray = None
    #: the canal's half-way outline for the transverse widths, and whether it is closed: on an
    #: open ring (the wall runs on into a neighbouring bone) the canal may still be enclosed
    r_in_canal: np.ndarray = None
    canal_closed: bool = False
    #: the canal re-read with rays from its own core (the reader's ray origin): the origin
    #: (in-plane offset (2,) from ``center`` along u, v) and the canal's radii about it
    canal_origin: np.ndarray = None
    r_canal_core: np.ndarray = None
    #: the outer half-way edge of the canal's wall on the same rays (None: not closed)
    r_wall_core: np.ndarray = None
    core_tried: bool = False

    def basis_offset(self) -> np.ndarray:
        """LPS offset from the centre to the mean of the outer outline's vertices."""
        if self.u is None or not np.any(np.isfinite(self.r_out_half)):
            return np.zeros(3)
        m = np.nanmean(DIRS2 * self.r_out_half[:, None], axis=0)
        return m[0] * self.u + m[1] * self.v

    @property
    def outer_pts(self) -> np.ndarray:
        return DIRS2 * self.r_out[:, None]

    @property
    def inner_pts(self) -> np.ndarray:
        ok = np.isfinite(self.r_in) & (self.r_in > 0)
        return DIRS2[ok] * self.r_in[ok, None]


@dataclass
class _Sweep:
    sections: List[Section]
    axis: np.ndarray
    u: np.ndarray
    v: np.ndarray
    soft_hu: float
    cortex_hu: float
    crop: object = None           # the LocalCT the sweep sampled
    min_peak_hu: float = None     # the least cortical peak of its edges (edges.ray_edges)
    blur_k: float = np.nan        # the scan's reconstruction blur sigma_k (mm; NaN: unknown)


@dataclass
class _Context:
    """What the transverse widths need (kept so both sides can share one LR direction)."""

    near: List[Section]
    axis: np.ndarray
    u: np.ndarray
    v: np.ndarray
    extra: Dict[str, float] = field(default_factory=dict)
    #: the closed-tube stretch (the sections the reader accepts), in order along the axis
    tube: List[Section] = field(default_factory=list)
    #: the sections where the transverse widths were read (set by _set_transverse)
    transverse_near: List[Section] = field(default_factory=list)
    crop: object = None
    soft_hu: float = 0.0
    min_peak_hu: float = None
    #: the reconstruction blur sigma_k fitted with the density (mm; NaN: unknown)
    blur_k: float = np.nan


# --------------------------------------------------------------------------------------
# public API


def measure_pedicle(ct: sitk.Image, mask: sitk.Image, side: str, step_mm: float = SECTION_STEP_MM,
                    progress: Optional[ProgressCallback] = None,
                    lr_direction_lps: Optional[Sequence[float]] = None) -> PedicleMeasurement:
    """Measure one C2 pedicle isthmus, seeded by a pedicle mask.

    Parameters
    ----------
    ct : CT in Hounsfield units, any spacing/direction.
    mask : binary mask of the pedicle (nonzero = pedicle); may be on another grid than ``ct``
        as long as both describe the same patient space. It seeds the axis and bounds the
        search along it; the edges come from the CT.
    side : ``"left"`` or ``"right"`` (patient side).
    lr_direction_lps : the vertebra's left-right direction for the transverse widths
        (default: the scanner's x axis; :func:`measure_both` uses the line between the two
        isthmi).

    Raises
    ------
    MeasurementError
        empty or tiny mask, mask touching the scan edge, no elongated pedicle, or no
        measurable cortex (e.g. the mask is not on bone).
    """
    m, ctx = _measure_mask(ct, mask, side, step_mm, progress)
    _set_transverse(m, ctx, lr_direction_lps)
    return m


def measure_trajectory(ct: sitk.Image, entry_lps: Sequence[float], target_lps: Sequence[float],
                       side: str, step_mm: float = SECTION_STEP_MM,
                       progress: Optional[ProgressCallback] = None,
                       lr_direction_lps: Optional[Sequence[float]] = None,
                       transverse: bool = True,
                       cortical_density_hu: Optional[float] = None,
                       scan_blur_mm: Optional[float] = None) -> PedicleMeasurement:
    """Measure one isthmus along an entry -> target trajectory (LPS mm), without any mask.

    The trajectory is the surgeon's planned screw path (entry near the lamina / lateral mass
    junction, target in the vertebral body); the isthmus is searched between the two points
    and its centre and axis are found in the image around the line. ``transverse=False``
    leaves the reader's transverse widths unset (a caller that needs only the MPD and the
    isthmus, e.g. a check, saves reading the canal along the tube: ~0.1-0.2 s).

    ``cortical_density_hu``: the scan's cortical density when it is known already (the
    :attr:`PedicleMeasurement.cortical_density_hu` of another measurement of the same pedicle
    on the same scan: a property of the scanner and the bone, not of the line); it is used
    instead of fitting it again to this line's profiles (the fit is half the cost of a short
    trajectory). ``scan_blur_mm``: the scan's reconstruction blur sigma_k fitted with that
    density (the narrow canals' diameter moments need it); with a density but no blur,
    sigma_k = 0 (the voxel grid's part of the blur alone).
    """
    m, ctx = _measure_traj(ct, entry_lps, target_lps, side, step_mm, progress,
                           cortical_density_hu, scan_blur_mm)
    if transverse:
        _set_transverse(m, ctx, lr_direction_lps)
    return m


def measure_both(ct: sitk.Image, labels: Optional[sitk.Image] = None, left_label: int = 1,
                 right_label: int = 2, progress: Optional[ProgressCallback] = None,
                 trajectories: Optional[Dict[str, Tuple[Sequence[float], Sequence[float]]]] = None,
                 ) -> Dict[str, PedicleMeasurement]:
    """Measure both sides from one label map (values ``left_label`` / ``right_label``) or from
    ``trajectories`` ``{"left": (entry, target), "right": (...)}`` (LPS mm; a side given there
    is measured along its trajectory instead of its mask).

    The transverse widths of both sides use the vertebra's left-right direction, taken as the
    line between the two isthmus centres.
    """
    trajectories = dict(trajectories or {})
    out, ctxs = {}, {}
    for side, value in (("left", left_label), ("right", right_label)):
        if side in trajectories:
            entry, target = trajectories[side]
            out[side], ctxs[side] = _measure_traj(ct, entry, target, side, SECTION_STEP_MM, progress)
        else:
            if labels is None:
                raise MeasurementError(f"No mask and no trajectory for the {side} pedicle.",
                                       hint="Give a label map or a trajectory for each side.")
            mask = sitk.Cast(labels == int(value), sitk.sitkUInt8)
            out[side], ctxs[side] = _measure_mask(ct, mask, side, SECTION_STEP_MM, progress)
    lr = np.subtract(out["left"].isthmus_center_lps_mm, out["right"].isthmus_center_lps_mm)
    lr = lr / np.linalg.norm(lr) if np.linalg.norm(lr) > 5.0 else None
    for side in out:
        _set_transverse(out[side], ctxs[side], lr)
    return out


# --------------------------------------------------------------------------------------
# seeds


def _measure_mask(ct, mask, side, step_mm, progress):
    label = f"{side} C2 pedicle"
    mask = crop_to_mask(mask)
    pts = mask_points(mask, label, ct)
    axis, centroid = pedicle_axis_from_mask(pts, label)
    t_vals = (pts - centroid) @ axis
    t_lo, t_hi = np.percentile(t_vals, [2, 98])
    if t_hi - t_lo < 2.0:
        raise MeasurementError(
            f"The {label} mask is too short along its axis ({t_hi - t_lo:.1f} mm) to find an isthmus.",
            hint="Check the segmentation: the pedicle mask should cover the pedicle from the "
                 "lateral mass to the vertebral body.")

    def seed_centre(t: float) -> np.ndarray:
        return slab_centroid(pts, t_vals, t, centroid, axis)

    return _measure(ct, side, axis, centroid, float(t_lo + 0.5), float(t_hi - 0.5), seed_centre,
                    step_mm, progress, source="mask")


def _measure_traj(ct, entry, target, side, step_mm, progress, cortical_density_hu=None, scan_blur_mm=None):
    label = f"{side} C2 pedicle"
    axis, e, length = trajectory_axis(entry, target, label)
    known = (float(cortical_density_hu) if cortical_density_hu is not None
             and np.isfinite(cortical_density_hu) else None)
    # with the density given, the blur is the one given with it; without one, the voxel grid's
    # part alone (known from the scan's geometry): sigma_k = 0
    blur = np.nan if known is None else (float(scan_blur_mm) if scan_blur_mm is not None
                                         and np.isfinite(scan_blur_mm) else 0.0)
    return _measure(ct, side, axis, e, 0.0, length, lambda t: e + t * axis, step_mm, progress,
                    source="trajectory", cortex_hu=known, blur_k=blur)


# --------------------------------------------------------------------------------------
# the sweep


def _sweep(crop, axis, centres: np.ndarray, t_grid: np.ndarray, soft_hu=None, cortex_hu=None,
           blur_k: float = np.nan) -> _Sweep:
    """One sweep of sections. ``cortex_hu`` None: the scan's cortical density and
    reconstruction blur sigma_k are fitted on this sweep (``edges.scan_blur_and_density``);
    otherwise they are given (``blur_k``; NaN: unknown, the narrow canals' diameter moments
    are then not used; ``np.inf`` density: edges without moments)."""
    u, v = section_basis(axis)
    prof = ray_profiles(crop, centres, axis, u, v)
    if soft_hu is None:
        soft_hu = _edges.soft_tissue_level(prof)
    flat = prof.reshape(-1, prof.shape[-1])
    e0 = None
    if cortex_hu is None:
        e0 = _edges.ray_edges(flat, RADII, soft_hu, N_RAYS, np.inf)   # edges without moments
        # the scan's point-spread function along each ray: the voxel grid's part is known
        dirs3 = DIRS2[:, 0:1] * u + DIRS2[:, 1:2] * v
        d, sp = np.asarray(crop.image.GetDirection()), np.asarray(crop.image.GetSpacing())
        gvar = _edges.grid_variance(d, sp, dirs3)
        blur_k, cortex_hu = _edges.scan_blur_and_density(flat, RADII, e0, grid_var=np.tile(gvar, len(centres)),
                                                         n_rays=N_RAYS, grid_w=_edges.grid_widths(d, sp, dirs3))
        if not np.isfinite(cortex_hu):
            cortex_hu = _edges.cortical_density(e0.peak_hu[e0.found])
    # (the peaks and half-way edges of the density fit's edges serve again: same profiles)
    e = _edges.ray_edges(flat, RADII, soft_hu, N_RAYS, cortex_hu, like=e0)
    # a cortical bar is closer to the cortical density than to the scan's cancellous bone
    canc = e.plateau_hu[e.dip]
    canc = float(np.median(canc[np.isfinite(canc)])) if np.isfinite(canc).any() else float(soft_hu)
    dense_hu = 0.5 * (canc + cortex_hu) if np.isfinite(cortex_hu) else np.inf
    diameter = None
    if np.isfinite(cortex_hu) and np.isfinite(blur_k):
        # the blur's variance along each ray: sigma_k^2 + the voxel grid's part
        dirs3 = DIRS2[:, 0:1] * u + DIRS2[:, 1:2] * v
        gv = _edges.grid_variance(np.asarray(crop.image.GetDirection()), np.asarray(crop.image.GetSpacing()),
                                  dirs3)
        diameter = (gv + float(blur_k) ** 2, canc)
    parts = []
    for n, (t, c) in enumerate(zip(t_grid, centres)):
        sl = slice(n * N_RAYS, (n + 1) * N_RAYS)
        parts.append(_section_rings(float(t), c, e, sl, flat[sl], cortex_hu, dense_hu, diameter))
    # the rings of all sections smoothed at once (each ring as on its own)
    smooth = _w.smooth_circular(np.concatenate([rings for rings, _ in parts])) if parts else None
    sections = []
    for n, (_, finish) in enumerate(parts):
        sec = finish(smooth[4 * n:4 * n + 4])
        sec.axis, sec.u, sec.v = axis, u, v
        sections.append(sec)
    return _Sweep(sections, axis, u, v, soft_hu, cortex_hu, crop, e.min_peak_hu, float(blur_k))


#: The blur's tails the diameter's moments take in beyond each half-way edge (sigmas).
DIAMETER_TAIL_SIGMAS = 3.0


def _diameter_edges(prof, found, dip, r_half, r_in_half, outside, cortex_hu, canc_hu, var, r_out):
    """Outer radii of a narrow canal's walls from the moments along each diameter (ray k and
    k + 180 deg), where a ray's own moments have no canal plateau to start on (a canal
    half-way edge within ``MOMENT_INSIDE_MM`` of the centre: the window then starts at the
    centre, on the opposite wall's blur). Along the diameter the section is outside B | cortex
    K | canal C | cortex K | outside B. Blur keeps the profile's mass and centre and adds its
    own variance (``var``, per ray: sigma_k^2 + the grid's part, whatever the kernel's shape)
    times the mass to the second central moment, so with walls of equal thickness the outer
    diameter D and the canal width w follow from
        m0 = (K - B) D - (K - C) w,   M2 - var m0 = ((K - B) D^3 - (K - C) w^3) / 12
    (monotonic in D; solved by bisection). ``canc_hu`` is the scan's cancellous level (the
    sweep's medullary plateau), not this canal's blurred-up centre. Diameters without a
    consistent solution keep ``r_out``."""
    half = N_RAYS // 2
    step = float(RADII[1] - RADII[0])
    k = np.arange(half)
    k2 = k + half
    rin = np.where(dip, r_in_half, np.nan)
    with np.errstate(invalid="ignore"):
        narrow = np.fmin(rin[k], rin[k2]) < _edges.MOMENT_INSIDE_MM
    use = found[k] & found[k2] & narrow & np.isfinite(var[k])
    if not (use.any() and np.isfinite(cortex_hu) and np.isfinite(canc_hu)):
        return r_out
    k, k2 = k[use], k2[use]
    sg = np.sqrt(var[k])
    b1 = np.minimum(r_half[k] + DIAMETER_TAIL_SIGMAS * sg, RADII[-1])
    b2 = np.minimum(r_half[k2] + DIAMETER_TAIL_SIGMAS * sg, RADII[-1])
    x = np.concatenate([-RADII[:0:-1], RADII])
    y = np.concatenate([prof[k2][:, :0:-1], prof[k]], axis=1)
    w = ((x[None, :] >= -b2[:, None]) & (x[None, :] <= b1[:, None])) * step
    bg = 0.5 * (outside[k] + outside[k2])
    yy = (y - bg[:, None]) * w
    KB, KC = cortex_hu - bg, cortex_hu - canc_hu
    with np.errstate(all="ignore"):
        m0 = yy.sum(axis=1)
        mid = (yy * x).sum(axis=1) / m0
        M2 = (yy * (x[None, :] - mid[:, None]) ** 2).sum(axis=1) - var[k] * m0
        ok = (m0 > 0) & (M2 > 0) & (KB > KC) & (KC > 0)
        d_lo = m0 / KB
        d_hi = np.minimum(m0 / (KB - KC), d_lo + 6.0)

        def f(D):
            wc = np.maximum((KB * D - m0) / KC, 0.0)
            return (KB * D ** 3 - KC * wc ** 3) / 12.0 - M2

        ok &= f(d_hi) >= 0
        lo, hi = d_lo.copy(), d_hi.copy()
        for _ in range(30):
            mm = 0.5 * (lo + hi)
            below = f(mm) < 0
            lo, hi = np.where(below, mm, lo), np.where(below, hi, mm)
        D = np.where(f(d_lo) >= 0, d_lo, 0.5 * (lo + hi))
        r1, r2 = mid + 0.5 * D, 0.5 * D - mid
        # the walls must lie either side of the centre and agree with the half-way edges to
        # the blur scale
        ok &= (r1 > 0) & (r2 > 0) & (np.abs(r1 - r_half[k]) < 1.5) & (np.abs(r2 - r_half[k2]) < 1.5)
    r = r_out.copy()
    r[k[ok]], r[k2[ok]] = r1[ok], r2[ok]
    return r


def _section(t, c, e: _edges.RayEdges, sl, prof, cortex_hu, dense_hu=np.inf, diameter=None) -> Section:
    rings, finish = _section_rings(t, c, e, sl, prof, cortex_hu, dense_hu, diameter)
    return finish(_w.smooth_circular(rings))


def _section_rings(t, c, e: _edges.RayEdges, sl, prof, cortex_hu, dense_hu=np.inf, diameter=None):
    """One section's four rings (outer, inner, half-way outer and inner; gaps filled), and the
    function that makes the :class:`Section` from them once smoothed (a sweep smooths the rings
    of all its sections at once: each ring as on its own)."""
    found = e.found[sl]
    dip = e.dip[sl]
    frac = found.mean()
    solid = bool(frac >= MIN_FOUND_FRACTION and dip[found].mean() < MIN_DIP_FRACTION) if found.any() else False
    if solid and np.isfinite(cortex_hu):
        # solid means a dense (cortical) bar; a centre at cancellous level with no visible
        # cortex around it is a canal whose wall is below resolution
        centre_level = float(np.median(prof[:, :5]))
        solid = centre_level >= dense_hu
    r_out_half = np.where(found, e.r_out_half[sl], np.nan)
    if not solid and frac >= MIN_FOUND_FRACTION and dip[found].mean() >= MIN_DIP_FRACTION:
        # a canal narrower than the reader's opening disk holds no screw and is no plateau the
        # edge model can stand on: the section is a bar
        r_in_probe = np.where(dip, e.r_in_half[sl], np.nan)
        ok = np.isfinite(r_in_probe)
        if ok.sum() >= 3:
            w_in = _w.min_caliper(DIRS2[ok] * r_in_probe[ok, None])[0]
            solid = bool(np.isfinite(w_in) and w_in < 2.0 * _w.CANAL_OPENING_RADIUS_MM)
    if solid:
        r_out = _solid_edges(prof, found, e.r_out_half[sl], e.outside_hu[sl], e.peak_hu[sl], cortex_hu,
                             dense_hu)
        r_in = np.zeros(N_RAYS)
        r_in_half = np.zeros(N_RAYS)
    else:
        r_out = np.where(found, e.r_out[sl], np.nan)
        if diameter is not None:   # a narrow canal: the diameters' moments (needs the blur)
            r_out = _diameter_edges(prof, found, dip, e.r_out_half[sl], e.r_in_half[sl], e.outside_hu[sl],
                                    cortex_hu, diameter[1], diameter[0], r_out)
        # a ray without a dip in a section with a canal: the canal reaches the surface there
        # (the ring is open onto the foramen or the cortex is invisibly thin)
        r_in = np.where(dip, e.r_in[sl], np.where(found, r_out, np.nan))
        r_in_half = np.where(dip, e.r_in_half[sl], np.where(found, r_out_half, np.nan))
    closed = frac >= MIN_FOUND_FRACTION
    filled = []
    for r in (r_out, r_in, r_out_half, r_in_half):
        rf, ok = _w.fill_gaps(r)
        closed &= ok
        filled.append(rf)

    def finish(out: np.ndarray) -> Section:
        sec = Section(t_mm=t, center=np.asarray(c, float), closed=bool(closed), solid=solid,
                      r_out=out[0], r_in=np.minimum(out[1], out[0]), r_out_half=out[2],
                      r_in_half=np.minimum(out[3], out[2]))
        sec.r_in_canal, sec.canal_closed = sec.r_in_half, bool(closed and not solid)
        if not closed and not solid and e.r_in_rise is not None and dip.sum() >= 3:
            # the canal of an open ring: its edge from the rise out of it where no wall was found
            rc = np.where(dip, e.r_in_half[sl], np.where(found, e.r_out_half[sl], e.r_in_rise[sl]))
            rcf, ok = _w.fill_gaps(rc)
            if ok:
                sec.r_in_canal, sec.canal_closed = _w.smooth_circular(rcf), True
        if sec.closed:
            sec.width = _w.min_caliper(sec.outer_pts)[0]
        return sec

    return np.stack(filled), finish


def _solid_edges(prof, found, r_half, outside, peak, cortex_hu, dense_hu) -> np.ndarray:
    """Outer radii of a solid bar from the moments along each diameter (ray k and k + 180°):
    blur keeps the bar's area (density x width) and centre, whatever its thickness."""
    half = N_RAYS // 2
    step = float(RADII[1] - RADII[0])
    r = np.full(N_RAYS, np.nan)
    for k in range(half):
        k2 = k + half
        if not (found[k] and found[k2]):
            continue
        b1 = min(r_half[k] + 1.5, RADII[-1])
        b2 = min(r_half[k2] + 1.5, RADII[-1])
        n1, n2 = int(round(b1 / step)), int(round(b2 / step))
        x = np.concatenate([-RADII[1:n2 + 1][::-1], RADII[:n1 + 1]])
        y = np.concatenate([prof[k2, 1:n2 + 1][::-1], prof[k, :n1 + 1]])
        bg = 0.5 * (outside[k] + outside[k2])
        seen = max(peak[k], peak[k2])
        if not (np.isfinite(cortex_hu) and seen >= dense_hu):
            continue   # not a dense bar: its level is unknown, keep the half-way edges
        level = max(cortex_hu, seen) - bg
        if level <= 0:
            continue
        yy = y - bg
        m0 = float(np.sum(yy) * step - 0.5 * step * (yy[0] + yy[-1]))
        m1 = float(np.sum(yy * x) * step - 0.5 * step * (yy[0] * x[0] + yy[-1] * x[-1]))
        width = m0 / level
        if width <= 0:
            continue
        mid = m1 / m0
        hi, lo = mid + 0.5 * width, mid - 0.5 * width
        # the bar must lie across the centre and agree with the half-way edges to the blur scale
        if lo < 0 < hi and abs(hi - r_half[k]) < 1.5 and abs(-lo - r_half[k2]) < 1.5:
            r[k], r[k2] = hi, -lo
    return np.where(np.isfinite(r), r, np.where(found, r_half, np.nan))


def _recentre(sw: _Sweep) -> np.ndarray:
    """Section centres moved to the centroid of their outer outline (closed sections)."""
    out = []
    for s in sw.sections:
        if s.closed:
            c2 = _w.polygon_centroid(s.r_out_half, DIRS2)
            if c2 is not None:
                # a centroid far from the seed belongs to a neighbouring bone that the rays
                # reached through an open side, not to the tube the seed is in
                if np.hypot(*c2) <= MAX_RECENTRE_MM:
                    out.append(s.center + c2[0] * sw.u + c2[1] * sw.v)
                    continue
        out.append(s.center)
    return np.asarray(out)


def _tube_widths(sections: List[Section]) -> np.ndarray:
    """Outer widths of the closed sections of the tube: the longest stretch of closed
    sections (gaps up to MAX_TUBE_GAP_MM bridged); NaN elsewhere. A bar of the lamina or the
    articular process beyond an open stretch is not the isthmus."""
    w = np.array([s.width if s.closed else np.nan for s in sections])
    t = np.array([s.t_mm for s in sections])
    ok = np.isfinite(w)
    if not ok.any():
        return w
    idx = np.nonzero(ok)[0]
    # outline centres in 3D (vertex means): the tube's move smoothly, a neighbouring bone's
    # outline sits elsewhere
    cen = np.array([sections[k].center + sections[k].basis_offset() for k in range(len(sections))])
    runs, start = [], idx[0]
    for a, b in zip(idx[:-1], idx[1:]):
        jump = np.linalg.norm((cen[b] - cen[a]) - (cen[b] - cen[a]) @ sections[b].axis * sections[b].axis)
        if t[b] - t[a] > MAX_TUBE_GAP_MM + 1e-6 or jump > MAX_CENTRE_JUMP_MM:
            runs.append((start, a))
            start = b
    runs.append((start, idx[-1]))
    lo, hi = max(runs, key=lambda r: (t[r[1]] - t[r[0]], -r[0]))
    # a solid stretch at an end of a tube that has a canal is the bone the tube runs into
    # (lamina, articular process), not its isthmus; a solid stretch flanked by canal
    # sections, or a tube solid throughout, is measured as the isthmus
    canal = np.array([sections[k].closed and not sections[k].solid for k in range(len(sections))])
    if canal[lo:hi + 1].sum() * (t[1] - t[0] if len(t) > 1 else 1.0) >= MIN_CANAL_STRETCH_MM:
        while lo < hi and not canal[lo]:
            lo += 1
        while hi > lo and not canal[hi]:
            hi -= 1
    out = np.full_like(w, np.nan)
    out[lo:hi + 1] = w[lo:hi + 1]
    return out


def _profile_min(sections: List[Section]) -> int:
    w = _tube_widths(sections)
    if np.all(np.isnan(w)):
        return -1
    sm = _nan_median3(w)
    return int(np.nanargmin(sm))


def _measure(ct, side, axis, origin, t0, t1, seed_centre: Callable, step_mm, progress, source,
             cortex_hu=None, blur_k=np.nan):
    progress = progress or null_progress
    label = f"{side} C2 pedicle"
    t_grid = np.arange(t0, t1 + 1e-9, step_mm)
    if t_grid.size < 5:
        raise MeasurementError(f"The {label} search range is too short ({t1 - t0:.1f} mm).",
                               hint="The mask or trajectory must span the isthmus.")
    line = origin + np.outer([t0, t1], axis)
    crop = local_ct(ct, line, margin_mm=RADII[-1] + 6.0)
    spacing = np.asarray(ct.GetSpacing(), dtype=float)

    # pass 1: seed centres, coarse steps; re-centre each section on its outline
    coarse = t_grid[::2]
    centres = np.array([seed_centre(t) for t in coarse])
    sw = _sweep(crop, axis, centres, coarse, cortex_hu=np.inf)
    progress("measure", 0.2, f"{side}: first sweep")
    sw = _sweep(crop, axis, _recentre(sw), coarse, sw.soft_hu, cortex_hu=np.inf)
    i0 = _profile_min(sw.sections)
    sw1 = sw
    if i0 < 0:
        raise MeasurementError(
            f"No cortical bone outline was found around the {label}.",
            hint="The mask or trajectory may not lie on the pedicle, or the scan is too noisy or "
                 "coarse. Check the overlay and the scan's bone window.")
    # re-aim: the line through the outline centres around the narrowest part
    t_star = sw.sections[i0].t_mm
    sel = [s for s in sw.sections if s.closed and abs(s.t_mm - t_star) <= REFIT_HALF_WINDOW_MM]
    new_axis, point = axis, sw.sections[i0].center
    # a trajectory is a person's deliberate axis (the reader's plane is perpendicular to it):
    # only a mask's principal direction is re-aimed
    if len(sel) >= 5 and source == "mask" and REAIM_MASK_AXIS:
        c = np.array([s.center for s in sel])
        mu = c.mean(axis=0)
        d = np.linalg.svd(c - mu)[2][0]
        d = d if d @ axis > 0 else -d
        if d @ axis >= np.cos(np.radians(MAX_REFIT_DEG)):
            new_axis, point = d / np.linalg.norm(d), mu
    if source != "mask":
        # the trajectory's own line, fine steps, each section re-centred on its outline
        centres = np.array([seed_centre(t) for t in t_grid])
        sw = _sweep(crop, axis, centres, t_grid, sw.soft_hu, cortex_hu, blur_k)
        progress("measure", 0.6, f"{side}: second sweep")
        sw = _sweep(crop, axis, _recentre(sw), t_grid, sw.soft_hu, sw.cortex_hu, sw.blur_k)
        return _summarise(sw, side, spacing, source, progress)
    # pass 2 along the refined axis, over the same stretch (projected), fine steps. The
    # section perpendicular to a tube is its narrowest: the re-aimed axis is kept only when
    # its narrowest section is narrower than along the seed axis
    ends = origin + np.outer([t0, t1], axis)
    best = None
    for ax_try, pt in ((new_axis, point), (axis, None)):
        if pt is None:
            if new_axis is axis:
                break
            pt = sw1.sections[i0].center
        s0, s1 = ((ends - pt) @ ax_try)
        t2 = np.arange(min(s0, s1), max(s0, s1) + 1e-9, step_mm)
        sw_try = _sweep(crop, ax_try, pt + np.outer(t2, ax_try), t2, sw1.soft_hu)
        progress("measure", 0.6, f"{side}: second sweep")
        sw_try = _sweep(crop, ax_try, _recentre(sw_try), t2, sw_try.soft_hu, sw_try.cortex_hu, sw_try.blur_k)
        w = _tube_widths(sw_try.sections)
        score = np.nanmin(_nan_median3(w)) if np.any(np.isfinite(w)) else np.inf
        if best is None or score < best[0] - 0.02:
            best = (score, sw_try)
    return _summarise(best[1], side, spacing, source, progress)


# --------------------------------------------------------------------------------------
# the narrowest section


def _summarise(sw: _Sweep, side: str, spacing, source: str, progress) -> Tuple[PedicleMeasurement, _Context]:
    label = f"{side} C2 pedicle"
    secs = sw.sections
    t_grid = np.array([s.t_mm for s in secs])
    widths = _tube_widths(secs)
    if np.all(np.isnan(widths)):
        raise MeasurementError(
            f"No closed cortical outline was found around the {label}.",
            hint="The mask or trajectory may not lie on the pedicle. Check the overlay.")
    smooth = _nan_median3(widths)
    i_min = int(np.nanargmin(smooth))
    t_star, _ = _quadratic_min(t_grid, smooth, i_min)
    i_q = int(np.argmin(np.abs(t_grid - t_star)))
    if np.isfinite(smooth[i_q]):
        i_min = i_q
    half = int(round(0.5 * RUNNING_MEAN_MM / max(np.diff(t_grid).mean(), 1e-6))) if len(t_grid) > 1 else 0
    near = [secs[j] for j in range(max(0, i_min - half), min(len(secs), i_min + half + 1))
            if np.isfinite(widths[j])]
    near_w = np.array([s.width for s in near])
    sec = near[int(np.argsort(near_w)[len(near_w) // 2])]
    mpd, n_dir, pmin, pmax, m2 = _w.min_caliper(sec.outer_pts)
    perp = np.array([-n_dir[1], n_dir[0]])
    height = _w.caliper_along(sec.outer_pts, perp)
    u, v = sw.u, sw.v

    # the medullary canal (blur-corrected edges, opened with the reader's 0.5 mm disk)
    canal_w, canal_h, empty = [], [], 0
    for s in near:
        if s.solid:
            canal_w.append(0.0)
            canal_h.append(0.0)
            empty += 1
            continue
        reg, ax = _w.region(s.r_in, DIRS2, float(np.nanmax(s.r_out)) + 0.2, _w.CANAL_OPENING_RADIUS_MM)
        if not reg.any():
            empty += 1
        canal_w.append(_w.chord_widths(reg, ax, n_dir))
        canal_h.append(_w.chord_widths(reg, ax, perp))
    inner_w = float(np.mean(canal_w))
    inner_h = float(np.mean(canal_h))
    no_canal = bool(empty > len(near) / 2)

    def to_lps(p2: np.ndarray) -> np.ndarray:
        return sec.center + p2[0] * u + p2[1] * v

    mid = m2 - n_dir * (m2 @ n_dir)
    e1 = to_lps(mid + n_dir * pmin)
    e2 = to_lps(mid + n_dir * pmax)
    center = 0.5 * (e1 + e2)
    direction3 = n_dir[0] * u + n_dir[1] * v

    warn = []
    uncertainty = _uncertainty(widths, i_min, spacing)
    if no_canal or mpd < THIN_ISTHMUS_MM:
        uncertainty = float(np.hypot(uncertainty, SOLID_ISTHMUS_UNCERTAINTY_MM))
    if no_canal:
        warn.append(f"No medullary canal at the {side} isthmus: the narrowest section is solid "
                    f"bone (a bar {mpd:.1f} mm thick, e.g. over a high-riding vertebral artery) or "
                    "its canal is narrower than 1 mm. There is no canal to hold a screw: high risk.")
    elif mpd < THIN_ISTHMUS_MM:
        warn.append(f"The {side} isthmus is thin (< {THIN_ISTHMUS_MM:.0f} mm): its edges are "
                    "resolution-limited and the MPD uncertainty is widened.")
    if i_min <= 1 or i_min >= len(secs) - 2:
        warn.append(f"The narrowest {side} cross-section lies at the end of the searched stretch: "
                    "the isthmus may lie outside the segmented pedicle or trajectory.")
    axis = sw.axis
    medial, cranial = axis_angles_deg(axis, side)
    profile = []
    for s in secs[::2]:
        row = {"t_mm": float(s.t_mm - t_star),
               "outer_width_mm": float(s.width) if np.isfinite(s.width) else None,
               "inner_width_mm": None}
        if s.closed:
            row["inner_width_mm"] = 0.0 if s.solid else float(_w.caliper_along(s.inner_pts, n_dir))
        profile.append(row)
    progress("measure", 1.0, f"{side}: MPD {mpd:.2f} mm")
    m = PedicleMeasurement(
        side=side,
        mpd_mm=float(mpd),
        mpd_direction_lps=tuple(float(c) for c in direction3),
        mpd_endpoints_lps_mm=(tuple(float(c) for c in e1), tuple(float(c) for c in e2)),
        inner_width_mm=inner_w,
        outer_height_mm=float(height),
        inner_height_mm=inner_h,
        isthmus_center_lps_mm=tuple(float(c) for c in center),
        axis_lps=tuple(float(c) for c in axis),
        medial_angle_deg=medial,
        cranial_angle_deg=cranial,
        mpd_uncertainty_mm=uncertainty,
        profile=profile,
        warnings=warn,
        no_medullary_canal=no_canal,
        axis_source=source,
        cortical_density_hu=float(sw.cortex_hu) if np.isfinite(sw.cortex_hu) else None,
        scan_blur_mm=float(sw.blur_k) if np.isfinite(sw.blur_k) else None,
    )
    tube = [secs[j] for j in range(len(secs)) if np.isfinite(widths[j])]
    # the reader reads the canal wherever it is enclosed: the tube's open-ringed sections with
    # an enclosed canal next to its ends join it for the transverse widths
    # (a canal whose centre jumps across - another cavity - ends the stretch, as for the tube)
    fin = np.nonzero(np.isfinite(widths))[0]
    before, after = [], []
    for step, j in ((-1, fin[0] - 1), (1, fin[-1] + 1)):
        last = secs[j - step]
        prev = _canal_centre(last)
        while 0 <= j < len(secs) and not secs[j].closed:
            if not secs[j].canal_closed:
                # open sections without an enclosed canal over at most MAX_TUBE_GAP_MM are
                # bridged, as in the tube
                if abs(secs[j].t_mm - last.t_mm) > MAX_TUBE_GAP_MM + 1e-6:
                    break
                j += step
                continue
            c = _canal_centre(secs[j])
            if c is None or prev is None or _across(c - prev, secs[j].axis) > MAX_CENTRE_JUMP_MM:
                break
            (before.insert(0, secs[j]) if step < 0 else after.append(secs[j]))
            last, prev, j = secs[j], c, j + step
    tube = before + tube + after
    return m, _Context(near=near, axis=axis, u=u, v=v, tube=tube, crop=sw.crop, soft_hu=sw.soft_hu,
                       min_peak_hu=sw.min_peak_hu, blur_k=sw.blur_k)


def _set_transverse(m: PedicleMeasurement, ctx: _Context, lr_direction_lps) -> None:
    """The reader's transverse widths (reference README, steps 5-6): the inner width is the
    minimum over the closed-tube stretch of the 1 mm running mean of the opened canal's
    transverse width (the narrowest point of the canal, which a screw must pass; it need not
    be the section of the smallest outer diameter), and the outer transverse width is read
    at that place, over the same sections."""
    lr = np.array([1.0, 0.0, 0.0]) if lr_direction_lps is None else np.asarray(lr_direction_lps, float)
    lp = lr - (lr @ ctx.axis) * ctx.axis
    if np.linalg.norm(lp) < 1e-6:
        lp = ctx.u
    l2 = np.array([lp @ ctx.u, lp @ ctx.v])
    l2 /= np.linalg.norm(l2)
    tube = ctx.tube or ctx.near
    core = CANAL_CORE_RAYS and ctx.crop is not None

    def cored(idx):   # the canals of these sections read from their own core (once each)
        if core:
            _canal_from_its_core([tube[k] for k in idx], ctx.crop, ctx.soft_hu, ctx.min_peak_hu)

    t = np.array([s.t_mm for s in tube])
    half = 0.5 * RUNNING_MEAN_MM + 1e-6
    if TRANSVERSE_SEARCH_PIXEL_MM:
        # the canal's narrowest stretch is found on a coarser raster, then read on the
        # reader's 0.05 mm raster over the sections around it
        # (every other section: a 1 mm running mean still spans three)
        ks = np.arange(0, len(tube), 2 if len(tube) > 8 else 1)
        cored(ks)
        coarse = np.array([_canal_chords(tube[k], l2, TRANSVERSE_SEARCH_PIXEL_MM)[0] for k in ks])
        tk_ = t[ks]
        t_c = tk_[int(np.argmin([coarse[np.abs(tk_ - tk) <= half].mean() for tk in tk_]))]
        cand = np.abs(t - t_c) <= half + TRANSVERSE_SEARCH_MARGIN_MM
    else:
        t_c, cand = t[0], np.ones(len(tube), bool)
    fine_k = [k for k in range(len(tube))
              if abs(t[k] - t_c) <= 2 * half + TRANSVERSE_SEARCH_MARGIN_MM or not TRANSVERSE_SEARCH_PIXEL_MM]
    cored(fine_k)
    fine = {k: _canal_chords(tube[k], l2) for k in fine_k}
    run = {k: float(np.mean([fine[q][0] for q in fine if abs(t[q] - t[k]) <= half]))
           for k in range(len(tube)) if cand[k]}
    k_min = min(run, key=lambda k: (run[k], k))
    window = [k for k in range(len(tube)) if abs(t[k] - t[k_min]) <= half]
    ctx.transverse_near = [tube[k] for k in window]
    m.inner_width_transverse_mm = run[k_min]
    m.outer_width_transverse_mm = float(np.mean([_outer_chord(tube[k], l2, fine[k][1], fine[k][2])
                                                 for k in window]))
    lp3 = l2[0] * ctx.u + l2[1] * ctx.v
    m.transverse_direction_lps = tuple(float(c) for c in lp3)


def _canal_centre(s: Section) -> Optional[np.ndarray]:
    """LPS centroid of a section's canal outline (None without one)."""
    r = s.r_in_canal if s.r_in_canal is not None else s.r_in_half
    if s.solid or r is None or s.u is None:
        return None
    c2 = _w.polygon_centroid(r, DIRS2)
    return None if c2 is None else s.center + c2[0] * s.u + c2[1] * s.v


def _across(d: np.ndarray, axis: np.ndarray) -> float:
    """Length of the part of ``d`` across ``axis``."""
    return float(np.linalg.norm(d - (d @ axis) * axis))


def _core_canals(secs: List[Section], origins: List[np.ndarray], crop, soft_hu: float,
                 min_peak_hu: float = None) -> list:
    """The canal of each section read with 72 rays from its own centre, as the reader reads
    it (:func:`.edges.canal_edges`: the plateau from the canal's core, the first wall per
    ray, the half-way edge). The centre is found by fixed-point iteration from ``origins``
    (in-plane offsets (2,) from each section's centre): rays from it, the new canal's
    centroid, until it moves less than ``CANAL_CORE_TOL_MM``. Per section ``(origin, canal
    radii, the wall's outer radii or None)`` of the last closed canal, or None when it never
    closed."""
    out: list = [None] * len(secs)
    o = [np.asarray(x, float).copy() for x in origins]
    todo = list(range(len(secs)))
    for _ in range(CANAL_CORE_ITERATIONS):
        if not todo:
            break
        s0 = secs[todo[0]]
        cen = np.array([secs[k].center + o[k][0] * secs[k].u + o[k][1] * secs[k].v for k in todo])
        prof = ray_profiles(crop, cen, s0.axis, s0.u, s0.v)
        r_all, ro_all = _edges.canal_edges(prof.reshape(-1, prof.shape[-1]), RADII, soft_hu, N_RAYS,
                                           min_peak_hu)
        nxt = []
        for n, k in enumerate(todo):
            sl = slice(n * N_RAYS, (n + 1) * N_RAYS)
            rcf, ok = _w.fill_gaps(r_all[sl])
            if not ok:
                continue
            rcf = _w.smooth_circular(rcf)
            c2 = _w.polygon_centroid(rcf, DIRS2)
            if c2 is None:
                continue
            rof, ok_o = _w.fill_gaps(ro_all[sl])
            out[k] = (o[k].copy(), rcf, _w.smooth_circular(rof) if ok_o else None)
            if np.hypot(*c2) > CANAL_CORE_TOL_MM:
                o[k] = o[k] + c2
                nxt.append(k)
        todo = nxt
    return out


def _canal_from_its_core(tube: List[Section], crop, soft_hu: float, min_peak_hu: float = None) -> None:
    """The tube's canals re-read the way the reader reads them - rays from the canal's own
    centre (:func:`_core_canals`) - while the outer outline keeps its own rays. Sections
    whose canal does not close from its core keep the canal of their outline's rays.

    Where the canal is eccentric (the outline's centre lies in grey trabecular bone beside
    it), rays from the outline's centre start in that grey bone: the section's plateau reads
    grey, and the half-way level between it and a faint wall beyond lies out at the wall, so
    the canal takes in the grey bone. From the canal's centre the plateau is the canal's own
    level."""
    core = [s for s in tube if s.canal_closed and not s.solid and s.u is not None and not s.core_tried]
    orig = []
    for s in core:
        c2 = _w.polygon_centroid(s.r_in_canal if s.r_in_canal is not None else s.r_in_half, DIRS2)
        orig.append(np.zeros(2) if c2 is None else c2)
    for s, res in zip(core, _core_canals(core, orig, crop, soft_hu, min_peak_hu)):
        s.core_tried = True
        if res is not None:
            s.canal_origin, s.r_canal_core, s.r_wall_core = res


def _canal_chords(s: Section, l2: np.ndarray, pixel_mm: float = _w.CANAL_PIXEL_MM):
    """(inner transverse width, canal centroid (2,) or None, raster axis) of one section along
    the in-plane direction ``l2``: the mean of the opened half-way canal's 5 chords. The
    canal read from its own core (:func:`_canal_from_its_core`) where there is one."""
    if s.r_canal_core is not None:
        r_in, o2 = s.r_canal_core, s.canal_origin
    else:
        r_in, o2 = (s.r_in_canal if s.r_in_canal is not None else s.r_in_half), np.zeros(2)
    ext = float(np.nanmax(np.concatenate([s.r_out_half, r_in + np.hypot(*o2)]))) + 0.2
    if s.solid:
        return 0.0, None, ext
    canal, ax = _w.region(r_in, DIRS2, float(np.nanmax(r_in)) + 0.2, _w.CANAL_OPENING_RADIUS_MM,
                          pixel_mm=pixel_mm)
    if not canal.any():
        return 0.0, None, ext
    yy, xx = np.nonzero(canal)
    return _w.chord_widths(canal, ax, l2), o2 + np.array([ax[xx].mean(), ax[yy].mean()]), ext


def _outer_chord(s: Section, l2: np.ndarray, c2: Optional[np.ndarray], ext: float) -> float:
    """The half-way outline's chord along ``l2`` through ``c2`` (the canal centroid; the
    outline's centroid when there is no canal). Where the canal was read from its core, the
    outer edges are those of its wall on the same rays (the reader's rays from the canal
    centre): where the wall runs on into a neighbouring bone, its outer edge is half-way
    down into the dip before that bone, not beyond the bone."""
    if OUTER_FROM_CANAL_WALL and s.r_wall_core is not None and c2 is not None:
        reg, ax = _w.region(s.r_wall_core, DIRS2, float(np.nanmax(s.r_wall_core)) + 0.2)
        return _w.chord_widths(reg, ax, l2, c2 - s.canal_origin, n_chords=1)
    r = s.r_out_half
    if not np.all(np.isfinite(r)) and np.isfinite(r).sum() >= 3:
        # an open ring: the outline interpolated across its opening
        k = np.nonzero(np.isfinite(r))[0]
        n = len(r)
        r = np.interp(np.arange(n), np.concatenate([k - n, k, k + n]), np.concatenate([r[k]] * 3))
    outer_reg, ax = _w.region(r, DIRS2, ext)
    if c2 is None:
        yy, xx = np.nonzero(outer_reg)
        c2 = np.array([ax[xx].mean(), ax[yy].mean()]) if yy.size else np.zeros(2)
    return _w.chord_widths(outer_reg, ax, l2, c2, n_chords=1)


# --------------------------------------------------------------------------------------
# helpers


def _nan_median3(x: np.ndarray) -> np.ndarray:
    out = x.copy()
    for i in range(len(x)):
        w = x[max(0, i - 1): i + 2]
        w = w[np.isfinite(w)]
        out[i] = np.median(w) if (np.isfinite(x[i]) and w.size) else np.nan
    return out


def _quadratic_min(t: np.ndarray, w: np.ndarray, i: int, half_window_mm: float = 3.0) -> Tuple[float, float]:
    """Vertex (t, width) of a least-squares parabola through the width profile near index i;
    the sample minimum when the fit is not convex or its vertex leaves the window."""
    sel = np.isfinite(w) & (np.abs(t - t[i]) <= half_window_mm)
    if sel.sum() < 5:
        return float(t[i]), float(w[i])
    a, b, c = np.polyfit(t[sel] - t[i], w[sel], 2)
    if a <= 1e-6:
        return float(t[i]), float(w[i])
    tv = -b / (2 * a)
    if abs(tv) > half_window_mm:
        return float(t[i]), float(w[i])
    return float(t[i] + tv), float(c - b * b / (4 * a))


def _uncertainty(widths: np.ndarray, i: int, spacing: np.ndarray) -> float:
    """Estimated 1-sigma uncertainty (mm) of the MPD: section-to-section scatter of the width
    near the isthmus, a resolution term proportional to the coarsest voxel spacing, and a base
    term (calibrated on the phantom benchmark, ``benchmarks/bench_measure.py``)."""
    near = widths[max(0, i - 4): i + 5]
    near = near[np.isfinite(near)]
    noise = float(np.std(np.diff(near)) / np.sqrt(2)) if near.size > 2 else 0.2
    resolution = RESOLUTION_UNCERTAINTY_PER_MM * float(np.max(spacing))
    return float(np.sqrt(BASE_UNCERTAINTY_MM**2 + resolution**2 + noise**2))
