"""Localise the C2 vertebra in a CT, or say why it cannot be done.

``locate_c2(image, seed_lps_mm=None, vertebra_mask=None, c2_label=None)`` returns a
:class:`C2Location`: the C2 centroid and dens tip (LPS mm), a physical box that contains all
of C2 with a margin, a confidence and the evidence used.

Method (automatic; all work in the canonical LPS frame, so any input orientation works):

1. Refuse scans whose in-plane voxels exceed 1.5 mm (:mod:`c2net.locate_volume`).
2. Average the scan to a 2 mm canonical grid and follow the spinal canal as the longest
   coherent chain of soft-tissue holes enclosed by bone (:mod:`c2net.locate_canal`).
3. Resample a 1 mm crop around the upper canal from the input and look, slice by slice, for
   the dens: a small round bone island in front of the canal with the anterior arch of C1 in
   front of it and the lateral masses beside it (:mod:`c2net.locate_dens`). Island slices are
   chained into upright runs; several runs may be open at once, so a stray island on one slice
   does not break the dens column, and a run whose top leans forwards onto skull-base bone (the
   basion touching the tip) keeps its upright part. The best-scoring run is the dens; a run
   scoring below 5 (a few island slices with no C1 around them) is no evidence of one.
4. The tip: where the dens touches the C1 arch or the skull base in the image (thin joint
   spaces, thick slices) its upper part is no island, so the tip is the top of the bone column
   above the run, plus 1.5 mm. A column that goes on more than 10 mm above the run ends in no
   tip: the run is part of a body below a dens the scan cuts off (``c2_not_found``).
5. Follow the anterior column down from the tip to the C2/C3 disc. C2's centroid lies on the
   body's level, about 27 mm below the tip and 11.5 mm behind the dens axis (adult morphometry:
   C2 is ~40 mm tall from tip to inferior endplate; the posterior arch pulls the centroid back);
   it is then re-centred left-right on the bone of an axial slab at that level.
6. Refuse when C2 is cut by the field of view: the dens column fills the scan's top slice;
   the chosen run does not end like a tip (bone goes on above it) while a dens-like column
   above it runs into the top cut (the scan ends inside the dens); no C2/C3 disc is seen before
   the scan's lower edge, or the scan ends less than 10 mm below it (C2's inferior processes);
   bone at C2's level touches a side of the scan. Refuse thick slices (> 3 mm) once C2 is found.

Overrides beat the automatic search: a vertebra label map (its C2 voxels give everything
exactly) or a seed point on C2 (the automatic search is then confined around the seed, and
the seed itself is used if that fails).

Research use only - not a medical device.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np
import SimpleITK as sitk

from .errors import LocalisationError
from .geometry import physical_bounds
from .locate_canal import CanalTrack, canal_like, track_canal
from .locate_crop import Crop, make_crop
from .locate_dens import BONE_HU_1MM, DensRun, dens_runs, run_slope, slice_cues
from .locate_overrides import (
    MaskInput,
    check_seed,
    mask_points,
    read_vertebra_mask,
    voxel_half_extent,
)
from .locate_volume import (
    MAX_INPLANE_SPACING_MM,
    MAX_SLICE_SPACING_MM,
    WorkVolume,
    acquisition_spacing,
    check_resolution,
    make_work_volume,
)
from .progress import ProgressCallback, null_progress

#: C2 centroid relative to the dens tip, in the spine frame (mm): below along the spine axis,
#: behind the dens axis (means over 40 training phantoms: 27.2 +- 1.9 and 11.5 +- 1.0 mm; adult
#: morphometry agrees: C2 is ~40 mm from tip to inferior endplate, the arch pulls the centroid
#: back).
CENTROID_BELOW_TIP_MM = 27.2
CENTROID_BEHIND_TIP_MM = 11.5
#: C2 extent around its centroid in the spine frame (lateral, anterior/posterior, inferior/
#: superior; mm), from adult morphometry (~70 mm wide across the transverse processes,
#: ~60 mm deep to the spinous tip, ~45-50 mm tall).
C2_HALF_WIDTH_MM = 37.0
C2_ANTERIOR_MM, C2_POSTERIOR_MM = 22.0, 43.0
C2_INFERIOR_MM, C2_SUPERIOR_MM = 22.0, 32.0
#: Margin added around C2 for the region of interest (mm).
ROI_MARGIN_MM = 10.0
#: Shortest canal (mm) that counts as a cervical spine.
MIN_CANAL_MM = 20.0
#: How far (mm) below the C2/C3 disc the scan must reach (C2's inferior processes).
BELOW_DISC_MM = 10.0
#: C2 height (dens tip to the inferior endplate) the disc search accepts (mm).
C2_HEIGHT_RANGE_MM = (28.0, 52.0)
#: Least score of a dens run (:class:`c2net.locate_dens.SliceCue`: 1 per island slice, more
#: with the C1 arch in front or lateral masses beside): a few isolated slices without C1
#: around them are no evidence of a dens.
MIN_DENS_SCORE = 5.0
#: How far (mm) the dens column may go on above its last isolated slice: where the tip
#: touches the C1 arch or the skull base in the image (thick slices, a narrow joint space), the
#: upper dens is no island, but the bone of the column is still there.
MAX_TIP_EXTENSION_MM = 10.0


@dataclass
class C2Location:
    """Where C2 is (LPS mm) and how sure the localiser is.

    ``center_lps_mm`` estimates the centroid of the whole C2 vertebra (pedicles included);
    ``roi_min_lps_mm``/``roi_max_lps_mm`` bound a box containing all of C2 with a margin of
    ``ROI_MARGIN_MM``; ``method`` is ``"automatic"``, ``"seed"`` or ``"vertebra_mask"``.
    """

    center_lps_mm: tuple
    dens_tip_lps_mm: Optional[tuple]
    roi_min_lps_mm: tuple
    roi_max_lps_mm: tuple
    confidence: float
    method: str
    evidence: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("center_lps_mm", "dens_tip_lps_mm", "roi_min_lps_mm", "roi_max_lps_mm"):
            if d[key] is not None:
                d[key] = [round(float(v), 2) for v in d[key]]
        d["confidence"] = round(float(self.confidence), 3)
        d["frame"] = "LPS mm"
        return d


# ----------------------------------------------------------------------------- entry point
def locate_c2(image: sitk.Image, seed_lps_mm=None, vertebra_mask: MaskInput | None = None,
              c2_label: int | None = None, progress: ProgressCallback | None = None
              ) -> C2Location:
    """Find C2 in ``image`` (a CT in HU, any orientation) or raise why not.

    Raises ``GeometryError`` (``resolution_too_coarse``) for voxels above 1.5 mm in-plane or
    3 mm between slices, and ``LocalisationError`` with code ``c2_not_in_fov``,
    ``c2_partly_in_fov``, ``c2_not_found``, ``seed_outside_image`` or ``mask_label_missing``.
    """
    progress = progress or null_progress
    if image.GetDimension() != 3:
        raise LocalisationError("the image is not 3D", "give a 3D CT volume", code="not_3d")
    inplane, slab = acquisition_spacing(image)
    if inplane > MAX_INPLANE_SPACING_MM:
        check_resolution(image)  # raises resolution_too_coarse
    progress("locate", 0.05, "checking the input")
    if vertebra_mask is not None:
        loc = _from_mask(image, vertebra_mask, c2_label)
    elif seed_lps_mm is not None:
        seed = check_seed(image, seed_lps_mm)
        loc = _from_seed(image, seed, progress)
    else:
        loc = _automatic(image, progress)
    if slab > MAX_SLICE_SPACING_MM:
        check_resolution(image)  # C2 is there, but too coarsely sampled to measure
    loc.evidence["spacing_mm"] = {"inplane": round(inplane, 3), "slice": round(slab, 3)}
    progress("locate", 1.0, f"C2 found ({loc.method}, confidence {loc.confidence:.2f})")
    return loc


# ----------------------------------------------------------------------------- mask override
def _from_mask(image: sitk.Image, vertebra_mask: MaskInput, c2_label: int | None) -> C2Location:
    mask, label, source = read_vertebra_mask(vertebra_mask, c2_label)
    pts = mask_points(mask, label)
    half = voxel_half_extent(mask)
    lo, hi = pts.min(0) - half, pts.max(0) + half
    centre = pts.mean(0)
    tip = pts[np.argmax(pts[:, 2])]
    blo, bhi = physical_bounds(image)
    if np.any(centre < blo) or np.any(centre > bhi):
        raise LocalisationError(
            "the C2 label of the vertebra mask lies outside the CT's field of view",
            "check that the mask belongs to this CT (same patient, same frame of reference)",
            code="c2_not_in_fov")
    warnings = []
    if np.any(lo < blo - 1.0) or np.any(hi > bhi + 1.0):
        raise LocalisationError(
            "C2 (from the vertebra mask) is only partly inside the CT's field of view",
            "use a scan that covers the whole of C2", code="c2_partly_in_fov")
    return C2Location(
        center_lps_mm=tuple(centre), dens_tip_lps_mm=tuple(tip),
        roi_min_lps_mm=tuple(lo - ROI_MARGIN_MM), roi_max_lps_mm=tuple(hi + ROI_MARGIN_MM),
        confidence=1.0, method="vertebra_mask",
        evidence={"mask": source, "c2_label": label, "c2_voxels": int(len(pts)),
                  "c2_extent_mm": [round(float(v), 1) for v in hi - lo]},
        warnings=warnings)


# ----------------------------------------------------------------------------- seed override
def _from_seed(image: sitk.Image, seed: np.ndarray, progress: ProgressCallback) -> C2Location:
    """Search for the dens near the seed; fall back to a generous box around the seed."""
    try:
        loc = _automatic(image, progress, near=seed)
        if np.linalg.norm(np.asarray(loc.center_lps_mm) - seed) <= 45.0:
            loc.method = "seed"
            loc.evidence["seed_lps_mm"] = [round(float(v), 2) for v in seed]
            loc.evidence["seed_use"] = "automatic search confined around the seed"
            loc.confidence = max(loc.confidence, 0.8)
            return loc
    except LocalisationError as exc:
        if exc.code == "c2_partly_in_fov":
            raise
    reach = np.array([45.0, 45.0, 45.0])
    blo, bhi = physical_bounds(image)
    return C2Location(
        center_lps_mm=tuple(seed), dens_tip_lps_mm=None,
        roi_min_lps_mm=tuple(np.maximum(seed - reach, blo)),
        roi_max_lps_mm=tuple(np.minimum(seed + reach, bhi)),
        confidence=0.6, method="seed",
        evidence={"seed_lps_mm": [round(float(v), 2) for v in seed],
                  "seed_use": "no dens found near the seed: the box is centred on the seed"},
        warnings=["C2 was not recognised around the seed; the region of interest is a "
                  f"{2 * reach[0]:.0f} mm box centred on the seed point"])


# ----------------------------------------------------------------------------- automatic
def _midline(hu: np.ndarray) -> np.ndarray:
    """Per slice, the L index of the body's centre of mass (patient midline estimate)."""
    body = hu > -300.0
    count = body.sum(axis=1)  # [S, L]
    l_idx = np.arange(hu.shape[2])
    total = count.sum(axis=1)
    mid = (count * l_idx).sum(axis=1) / np.maximum(total, 1)
    mid[total == 0] = 0.5 * hu.shape[2]
    return mid


def _automatic(image: sitk.Image, progress: ProgressCallback, near: np.ndarray | None = None
               ) -> C2Location:
    progress("locate", 0.1, "resampling to a 2 mm canonical grid")
    wv = make_work_volume(image)
    progress("locate", 0.3, "following the spinal canal")
    mask = canal_like(wv.hu, wv.spacing_mm)
    if near is not None:  # confine the search to 70 mm around the seed
        k, p, lat = np.round(wv.lps_to_index(near)).astype(int)
        r = int(70.0 / wv.spacing_mm)
        box = np.zeros_like(mask)
        box[max(0, k - r):k + r + 1, max(0, p - r):p + r + 1, max(0, lat - r):lat + r + 1] = True
        mask &= box
    track = track_canal(mask, wv.spacing_mm, _midline(wv.hu))
    scan_lo, scan_hi = physical_bounds(image)
    if track is None or track.length_mm * wv.spacing_mm < MIN_CANAL_MM:
        raise LocalisationError(
            "C2 is not in the field of view: no cervical spinal canal was found "
            f"(the scan covers z {scan_lo[2]:.0f} to {scan_hi[2]:.0f} mm LPS).",
            "Use a scan that covers the upper neck (C1 to C3), or give a seed point on C2.",
            code="c2_not_in_fov")
    progress("locate", 0.55, "looking for the dens inside the C1 ring")
    crop, runs, centre_p, centre_l = _dens_search(image, wv, track)
    track_pts = wv.index_to_lps(np.stack([track.k, track.p, track.lr], axis=1))
    evidence = {
        "canal": {"length_mm": round(track.length_mm * wv.spacing_mm, 1),
                  "observed_fraction": round(float(track.observed.mean()), 3),
                  "top_lps_mm": [round(float(v), 1) for v in track_pts[-1]],
                  "bottom_lps_mm": [round(float(v), 1) for v in track_pts[0]]},
        "dens_candidates": len(runs),
    }
    candidates = runs
    runs = [r for r in runs if r.score >= MIN_DENS_SCORE]
    if not runs:
        raise _no_dens_error(crop, track_pts, scan_lo, scan_hi)
    run = runs[0]
    _check_cut_column_above(crop, run, candidates)
    return _c2_from_dens(crop, run, runs, centre_p, centre_l, evidence, progress)


def _dens_search(image: sitk.Image, wv: WorkVolume, track: CanalTrack
                 ) -> tuple[Crop, list[DensRun], np.ndarray, np.ndarray]:
    pts = wv.index_to_lps(np.stack([track.k, track.p, track.lr], axis=1))
    lo = pts.min(0) - np.array([45.0, 45.0, 10.0])
    hi = pts.max(0) + np.array([45.0, 40.0, 60.0])  # the canal may be lost at C2: look above
    crop = make_crop(image, lo, hi)
    ci = crop.lps_to_index(pts)
    ks = np.arange(crop.hu.shape[0], dtype=float)
    order = np.argsort(ci[:, 0])
    # above the track's top keep its last centre; below its bottom leave it unknown
    centre_p = np.interp(ks, ci[order, 0], ci[order, 1], left=np.nan)
    centre_l = np.interp(ks, ci[order, 0], ci[order, 2], left=np.nan)
    cues = slice_cues(crop.hu, centre_p, centre_l, crop.spacing_mm)
    runs = dens_runs(cues)
    return crop, runs, centre_p, centre_l


def _no_dens_error(crop: Crop, track_pts: np.ndarray, scan_lo: np.ndarray,
                   scan_hi: np.ndarray) -> LocalisationError:
    top_gap = scan_hi[2] - track_pts[-1, 2]
    bottom_gap = track_pts[0, 2] - scan_lo[2]
    if top_gap < 12.0:
        return LocalisationError(
            "C2 is not fully in the field of view: the scan ends inside the cervical spine "
            "below the C1 ring, so the dens of C2 is cut off or above the scan.",
            "Use a scan that reaches the skull base (C1 and the whole dens), or give a "
            "vertebra label map.", code="c2_partly_in_fov")
    if bottom_gap > 15.0:
        return LocalisationError(
            "C2 is not in the field of view: the scan ends at the skull base / C1 level "
            f"(lowest slice z = {scan_lo[2]:.0f} mm LPS) and no dens of C2 was found.",
            "Use a scan that covers the upper neck down to C3.", code="c2_not_in_fov")
    return LocalisationError(
        "C2 was not found: a spinal canal runs through the scan but no dens inside a C1 ring "
        "was recognised.", code="c2_not_found")


def _run_axis(run: DensRun) -> np.ndarray:
    """Unit vector (canonical [S, P, L] index space) along the dens, pointing up: the local
    spine axis, used to step from the tip down to the body."""
    k = np.array([c.k for c in run.slices], float)
    pl = np.array([c.centre_pl for c in run.slices], float)
    if len(k) < 4 or np.ptp(k) < 3:
        return np.array([1.0, 0.0, 0.0])
    sp = np.polyfit(k, pl[:, 0], 1)[0]
    sl = np.polyfit(k, pl[:, 1], 1)[0]
    # half-way to vertical: a short run's slope is noisy
    v = np.array([1.0, 0.5 * np.clip(sp, -0.4, 0.4), 0.5 * np.clip(sl, -0.3, 0.3)])
    return v / np.linalg.norm(v)


def _c2_from_dens(crop: Crop, run: DensRun, runs: list[DensRun], centre_p: np.ndarray,
                  centre_l: np.ndarray, evidence: dict, progress: ProgressCallback
                  ) -> C2Location:
    sp = crop.spacing_mm
    k_bottom, k_top = _scan_slices(crop)
    k_end = _column_top(crop, run, k_top)
    if k_end >= k_top - 2 and _dens_cut_at_top(crop, run, k_top):
        raise LocalisationError(
            "C2 is not fully in the field of view: the dens reaches the top of the scan.",
            "Use a scan that covers the whole dens and C1.", code="c2_partly_in_fov")
    upper = run.slices[-min(len(run.slices), 4):]
    tip_pl = np.mean([c.centre_pl for c in upper], axis=0)
    tip_idx = np.array([min(k_end + 1.5 / sp, k_top + 0.5), tip_pl[0], tip_pl[1]])
    axis = _run_axis(run)
    # posterior direction perpendicular to the axis
    post = np.array([0.0, 1.0, 0.0]) - axis[1] * axis
    post /= np.linalg.norm(post)
    progress("locate", 0.8, "measuring C2 below the dens")
    height_mm, disc_found, bottom_cut = _c2_height(crop, tip_idx, axis, k_bottom)
    if bottom_cut:
        raise LocalisationError(
            "C2 is not fully in the field of view: the scan ends inside the body of C2 "
            "(no C2/C3 disc above the lowest slice).",
            "Use a scan that extends below C2 (to C3), or give a vertebra label map.",
            code="c2_partly_in_fov")
    centre_idx = tip_idx - axis * (CENTROID_BELOW_TIP_MM / sp) + post * (CENTROID_BEHIND_TIP_MM / sp)
    centre_idx = _bone_recentre(crop, centre_idx)
    centre = crop.index_to_lps(centre_idx)
    tip = crop.index_to_lps(tip_idx)
    lo, hi = _roi(centre, axis, post)
    _check_lateral_fov(crop, centre, lo, hi)
    arch = float(np.mean([c.arch_in_front for c in run.slices]))
    masses = float(np.mean([c.masses_beside for c in run.slices])) / 2.0
    n = len(run.slices)
    margin = run.score - (runs[1].score if len(runs) > 1 else 0.0)
    confidence = (0.35 + 0.2 * min(1.0, n / 10.0) + 0.15 * arch + 0.1 * masses
                  + 0.1 * disc_found + 0.1 * min(1.0, margin / 10.0))
    evidence.update({
        "dens": {"slices": n, "length_mm": round(run.length * sp, 1),
                 "score": round(run.score, 2), "slope": round(run_slope(run), 3),
                 "c1_anterior_arch_fraction": round(arch, 3),
                 "c1_lateral_masses_fraction": round(masses, 3),
                 "width_mm": round(float(np.median([c.width_mm for c in run.slices])), 1),
                 "runner_up_score": round(runs[1].score, 2) if len(runs) > 1 else None},
        "c2_height_mm": round(height_mm, 1) if height_mm else None,
        "c2_c3_disc_found": bool(disc_found),
        "spine_axis_lps": [round(float(v), 3) for v in axis[::-1]],
    })
    warnings = []
    if not disc_found:
        warnings.append("the C2/C3 disc was not recognised; C2's lower end is estimated")
    if len(runs) > 1 and margin < 3.0:
        warnings.append("another dens-like structure scored almost as high; check the region")
    return C2Location(center_lps_mm=tuple(centre), dens_tip_lps_mm=tuple(tip),
                      roi_min_lps_mm=tuple(lo), roi_max_lps_mm=tuple(hi),
                      confidence=float(np.clip(confidence, 0.0, 1.0)), method="automatic",
                      evidence=evidence, warnings=warnings)


def _check_cut_column_above(crop: Crop, run: DensRun, runs: list[DensRun]) -> None:
    """Refuse when the chosen run does not end like a dens tip and a dens-like column above it
    runs into the scan's top cut.

    The dens is C2's highest part: above its tip there is soft tissue. When the scan ends inside
    the dens, bone left below the cut can still hold a dens-like run lower down (the back of a
    body whose cancellous core is faint), but bone goes on above that run, and the truncated
    column above it is the real dens: C2 is not complete."""
    sp = crop.spacing_mm
    k_top = _scan_slices(crop)[1]
    above = [k for k in range(run.k_hi + int(round(2 / sp)), run.k_hi + int(round(4 / sp)) + 1)
             if k <= k_top]
    if above and np.mean([_dens_disc_bone(crop, run, k) for k in above]) < 0.2:
        return  # the column ends: a tip
    for other in runs:
        if (other is not run and other.k_lo > run.k_hi and len(other.slices) >= 3
                and other.k_hi >= k_top - 1 and _dens_cut_at_top(crop, other, k_top)):
            raise LocalisationError(
                "C2 is not fully in the field of view: a bone column in front of the canal "
                "(the dens) runs into the top of the scan.",
                "Use a scan that covers the whole dens and C1.", code="c2_partly_in_fov")


def _column_top(crop: Crop, run: DensRun, k_top: int) -> int:
    """The last slice, at or above the run's top, whose dens disc is still mostly bone.

    Raises ``c2_not_found`` when bone goes on further than ``MAX_TIP_EXTENSION_MM`` inside
    the scan: the run is then part of a longer column (a vertebral body below a dens that the
    scan cuts off, or the skull base), not a dens ending in a tip."""
    reach = run.k_hi + int(round(MAX_TIP_EXTENSION_MM / crop.spacing_mm))
    k_end = run.k_hi
    for k in range(run.k_hi + 1, min(k_top, reach + 1) + 1):
        if _dens_disc_bone(crop, run, k) < 0.5:
            return k_end
        k_end = k
    if k_end > reach:
        raise LocalisationError(
            "C2 was not found: the bone column in front of the canal goes on upwards with no "
            "dens tip (the scan may end inside the dens).",
            "Use a scan that covers C1 and the whole dens, or give a seed point on C2.",
            code="c2_not_found")
    return k_end


def _scan_slices(crop: Crop) -> tuple[int, int]:
    """(lowest, highest) crop slice that holds scan voxels."""
    valid_k = np.nonzero(crop.valid.any(axis=(1, 2)))[0]
    return int(valid_k[0]), int(valid_k[-1])


def _dens_disc_bone(crop: Crop, run: DensRun, k: int) -> float:
    """Fraction of bone (1 mm threshold) on slice ``k`` within a disc of the dens's width
    around the centre of the run's top slices."""
    upper = run.slices[-min(len(run.slices), 3):]
    p, lat = np.mean([c.centre_pl for c in upper], axis=0)
    radius = max(1.5, 0.5 * float(np.median([c.width_mm for c in run.slices])) / crop.spacing_mm)
    pp, ll = np.ogrid[:crop.hu.shape[1], :crop.hu.shape[2]]
    disc = (pp - p) ** 2 + (ll - lat) ** 2 <= radius ** 2
    if not disc.any():
        return 1.0
    return float(np.mean(crop.hu[k][disc] > BONE_HU_1MM))


def _dens_cut_at_top(crop: Crop, run: DensRun, k_top: int) -> bool:
    """Whether the dens column still fills the scan's top slice (its tip is cut off).

    A dens that ends a millimetre or two below the top leaves at most a sliver of bone there;
    a cut one shows a cross-section: bone over at least a quarter of a disc of the dens's
    width around its centre."""
    return _dens_disc_bone(crop, run, k_top) >= 0.25


#: Half-height (mm) of the axial slab whose bone re-centres C2 left-right; at the body level,
#: 27 mm below the dens tip, the slab holds C2 alone (C1 lies above, the C2/C3 disc ~10 mm below).
RECENTRE_SLAB_MM = 5.0
RECENTRE_HALF_WIDTH_MM = 30.0


def _bone_recentre(crop: Crop, centre_idx: np.ndarray) -> np.ndarray:
    """Move the estimate left-right onto the centroid of the bone in an axial slab at its level
    (C2 is nearly symmetric; the dens axis extrapolated 27 mm down is not precise sideways)."""
    sp = crop.spacing_mm
    k, p, lat = centre_idx
    half = RECENTRE_SLAB_MM / sp
    k0, k1 = int(max(0, np.floor(k - half))), int(min(crop.hu.shape[0], np.ceil(k + half) + 1))
    # body front to spinous tip; +-30 mm sideways keeps the mandible and the neck's edge out
    p0, p1 = int(max(0, p - C2_ANTERIOR_MM / sp)), int(min(crop.hu.shape[1], p + C2_POSTERIOR_MM / sp))
    l0, l1 = int(max(0, lat - RECENTRE_HALF_WIDTH_MM / sp)), int(min(
        crop.hu.shape[2], lat + RECENTRE_HALF_WIDTH_MM / sp))
    if l0 == 0 or l1 == crop.hu.shape[2]:
        return centre_idx        # the slab is cut by the crop: its centroid would be biased
    if k1 <= k0 or p1 <= p0 or l1 <= l0:
        return centre_idx
    bone = crop.hu[k0:k1, p0:p1, l0:l1] > 250.0
    if bone.sum() < 200:
        return centre_idx
    out = centre_idx.copy()
    out[2] = l0 + float(np.nonzero(bone)[2].mean())
    return out


def _c2_height(crop: Crop, tip_idx: np.ndarray, axis: np.ndarray, k_bottom: int
               ) -> tuple[float, bool, bool]:
    """Walk down the anterior column from the dens tip: (height mm, disc found, body cut).

    The column's mean HU in a 6 x 6 mm square is sampled every 1 mm; the C2/C3 disc is the
    first stretch, 28-52 mm below the tip, whose density falls below halfway between the body
    and soft tissue. If the scan ends before the disc, C2's body is cut.
    """
    sp = crop.spacing_mm
    half = max(1, int(round(3.0 / sp)))
    s_dim, p_dim, l_dim = crop.hu.shape
    profile = []
    for d in np.arange(0.0, C2_HEIGHT_RANGE_MM[1] + BELOW_DISC_MM + 1.0, sp):
        k, p, lat = np.round(tip_idx - axis * (d / sp) + np.array([0, 2.0 / sp, 0])).astype(int)
        if k < max(0, k_bottom) or not (0 <= p < p_dim and 0 <= lat < l_dim):
            break
        block = crop.hu[k, max(0, p - half):p + half + 1, max(0, lat - half):lat + half + 1]
        valid = crop.valid[k, max(0, p - half):p + half + 1, max(0, lat - half):lat + half + 1]
        if not valid.all():
            break
        profile.append(float(block.mean()))
    profile = np.asarray(profile)
    lo_i = int(C2_HEIGHT_RANGE_MM[0] / sp)
    if len(profile) <= lo_i:
        return 0.0, False, True
    body = float(np.median(profile[int(15 / sp):lo_i])) if lo_i > int(15 / sp) else float(profile.max())
    cut = 0.5 * (body + 60.0)
    hi_i = int(C2_HEIGHT_RANGE_MM[1] / sp)
    below = np.nonzero(profile[lo_i:hi_i] < cut)[0]
    if len(below):
        height = float((lo_i + below[0]) * sp)
        # C2's inferior articular and spinous processes reach ~10 mm below the disc
        return height, True, len(profile) * sp < height + BELOW_DISC_MM
    if len(profile) * sp < C2_HEIGHT_RANGE_MM[1]:
        # the scan ended before any disc was seen: the body runs into the scan's lower edge,
        # and C2's inferior processes reach below the disc, so C2 is cut
        return 0.0, False, True
    return 0.0, False, False


def _roi(centre: np.ndarray, axis_kji: np.ndarray, post_kji: np.ndarray
         ) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned LPS box around the C2 box in the spine frame, plus the margin."""
    up = axis_kji[::-1]          # LPS (x, y, z)
    back = post_kji[::-1]
    side = np.cross(back, up)
    corners = []
    for a in (-C2_HALF_WIDTH_MM, C2_HALF_WIDTH_MM):
        for b in (-C2_ANTERIOR_MM, C2_POSTERIOR_MM):
            for c in (-C2_INFERIOR_MM, C2_SUPERIOR_MM):
                corners.append(centre + a * side + b * back + c * up)
    corners = np.asarray(corners)
    return corners.min(0) - ROI_MARGIN_MM, corners.max(0) + ROI_MARGIN_MM


def _check_lateral_fov(crop: Crop, centre: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
    """Refuse when bone at C2's level touches the in-plane edge of the field of view."""
    inner_lo = crop.lps_to_index(lo + ROI_MARGIN_MM)
    inner_hi = crop.lps_to_index(hi - ROI_MARGIN_MM)
    k0 = int(max(0, np.floor(crop.lps_to_index(centre)[0] - 12 / crop.spacing_mm)))
    k1 = int(crop.lps_to_index(centre)[0] + 12 / crop.spacing_mm)
    p0, p1 = int(max(0, inner_lo[1])), int(inner_hi[1]) + 1
    l0, l1 = int(max(0, inner_lo[2])), int(inner_hi[2]) + 1
    # pad with "outside" where the crop's face is the image's own edge
    padded = np.pad(crop.valid, ((0, 0), (1, 1), (1, 1)), constant_values=True)
    for axis in (1, 2):
        for face, is_edge in ((0, crop.image_edge_lo[axis]), (-1, crop.image_edge_hi[axis])):
            if is_edge:
                index = [slice(None)] * 3
                index[axis] = face
                padded[tuple(index)] = False
    inside = padded[:, 1:-1, 1:-1]
    outside_next = np.zeros_like(inside)
    outside_next[:, 1:, :] |= ~padded[:, 1:-2, 1:-1]
    outside_next[:, :-1, :] |= ~padded[:, 2:-1, 1:-1]
    outside_next[:, :, 1:] |= ~padded[:, 1:-1, 1:-2]
    outside_next[:, :, :-1] |= ~padded[:, 1:-1, 2:-1]
    outside_next[:, 0, :] |= ~padded[:, 0, 1:-1]
    outside_next[:, -1, :] |= ~padded[:, -1, 1:-1]
    outside_next[:, :, 0] |= ~padded[:, 1:-1, 0]
    outside_next[:, :, -1] |= ~padded[:, 1:-1, -1]
    edge = (inside & outside_next)[k0:k1, p0:p1, l0:l1]
    bone = crop.hu[k0:k1, p0:p1, l0:l1] > 300.0
    if edge.size == 0:
        return
    if np.any(edge & bone):
        raise LocalisationError(
            "C2 is not fully in the field of view: bone at the level of C2 touches the side of "
            "the scan.", "Use a reconstruction with a wider field of view (the whole neck).",
            code="c2_partly_in_fov")


def location_summary(loc: C2Location) -> str:
    """One human-readable line (LPS mm)."""
    c = ", ".join(f"{v:.1f}" for v in loc.center_lps_mm)
    return f"C2 centre ({c}) LPS mm, {loc.method}, confidence {loc.confidence:.2f}"


__all__ = ["C2Location", "locate_c2", "location_summary"]
