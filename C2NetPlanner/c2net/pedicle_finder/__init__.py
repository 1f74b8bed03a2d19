"""Training-free anatomical C2 pedicle finder.

Research use only - not a medical device.

Given a CT (HU, any orientation and spacing) and the C2 centre from :func:`c2net.locate.locate_c2`,
:func:`find_pedicles` finds each C2 pedicle from the anatomy around it and returns masks under
the same contract as :func:`c2net.segment.segment_pedicles` (uint8 on the CT's grid: 1 = C2
pedicle left, 2 = right, patient sides):

1. a 1 mm crop around the C2 centre, aligned with the vertebra's own frame when the
   localiser gives one (:func:`spine_crop`), else canonical (:func:`c2net.geometry.canonical_crop`),
   rolled about its posterior axis to the vertebra's bilateral symmetry (:mod:`.symmetry`);
2. the scan's own bone levels (:mod:`.levels`): soft tissue, cortex, and the inside-bone level
   between them; inside-bone mask = above that level, enclosed marrow filled in 3D;
3. the spinal canal (:mod:`.canal`): the soft-tissue hole the vertebral ring encloses;
4. per side the foramen transversarium (:mod:`.foramen`), lateral to the pedicle;
5. per side the cortical tube (:mod:`.tube`): the straight corridor of bone between them,
   joining the body (anterior) to the articular pillar (posterior), found as the segment of
   maximum clearance; its constriction is the isthmus.

It is used as the fallback when the U-Net finds nothing on a side and as an independent check
of every U-Net mask (:mod:`.check`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..geometry import AIR_HU, canonical_crop, to_input_grid
from .canal import find_canal
from .foramen import find_foramen
from .levels import BoneLevels, bone_levels
from .symmetry import MAX_ROLL_DEG, MIN_ROLL_CORRECTION_DEG, mirror_roll_deg
from .tube import MIN_ISTHMUS_BELOW_TIP_MM, TYPICAL_ISTHMUS_BELOW_TIP_MM, Tube, find_tube

__all__ = ["find_pedicles", "FinderResult", "FoundPedicle", "FINDER_ROI_MM", "LABELS",
           "MAX_HEIGHT_MISMATCH_MM", "MAX_ROLL_DEG", "bilaterally_consistent", "lattice_centre",
           "roll_about_posterior", "spine_frame_matrix"]

#: Canonical crop (x, y, z mm) around the C2 centre: the isthmi lie 12-20 mm either side of
#: the midline, up to ~12 mm in front of and behind the centroid and within ~10 mm of its level.
FINDER_ROI_MM = (80, 72, 56)
LABELS = {"left": 1, "right": 2}
SIDES = ("left", "right")


@dataclass
class FoundPedicle:
    """One side's pedicle as the finder sees it (LPS mm)."""

    side: str
    isthmus_center_lps_mm: tuple
    axis_lps: tuple                   # unit, posterior -> anterior
    clearance_mm: float               # radius of the widest straight corridor at the isthmus
    mask_voxels_1mm: int
    evidence: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"isthmus_center_lps_mm": [round(float(v), 2) for v in self.isthmus_center_lps_mm],
                "axis_lps": [round(float(v), 4) for v in self.axis_lps],
                "clearance_mm": round(float(self.clearance_mm), 2),
                "mask_voxels_1mm": int(self.mask_voxels_1mm), **self.evidence}


@dataclass
class FinderResult:
    labels: sitk.Image                                  # uint8 on the CT grid (1 left, 2 right)
    sides: Dict[str, Optional[FoundPedicle]]
    reasons: Dict[str, str]                             # why a side was not found
    levels: Optional[BoneLevels] = None
    evidence: dict = field(default_factory=dict)

    def found(self, side: str) -> bool:
        return self.sides.get(side) is not None


#: Smoothing (mm) before the inside-bone threshold: scanner noise (10-60 HU) on marrow that
#: reads only a little above the threshold would punch holes into it.
SMOOTH_SIGMA_MM = 0.8


def solid_bone(hu: np.ndarray, levels: BoneLevels) -> np.ndarray:
    """Inside-bone mask: above the scan's inside-bone level after light smoothing, with the
    marrow that cortex encloses filled (1 mm canonical array ``[S, P, L]``).

    Marrow enclosed in 3D is filled outright. Marrow whose cancellous bone reads below the
    inside-bone level and that leaks out through a gap in thin cortex is filled where an axial
    or sagittal section encloses it and it reads like marrow, not like the canal's CSF or the
    foramen's blood (median above :attr:`BoneLevels.soft_max_hu`).
    """
    smooth = ndimage.gaussian_filter(hu.astype(np.float32), SMOOTH_SIGMA_MM)
    solid = ndimage.binary_fill_holes(smooth >= levels.solid_hu)
    for axis in (0, 2):                       # axial and sagittal sections
        for i in range(solid.shape[axis]):
            sec = np.take(solid, i, axis=axis)
            holes = ndimage.binary_fill_holes(sec) & ~sec
            if not holes.any():
                continue
            lab, n = ndimage.label(holes)
            med = np.asarray(ndimage.median(np.take(smooth, i, axis=axis), lab,
                                            np.arange(1, n + 1)))
            fill = np.isin(lab, 1 + np.nonzero(med > levels.soft_max_hu)[0])
            if fill.any():
                idx = [slice(None)] * 3
                idx[axis] = i
                solid[tuple(idx)] |= fill
    return solid


def spine_frame_matrix(spine_frame: Optional[dict]) -> np.ndarray:
    """3x3 rotation whose columns are the vertebra's left, posterior and superior directions
    (LPS), from the localiser's ``evidence["spine_frame"]`` (``axis_lps``: up the spine,
    ``anterior_lps``); the identity without one."""
    if not spine_frame:
        return np.eye(3)
    try:
        up = np.asarray(spine_frame["axis_lps"], float)
        ant = np.asarray(spine_frame["anterior_lps"], float)
    except (KeyError, TypeError, ValueError):
        return np.eye(3)
    if up.shape != (3,) or ant.shape != (3,) or np.linalg.norm(up) < 1e-6:
        return np.eye(3)
    z = up / np.linalg.norm(up)
    y = -(ant - (ant @ z) * z)
    if np.linalg.norm(y) < 1e-3:
        return np.eye(3)
    y /= np.linalg.norm(y)
    x = np.cross(y, z)
    r = np.stack([x, y, z], axis=1)
    if r[0, 0] < 0 or r[2, 2] < 0:      # never a frame that flips left/right or up/down
        return np.eye(3)
    return r


def roll_about_posterior(rot: np.ndarray, roll_deg: float) -> np.ndarray:
    """``rot`` (columns left, posterior, superior) turned by ``roll_deg`` about its posterior
    axis, the sense in which :func:`c2net.pedicle_finder.symmetry.mirror_roll_deg` measures a
    crop of ``rot``: the crop of the result is then the symmetric one."""
    t = np.radians(roll_deg)
    c, s = np.cos(t), np.sin(t)
    return rot @ np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])


def vertebra_crop(ct: sitk.Image, centre: np.ndarray,
                  spine_frame: Optional[dict]) -> Tuple[sitk.Image, float]:
    """(1 mm crop around ``centre``, roll applied in degrees): in the localiser's frame
    (:func:`spine_frame_matrix`) rolled about its posterior axis until the crop around C2 is
    most nearly left-right symmetric (:func:`c2net.pedicle_finder.symmetry.mirror_roll_deg`),
    when that takes more than :data:`~c2net.pedicle_finder.symmetry.MIN_ROLL_CORRECTION_DEG`."""
    rot = spine_frame_matrix(spine_frame)
    roi = spine_crop(ct, centre, rot)
    roll, _ = mirror_roll_deg(sitk.GetArrayViewFromImage(roi))
    if abs(roll) <= MIN_ROLL_CORRECTION_DEG:
        return roi, 0.0
    return spine_crop(ct, centre, roll_about_posterior(rot, roll)), float(roll)


def lattice_centre(ct: sitk.Image, centre: np.ndarray, rot: np.ndarray,
                   size_mm: Sequence[float] = FINDER_ROI_MM) -> np.ndarray:
    """``centre`` moved by at most 0.5 mm along each column of ``rot`` so that the 1 mm crop's
    sample points lie on a fixed 1 mm lattice of the scan in that frame, the one half a
    millimetre off the scan's origin ``o`` along each axis:
    ``c' = o + R (round(R^T (c - o) - h - 1/2) + 1/2 + h)``, ``h = (size - 1) / 2``.

    Every centre in one 1 mm cell then gives one and the same crop, and centres in neighbouring
    cells give crops of the same lattice points shifted by whole samples. Without it the
    finder's answer depended on the sub-millimetre phase of the localiser's centre, which
    resampled every voxel of the crop differently (a 0.1 mm shift of the centre moved VHF
    left's measured MPD by 0.24 mm, session 5).

    Why half a millimetre off: on a 1 mm scan with a whole-mm origin (the Visible Humans) the
    lattice through the origin samples the voxels themselves, unsmoothed, unlike the
    interpolated crop of any other phase the finder's levels were set on; there VHF right's
    corridor search tipped (by a 4 HU shift of the solid-bone level between crop windows) to
    the body's posterolateral corner, 9 mm from the reader, in 1 of 3 windows. Half a voxel
    off, each sample is the mean of its 8 neighbours on such a scan: the same mild smoothing
    for every centre. Session 6: VHF right within 3.8 mm of the reader in all 8 windows tried,
    the pose-free phantom (LPS / RAI / ASL grids) within 1.7 mm of the truth on every side."""
    o = np.asarray(ct.GetOrigin(), float)
    half = (np.asarray(size_mm, dtype=int) - 1) / 2.0
    first = rot.T @ (np.asarray(centre, float) - o) - half     # the crop's first sample
    return o + rot @ (np.round(first - 0.5) + 0.5 + half)


def spine_crop(ct: sitk.Image, centre: np.ndarray, rot: np.ndarray,
               size_mm: Sequence[float] = FINDER_ROI_MM) -> sitk.Image:
    """A 1 mm crop of ``ct`` around ``centre`` on a grid aligned with the vertebra's frame
    (columns of ``rot``: left, posterior, superior); arrays are ``[S, P, L]`` in that frame.

    The crop is snapped onto the scan's 1 mm lattice (:func:`lattice_centre`), and so is the
    canonical box a rotated crop is resampled from: the crop's centre is ``centre`` to within
    0.5 mm per axis and does not change for a sub-millimetre shift of ``centre`` inside a cell."""
    centre = lattice_centre(ct, centre, rot, size_mm)
    if np.allclose(rot, np.eye(3)):
        return canonical_crop(ct, centre, size_mm)
    size = np.asarray(size_mm, dtype=int)
    half = (size - 1) / 2.0
    ref = sitk.Image([int(v) for v in size], sitk.sitkFloat32)
    ref.SetSpacing([1.0, 1.0, 1.0])
    ref.SetDirection(rot.ravel().tolist())
    ref.SetOrigin((centre - rot @ half).tolist())
    # the same anti-aliased canonical crop, over the rotated box's bounding box, resampled
    corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)]) * (size - 1)
    pts = corners @ rot.T + np.asarray(ref.GetOrigin())
    lo, hi = pts.min(axis=0) - 2.0, pts.max(axis=0) + 2.0
    box_mm = np.ceil(hi - lo) + 1.0
    box = canonical_crop(ct, lattice_centre(ct, 0.5 * (lo + hi), np.eye(3), box_mm), box_mm)
    return sitk.Resample(box, ref, sitk.Transform(), sitk.sitkLinear, AIR_HU, sitk.sitkFloat32)


def find_pedicles(ct: sitk.Image, c2_center_lps_mm: Sequence[float],
                  spine_frame: Optional[dict] = None,
                  grid: Optional[sitk.Image] = None,
                  dens_tip_lps_mm: Optional[Sequence[float]] = None) -> FinderResult:
    """Find both C2 pedicles of ``ct`` around the C2 centre (LPS mm); never raises for anatomy.

    ``grid``: where the labels go, a part of ``ct``'s grid (:func:`c2net.geometry.sub_grid`);
    ``ct``'s whole grid by default.

    ``spine_frame``: the localiser's ``evidence["spine_frame"]`` (``axis_lps`` up the spine,
    ``anterior_lps``): the search then runs in the vertebra's own frame, so a flexed, tilted or
    turned neck is searched like an upright one. ``dens_tip_lps_mm``: the localiser's dens
    tip, when it saw one: the canal that C1's ring closes around the dens is then not taken for
    C2's when the centre lies a few mm too high. A side that cannot be found is ``None`` in
    ``sides`` with its reason in ``reasons``.
    """
    centre = np.asarray(c2_center_lps_mm, dtype=float).reshape(3)
    target = ct if grid is None else grid
    roi, roll = vertebra_crop(ct, centre, spine_frame)
    hu = sitk.GetArrayFromImage(roi)
    sides: Dict[str, Optional[FoundPedicle]] = {s: None for s in SIDES}
    if float(np.mean(hu <= AIR_HU + 1)) > 0.5:
        return FinderResult(_empty(target), sides, {s: "the C2 region lies mostly outside the scan"
                                           for s in SIDES})
    levels = bone_levels(hu)
    if not np.isfinite(levels.solid_hu):
        return FinderResult(_empty(target), sides, {s: "no bone in the C2 region" for s in SIDES}, levels)
    solid = solid_bone(hu, levels)
    # the C2 centre is the crop centre; (row, col) of the expected canal
    expected = (np.asarray(hu.shape[1:], float) - 1.0) / 2.0
    tip_slice = None if dens_tip_lps_mm is None else float(
        roi.TransformPhysicalPointToContinuousIndex([float(v) for v in dens_tip_lps_mm])[2])
    canal = find_canal(solid, expected, (hu.shape[0] - 1) / 2.0, hu, levels.soft_max_hu,
                       tip_slice)
    evidence = {"bone_levels_hu": levels.to_dict(), "canal_slices": int(canal.slices.size),
                "roll_deg": round(roll, 1)}
    if not canal.found:
        return FinderResult(_empty(target), sides, {s: "no closed spinal canal found at C2" for s in SIDES},
                            levels, evidence)
    clear = ndimage.distance_transform_edt(solid).astype(np.float32)
    canal_dist = ndimage.distance_transform_edt(~canal.mask).astype(np.float32)
    k_lo, k_hi = max(int(canal.slices.min()) - 2, 0), min(int(canal.slices.max()) + 3, hu.shape[0])
    labels = np.zeros(hu.shape, np.uint8)
    reasons: Dict[str, str] = {}
    tubes: Dict[str, Tube] = {}
    foramina = {side: find_foramen(solid, canal, side, np.arange(k_lo, k_hi)) for side in SIDES}

    def search(side: str, slices=None, near=None) -> Optional[Tube]:
        return find_tube(solid, clear, canal, foramina[side], canal_dist, side, tip_slice, slices,
                         near)

    for side in SIDES:
        tube = search(side)
        if tube is None or not tube.mask.any():
            reasons[side] = "no corridor of bone between the canal and the foramen"
            if tip_slice is not None and canal.slices.min() - 2 > tip_slice - MIN_ISTHMUS_BELOW_TIP_MM:
                reasons[side] += (f" lower than {MIN_ISTHMUS_BELOW_TIP_MM:g} mm below the dens tip "
                                  "(higher up lie C1's lateral masses)")
            continue
        tubes[side] = tube
    if len(tubes) == 2:
        tubes, evidence["bilateral"] = bilaterally_consistent(tubes, search, tip_slice,
                                                              canal.per_slice())
    for side, tube in tubes.items():
        labels[tube.mask & (labels == 0)] = LABELS[side]
        sides[side] = _found(roi, tube)
    lab_img = sitk.GetImageFromArray(labels)
    lab_img.CopyInformation(roi)
    out = to_input_grid(lab_img, target, "nearest")
    return FinderResult(sitk.Cast(out, sitk.sitkUInt8), sides, reasons, levels, evidence)


#: C2's two pedicles are mirror images: their isthmi lie at the same height within 2.1 mm on
#: the project's phantoms and 1.4 mm on the three shared real scans, in the vertebra's frame.
#: The finder's frame may still be rolled by up to 10 degrees (:mod:`.symmetry` corrects only
#: more), which puts isthmi 30 mm apart up to 5.3 mm higher and lower. Answers further apart
#: in height than this (mm) are not both C2's pedicles: one is another structure (a lateral
#: mass, the body's rim, C3) and is searched again nearer the other side's height.
MAX_HEIGHT_MISMATCH_MM = 8.0


def bilaterally_consistent(tubes: Dict[str, Tube], search, tip_slice: Optional[float],
                           canal_geo: np.ndarray) -> tuple:
    """``(tubes, note)``: both sides' corridors; when their isthmi differ in height (the crop's
    slice axis) by more than :data:`MAX_HEIGHT_MISMATCH_MM`, the side whose isthmus lies further
    from where C2's isthmi lie (:data:`TYPICAL_ISTHMUS_BELOW_TIP_MM` below the dens tip,
    ``tip_slice``) is searched again within that distance of the other side's mirror image
    across the canal's centre (``canal_geo``: :meth:`Canal.per_slice`; the pedicles are mirror
    images), on the slices within that height of it (``search(side, (lo, hi), (point,
    radius))`` returns a Tube or None), and replaced by what is found there. Without the dens
    tip nothing tells which side is wrong, and both are kept (as they are when nothing is
    found)."""
    def height(t):
        return float(t.isthmus_kji[0])

    gap = abs(height(tubes["left"]) - height(tubes["right"]))
    note = {"height_gap_mm": round(gap, 1)}
    if gap <= MAX_HEIGHT_MISMATCH_MM:
        return tubes, note
    note["replaced"] = None
    if tip_slice is None:
        return tubes, note
    expected = tip_slice - TYPICAL_ISTHMUS_BELOW_TIP_MM
    side = max(SIDES, key=lambda sd: abs(height(tubes[sd]) - expected))
    other = tubes["right" if side == "left" else "left"].isthmus_kji
    h = float(other[0])
    k = int(np.clip(np.rint(h), 0, len(canal_geo) - 1))
    mirror = (h, float(other[1]), 2.0 * float(canal_geo[k, 1]) - float(other[2]))
    t = search(side, (h - MAX_HEIGHT_MISMATCH_MM, h + MAX_HEIGHT_MISMATCH_MM),
               (mirror, MAX_HEIGHT_MISMATCH_MM))
    if t is None or not t.mask.any() or abs(height(t) - h) > MAX_HEIGHT_MISMATCH_MM:
        return tubes, note
    out = dict(tubes)
    out[side] = t
    note.update(replaced=side, new_height_gap_mm=round(abs(height(out["left"]) - height(out["right"])), 1))
    return out, note


def _found(roi: sitk.Image, tube: Tube) -> FoundPedicle:
    q = tube.isthmus_kji[::-1]                     # (i, j, k) = (x, y, z) on the 1 mm crop
    p = np.asarray(roi.TransformContinuousIndexToPhysicalPoint([float(v) for v in q]))
    # 1 mm grid: an index-space direction maps to LPS through the crop's direction matrix
    axis = np.asarray(roi.GetDirection(), float).reshape(3, 3) @ tube.axis_kji[::-1]
    axis /= np.linalg.norm(axis)
    return FoundPedicle(side=tube.side, isthmus_center_lps_mm=tuple(float(v) for v in p),
                        axis_lps=tuple(float(v) for v in axis), clearance_mm=tube.clearance_mm,
                        mask_voxels_1mm=int(tube.mask.sum()),
                        evidence={"medial_deg": tube.medial_deg, "cranial_deg": tube.cranial_deg,
                                  **tube.evidence})


def _empty(ct: sitk.Image) -> sitk.Image:
    out = sitk.Image(ct.GetSize(), sitk.sitkUInt8)
    out.CopyInformation(ct)
    return out
