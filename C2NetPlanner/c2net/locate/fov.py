"""Field-of-view checks: is C2 completely inside the scanned volume?

A refusal must name the true reason. "Not in the field of view" is said only when the scan
demonstrably does not hold all of C2: the canal runs into the scan's top or bottom where C2
should be, the dens column is cut by the top, the scan ends above the C2/C3 disc, or bone at
C2's level touches a face of the image. Distances are measured along the spine axis (the scan's
edges are planes of the image grid, which a tilted spine crosses obliquely), and the faces are
those of the input image itself, so a rotated or oblique grid is judged by its own extent.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..errors import LocalisationError
from ..geometry import index_to_lps_matrix
from .crop import Crop
from .dens import BONE_HU_1MM, DensRun

#: How far (mm) the dens column may go on above its last isolated slice: where the tip
#: touches the C1 arch or the skull base in the image (thick slices, a narrow joint space, an
#: inclined neck), the upper dens is no island, but the bone of the column is still there. The
#: odontoid process stands 14-18 mm above the atlanto-axial joints (adult morphometry), and
#: only its base may read as an island: up to 16 mm is still one dens.
MAX_TIP_EXTENSION_MM = 16.0
#: A canal that reaches to within this distance (mm) of the scan's top runs out of the scan.
CANAL_AT_EDGE_MM = 12.0
#: Bone (HU) at C2's level that may not touch a face of the image.
FACE_BONE_HU = 300.0
#: Half-height (mm) of C2's level for the face check, around its centroid.
FACE_LEVEL_MM = 12.0


def distance_to_edge(image: sitk.Image, point: np.ndarray, direction: np.ndarray) -> float:
    """Distance (mm) from ``point`` along ``direction`` (LPS) to where the line leaves the
    image's voxel grid (negative when ``point`` is outside)."""
    m = index_to_lps_matrix(image)
    inv = np.linalg.inv(m)
    i0 = inv @ (np.asarray(point, float) - np.asarray(image.GetOrigin(), float))
    di = inv @ (np.asarray(direction, float) / np.linalg.norm(direction))
    lo, hi = -0.5, np.asarray(image.GetSize(), float) - 0.5
    t_exit = np.inf
    for a in range(3):
        if abs(di[a]) < 1e-12:
            if not lo <= i0[a] <= hi[a]:
                return -1.0
            continue
        t_exit = min(t_exit, max((lo - i0[a]) / di[a], (hi[a] - i0[a]) / di[a]))
    return float(t_exit)


def no_dens_error(image: sitk.Image, track_pts: np.ndarray, up: np.ndarray,
                  length_mm: float) -> LocalisationError:
    """The refusal when a canal was followed but no dens found: which part of the scan the
    canal occupies says whether C2 can be in it."""
    top, bottom = track_pts[np.argmax(track_pts @ up)], track_pts[np.argmin(track_pts @ up)]
    above = distance_to_edge(image, top, up)
    below = distance_to_edge(image, bottom, -up)
    seen = (f"the spinal canal was followed for {length_mm:.0f} mm, from z {bottom[2]:.0f} to "
            f"z {top[2]:.0f} mm LPS")
    if above < CANAL_AT_EDGE_MM:
        return LocalisationError(
            f"C2 is not fully in the field of view: {seen}, and it runs into the top of the "
            "scan with no dens inside a C1 ring below it, so the dens of C2 is cut off or above "
            "the scan.", "Use a scan that reaches the skull base (C1 and the whole dens), or "
            "give a vertebra label map.", code="c2_partly_in_fov")
    if below < CANAL_AT_EDGE_MM and length_mm < 45.0 and above > 40.0:
        return LocalisationError(
            f"C2 is not in the field of view: {seen} at the bottom of a scan that goes on "
            f"{above:.0f} mm above it; no dens was found, so the scan ends at the skull base / "
            "C1 level.", "Use a scan that covers the upper neck down to C3.",
            code="c2_not_in_fov")
    return LocalisationError(
        f"C2 was not found: {seen}, with {above:.0f} mm of scan above it and {below:.0f} mm "
        "below, but no dens inside a C1 ring was recognised along it.",
        "Give a seed point on C2 (--seed X Y Z, or one click in Slicer), or a vertebra label "
        "map.", code="c2_not_found")


def column_range(crop: Crop, run: DensRun) -> tuple[int, int]:
    """(lowest, highest) crop slice inside the scan along the dens column of ``run``."""
    p, lat = np.round(_run_centre(run)).astype(int)
    p = int(np.clip(p, 0, crop.hu.shape[1] - 1))
    lat = int(np.clip(lat, 0, crop.hu.shape[2] - 1))
    valid_k = np.nonzero(crop.valid[:, p, lat])[0]
    if len(valid_k) == 0:
        valid_k = np.nonzero(crop.valid.any(axis=(1, 2)))[0]
    return int(valid_k[0]), int(valid_k[-1])


def _run_centre(run: DensRun) -> np.ndarray:
    upper = run.slices[-min(len(run.slices), 3):]
    return np.mean([c.centre_pl for c in upper], axis=0)


def dens_disc_bone(crop: Crop, run: DensRun, k: int) -> float:
    """Fraction of bone (1 mm threshold) on slice ``k`` within a disc of the dens's width
    around the centre of the run's top slices (voxels outside the scan count as bone: a cut)."""
    p, lat = _run_centre(run)
    radius = max(1.5, 0.5 * float(np.median([c.width_mm for c in run.slices])) / crop.spacing_mm)
    pp, ll = np.ogrid[:crop.hu.shape[1], :crop.hu.shape[2]]
    disc = (pp - p) ** 2 + (ll - lat) ** 2 <= radius ** 2
    if not disc.any() or not 0 <= k < crop.hu.shape[0]:
        return 1.0
    return float(np.mean((crop.hu[k][disc] > BONE_HU_1MM) | ~crop.valid[k][disc]))


def dens_cut_at_top(crop: Crop, run: DensRun, k_top: int) -> bool:
    """Whether the dens column still fills the scan's top slice (its tip is cut off).

    A dens that ends a millimetre or two below the top leaves at most a sliver of bone there;
    a cut one shows a cross-section: bone over at least a quarter of a disc of the dens's
    width around its centre."""
    return dens_disc_bone(crop, run, k_top) >= 0.25


def column_top(crop: Crop, run: DensRun, k_top: int) -> int:
    """The last slice, at or above the run's top, whose dens disc is still mostly bone (a single
    slice below half bone between bone slices does not end the column).

    Raises ``c2_not_found`` when bone goes on further than ``MAX_TIP_EXTENSION_MM`` inside
    the scan: the run is then part of a longer column (a vertebral body below a dens that the
    scan cuts off, or the skull base), not a dens ending in a tip."""
    reach = run.k_hi + int(round(MAX_TIP_EXTENSION_MM / crop.spacing_mm))
    k_end = run.k_hi
    for k in range(run.k_hi + 1, min(k_top, reach + 1) + 1):
        if dens_disc_bone(crop, run, k) < 0.5:
            if k + 1 > min(k_top, reach + 1) or dens_disc_bone(crop, run, k + 1) < 0.5:
                return k_end
            continue     # one slice (noise, a cartilage line) does not end the column
        k_end = k
    if k_end > reach:
        z = crop.index_to_lps(np.array([run.k_hi, *_run_centre(run)]))[2]
        raise LocalisationError(
            "C2 was not found: the best dens candidate (a bone island in front of the canal up "
            f"to z {z:.0f} mm LPS) is part of a bone column that goes on upwards for more than "
            f"{MAX_TIP_EXTENSION_MM:.0f} mm with no dens tip.",
            "Give a seed point on C2 (--seed X Y Z, or one click in Slicer), or check that the "
            "scan covers C1 and the whole dens.", code="c2_not_found")
    return k_end


def check_cut_column_above(crop: Crop, run: DensRun, runs: list[DensRun]) -> None:
    """Refuse when the chosen run does not end like a dens tip and a dens-like column above it
    runs into the scan's top cut.

    The dens is C2's highest part: above its tip there is soft tissue. When the scan ends inside
    the dens, bone left below the cut can still hold a dens-like run lower down (the back of a
    body whose cancellous core is faint), but bone goes on above that run, and the truncated
    column above it is the real dens: C2 is not complete."""
    sp = crop.spacing_mm
    k_top = column_range(crop, run)[1]
    above = [k for k in range(run.k_hi + int(round(2 / sp)), run.k_hi + int(round(4 / sp)) + 1)
             if k <= k_top]
    if above and np.mean([dens_disc_bone(crop, run, k) for k in above]) < 0.2:
        return  # the column ends: a tip
    for other in runs:
        if other is run or other.k_lo <= run.k_hi or len(other.slices) < 3:
            continue
        other_top = column_range(crop, other)[1]
        if other.k_hi >= other_top - 1 and dens_cut_at_top(crop, other, other_top):
            raise LocalisationError(
                "C2 is not fully in the field of view: a bone column in front of the canal "
                "(the dens) runs into the top of the scan.",
                "Use a scan that covers the whole dens and C1.", code="c2_partly_in_fov")


def check_c2_inside_image(image: sitk.Image, centre: np.ndarray, rotation: np.ndarray,
                          half_width: float, anterior: float, posterior: float) -> None:
    """Refuse (``c2_partly_in_fov``) when bone at C2's level touches a face of the image.

    C2's level is ``FACE_LEVEL_MM`` either side of its centroid along the spine axis, within
    ``half_width`` sideways and ``anterior``..``posterior`` front to back (spine frame,
    ``rotation`` columns L, P, S). Each face of the input grid is read as it is (no
    resampling), so an oblique or rotated grid is judged by its own edges."""
    arr = sitk.GetArrayViewFromImage(image)
    m = index_to_lps_matrix(image)
    origin = np.asarray(image.GetOrigin(), float)
    nk, nj, ni = arr.shape
    faces = ((arr[0], lambda a, b: (b, a, 0)), (arr[-1], lambda a, b: (b, a, nk - 1)),
             (arr[:, 0, :], lambda a, b: (b, 0, a)), (arr[:, -1, :], lambda a, b: (b, nj - 1, a)),
             (arr[:, :, 0], lambda a, b: (0, b, a)), (arr[:, :, -1], lambda a, b: (ni - 1, b, a)))
    for face, to_ijk in faces:
        rows, cols = np.nonzero(np.asarray(face) > FACE_BONE_HU)
        if len(rows) == 0:
            continue
        ijk = np.stack([np.broadcast_to(np.asarray(v, float), rows.shape)
                        for v in to_ijk(rows, cols)], axis=1)
        u = (ijk @ m.T + origin - centre) @ rotation
        inside = ((np.abs(u[:, 0]) <= half_width) & (u[:, 1] >= -anterior)
                  & (u[:, 1] <= posterior) & (np.abs(u[:, 2]) <= FACE_LEVEL_MM))
        if np.any(inside):
            raise LocalisationError(
                "C2 is not fully in the field of view: bone at the level of C2 touches the edge "
                f"of the scan ({int(inside.sum())} bone voxels on a face of the image within "
                "C2's extent).", "Use a scan or reconstruction whose field of view holds the "
                "whole of C2 (the whole neck in-plane, C1 to C3 along it).",
                code="c2_partly_in_fov")


#: Wrong-level guard: above a dens tip lies soft tissue (the apical ligament), then at most the
#: basion or C1's arch, a few mm (up to ~10 mm) of bone in the dens's column. A column that
#: resumes within ``BODY_ABOVE_GAP_MM`` above the tip and stays bone for ``BODY_ABOVE_MM`` - the
#: height of the smallest adult cervical body (12-16 mm; C2's body and dens 35-45 mm) - or up
#: to the scan's top edge (a cut body, of unknown height) is a vertebral body above a disc: the
#: run is a lower level's body (C3 under C2). The disc cannot be told from the dens touching
#: the basion by its density: on blurred scans both read 200-450 HU in the column.
BODY_ABOVE_GAP_MM = 8.0
BODY_ABOVE_MM = 12.0
#: A body's cancellous core reads partly below the 1 mm bone threshold: up to
#: ``CORE_DIP_MM`` of slices whose dens disc is still at least ``CORE_DIP_BONE`` bone does not
#: end a body's stretch (a disc or a joint is soft across the whole column, 0-0.2 bone).
CORE_DIP_MM = 2.0
CORE_DIP_BONE = 0.25


def body_above(crop: Crop, run: DensRun, k_end: int) -> float:
    """Length (mm) of the longest stretch of mostly-bone dens-column slices that starts within
    ``BODY_ABOVE_GAP_MM`` above the column's top ``k_end`` (0 when none; dips of cancellous
    core up to ``CORE_DIP_MM`` go on); a stretch that runs into the scan's top counts as
    ``BODY_ABOVE_MM`` at least."""
    sp = crop.spacing_mm
    k_top = column_range(crop, run)[1]
    dip = max(1, int(round(CORE_DIP_MM / sp)))
    best = 0.0
    k = k_end + 2
    while k <= min(k_top, k_end + int(round(BODY_ABOVE_GAP_MM / sp))):
        if dens_disc_bone(crop, run, k) >= 0.5:
            j = k
            while j + 1 <= k_top:
                if dens_disc_bone(crop, run, j + 1) >= 0.5:
                    j += 1
                    continue
                # a short dip of cancellous core with bone again above it goes on
                ahead = [dens_disc_bone(crop, run, i)
                         for i in range(j + 1, min(k_top, j + 1 + dip) + 1)]
                resume = next((n for n, v in enumerate(ahead) if v >= 0.5), None)
                if resume is None or resume > dip or min(ahead[:resume]) < CORE_DIP_BONE:
                    break
                j += resume + 1
            length = (j - k + 1) * sp
            best = max(best, max(length, BODY_ABOVE_MM) if j >= k_top else length)
            k = j + 1
        else:
            k += 1
    return best


#: Wrong-level guard: just in front of the dens tip lie the atlanto-dental joint and C1's
#: anterior arch, a bar ~10 mm tall around the dens's upper part; C2's bone does not go on
#: upwards there. Seen at ``FRONT_OFFSETS_MM`` in front of the run's centre (past a dens's
#: 4-5 mm half-depth: the joint and the arch), a column of bone that starts within
#: ``BODY_ABOVE_GAP_MM`` above the candidate's tip and runs on for ``BODY_ABOVE_MM`` (a body's
#: height) at both offsets is the dens or a body in front of and above the candidate: the
#: candidate is the posterior wall of a body (C2's own body below its dens, C3's), not a dens
#: (CThead turned 20 degrees: 18 mm of bone, answered 20 mm low; on the real variants and
#: phantoms at C2: at most 6 and 4 mm).
FRONT_OFFSETS_MM = (6.0, 8.0)
FRONT_DISC_RADIUS_MM = 3.0


def bone_in_front_above(crop: Crop, run: DensRun, k_end: int) -> float:
    """Length (mm) of bone going on upwards just in front of the run's tip: the shorter, over
    ``FRONT_OFFSETS_MM``, of the longest mostly-bone stretch (a disc of
    ``FRONT_DISC_RADIUS_MM``; voxels outside the scan are not bone) starting within
    ``BODY_ABOVE_GAP_MM`` above ``k_end``."""
    sp = crop.spacing_mm
    p, lat = _run_centre(run)
    k_top = column_range(crop, run)[1]
    pp, ll = np.ogrid[:crop.hu.shape[1], :crop.hu.shape[2]]
    r = FRONT_DISC_RADIUS_MM / sp
    lengths = []
    for off in FRONT_OFFSETS_MM:
        disc = (pp - (p - off / sp)) ** 2 + (ll - lat) ** 2 <= r ** 2
        if not disc.any():
            return 0.0
        bone = [float(np.mean((crop.hu[k][disc] > BONE_HU_1MM) & crop.valid[k][disc])) >= 0.5
                for k in range(k_end + 1, k_top + 1)]
        best, i = 0, 0
        while i < len(bone):
            if bone[i]:
                j = i
                while j + 1 < len(bone) and bone[j + 1]:
                    j += 1
                if i * sp <= BODY_ABOVE_GAP_MM:
                    best = max(best, j - i + 1)
                i = j + 1
            else:
                i += 1
        lengths.append(best * sp)
    return float(min(lengths))
