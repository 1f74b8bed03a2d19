"""The localiser's decision: read the cues in the spine's frame, answer C2 or refuse truly.

Method (automatic):

1. Refuse scans whose in-plane voxels exceed 1.5 mm (:mod:`c2net.locate.volume`).
2. Average the scan to a 2 mm canonical grid and follow the spinal canal as the longest
   coherent chain of soft-tissue holes enclosed by bone (:mod:`c2net.locate.canal`), cut
   above the canal proper: skull-base pockets the chain runs on through, off the canal's
   line, are no canal (:func:`canal_proper`).
3. Estimate the spine's own frame at C1-C3 (:mod:`c2net.locate.frame`): its axis from the
   upper canal, its front from the bilateral symmetry of the bone around the canal. A flexed,
   extended, tilted or turned neck then reads as an upright one.
4. Resample a 1 mm crop in that frame around the upper canal from the input and look, slice by
   slice along the spine, for the dens: a small round bone island in front of the canal
   (:mod:`c2net.locate.dens`) with the C1 anterior arch in front of it and the lateral masses
   beside it (:mod:`c2net.locate.ring`). The best-scoring upright run is the dens; a run
   scoring below ``MIN_DENS_SCORE`` is no evidence of one. Only when no reading finds a dens
   island are the readings made again with the dens cut out of a C1-sized ring it is joined
   to in the image (joint spaces closed by partial volume; a higher bone threshold, a
   warning and ``FUSED_CONFIDENCE_PENALTY`` off the confidence).
5. The tip: the top of the bone column above the run, plus 1.5 mm (the upper dens touching the
   C1 arch or the skull base is no island); a column going on > 10 mm is no tip
   (:mod:`c2net.locate.fov`).
6. Walk down the anterior column to the C2/C3 disc (:mod:`c2net.locate.disc`). C2's centroid
   lies about 27 mm below the tip along the spine and 11.5 mm behind the dens axis (adult
   morphometry; stepped along the canal's axis when the slices read are tilted from it by
   more than ``STEP_ALONG_SPINE_MIN_DEG``, the bound of the scanner's slices being read first); it is re-centred sideways on the bone of a slab
   at that level.
7. Wrong-level guard: an answer must show the C1 ring around the dens (arch or lateral masses
   on at least ``MIN_RING_SLICES`` slices) and, when the disc is seen, a C2 height in the adult
   range; otherwise the island may be C3's body or C1 bone and the localiser refuses
   (``c2_not_found``) instead of answering another level; a vertebral body above the
   candidate after a disc (:func:`c2net.locate.fov.body_above`) makes it a lower level. Two
   more checks refuse when the level is ambiguous: a second dens-like run a level above or
   below the answer's, separated from it by soft tissue, scoring comparably and passing the
   dens cues itself (:func:`check_one_level`: the basion, C1 or C3 against the dens), and
   readings in different frames (spine frame, scanner slices turned
   to the spine, scanner axes) whose dens tips lie more than ``READINGS_AGREE_MM`` apart
   (:func:`agreed_answer`). The scanner's axes are read only for a spine within
   ``AXIAL_READ_MAX_TILT_DEG`` of them.
8. Refuse when C2 is cut by the field of view (:mod:`c2net.locate.fov`); refuse thick slices
   (> 3 mm) once C2 is found.

Overrides beat the automatic search (:mod:`c2net.locate.overrides`): a vertebra label map or a
seed point on C2 (the automatic search is then confined around the seed, and the seed itself
is used if that fails).

Research use only - not a medical device.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..errors import LocalisationError
from ..geometry import physical_bounds
from ..progress import ProgressCallback, null_progress
from .canal import CanalTrack, body_midline, canal_like, track_canal
from .crop import Crop, make_frame_crop
from .dens import DensRun, dens_runs, run_slope, slice_cues
from .disc import (
    BODY_MIN_HU,
    MAX_DISC_MM,
    SOFT_STRETCH_MM,
    SOLID_TO_MM,
    body_below,
    c2_height,
    column_profile,
    disc_soft_mm,
    soft_stretch_mm,
)
from .fov import (
    BODY_ABOVE_MM,
    body_above,
    bone_in_front_above,
    check_c2_inside_image,
    check_cut_column_above,
    column_range,
    column_top,
    dens_cut_at_top,
    no_dens_error,
)
from .frame import SpineFrame, canal_line, canal_top_index, estimate_frame, rotation_from
from .overrides import MaskInput, check_seed, from_mask
from .result import ROI_MARGIN_MM, C2Location
from .ring import ring_slices
from .volume import (
    MAX_INPLANE_SPACING_MM,
    MAX_SLICE_SPACING_MM,
    acquisition_spacing,
    check_resolution,
    make_work_volume,
)

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
#: Shortest canal (mm) that counts as a cervical spine.
MIN_CANAL_MM = 20.0
#: Least score of a dens run (:class:`c2net.locate.dens.SliceCue`: 1 per island slice, more
#: with the C1 arch in front or lateral masses beside): a few isolated slices without C1
#: around them are no evidence of a dens.
MIN_DENS_SCORE = 5.0
#: Wrong-level guard: slices of the dens run that must show the C1 ring (arch or a mass).
MIN_RING_SLICES = 2
#: Wrong-level guard: the bone-enclosed canal ends above at the C1 ring or in the foramen
#: magnum (10-20 mm above the dens tip; the track may run ~10 mm into it), and the dens base
#: lies 14-18 mm below the tip: at most ~50 mm below the canal's top. C3's body starts >= 40 mm
#: below the dens tip (C2 is 35-45 mm tall), i.e. >= 55 mm below the top: a run starting
#: further down than this is a lower level.
DENS_BELOW_CANAL_TOP_MM = 50.0
#: The dens is a midline structure: its island centres lie on the canal's mid-sagittal line
#: (within a few mm of asymmetry); C1's lateral masses and C2's facets lie 15-25 mm aside.
MAX_DENS_OFF_MIDLINE_MM = 7.0
#: How much of the canal (mm below its top) the spine-frame crop covers.
CROP_CANAL_MM = 150.0


# ----------------------------------------------------------------------------- entry point
def locate_c2(image: sitk.Image, seed_lps_mm=None, vertebra_mask: MaskInput | None = None,
              c2_label: int | None = None, progress: ProgressCallback | None = None
              ) -> C2Location:
    """Find C2 in ``image`` (a CT in HU, any orientation and head pose) or raise why not.

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
        loc = from_mask(image, vertebra_mask, c2_label)
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
def spine_track(image: sitk.Image, progress: ProgressCallback = null_progress,
                near: np.ndarray | None = None) -> tuple[CanalTrack, np.ndarray, SpineFrame, float]:
    """The canal followed (the track, its LPS points upwards, on the 2 mm grid) and the spine's
    frame estimated from it; the track's length (mm). Raises ``c2_not_in_fov`` when no
    cervical canal is found."""
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
    track = track_canal(mask, wv.spacing_mm, body_midline(wv.hu))
    if track is None or track.length_mm * wv.spacing_mm < MIN_CANAL_MM:
        scan_lo, scan_hi = physical_bounds(image)
        raise LocalisationError(
            "C2 is not in the field of view: no cervical spinal canal was found "
            f"(the scan covers z {scan_lo[2]:.0f} to {scan_hi[2]:.0f} mm LPS).",
            "Use a scan that covers the upper neck (C1 to C3), or give a seed point on C2.",
            code="c2_not_in_fov")
    track_pts = wv.index_to_lps(np.stack([track.k, track.p, track.lr], axis=1))
    track, track_pts = canal_proper(track, track_pts, wv.spacing_mm)
    progress("locate", 0.45, "estimating the spine's own frame")
    frame = estimate_frame(wv.hu, wv.lps_to_index, wv.spacing_mm, track_pts, track.observed,
                           track.area_mm2)
    if frame.tilt_deg > RETRACK_TILT_DEG:
        # a tilted canal is cut obliquely by axial slices, where the C1 ring need not enclose
        # it: follow it again on slices perpendicular to the spine
        retracked = _retrack(image, frame, track_pts, wv.spacing_mm)
        if retracked is not None:
            retracked = canal_proper(*retracked, wv.spacing_mm)
        up = frame.rotation[:, 2]
        # kept when it follows the canal further up (where axial slices lost it)
        if retracked is not None and (retracked[1] @ up).max() > (track_pts @ up).max() + 4.0:
            track, track_pts = retracked
            frame = estimate_frame(wv.hu, wv.lps_to_index, wv.spacing_mm, track_pts,
                                   track.observed, track.area_mm2)
    return track, track_pts, frame, track.length_mm * wv.spacing_mm


def canal_proper(track: CanalTrack, track_pts: np.ndarray, spacing_mm: float
                 ) -> tuple[CanalTrack, np.ndarray]:
    """The track (and its LPS points, upwards) cut above the canal proper's top
    (:func:`c2net.locate.frame.canal_top_index`): skull-base pockets chained on above it are
    no canal."""
    axis, point = canal_line(track_pts, track.observed, track.area_mm2, spacing_mm)
    n = canal_top_index(track_pts, track.observed, track.area_mm2, axis, point) + 1
    if n >= len(track.k):
        return track, track_pts
    cut = CanalTrack(k=track.k[:n], p=track.p[:n], lr=track.lr[:n], front_p=track.front_p[:n],
                     area_mm2=track.area_mm2[:n], observed=track.observed[:n])
    return cut, track_pts[:n]


def _automatic(image: sitk.Image, progress: ProgressCallback, near: np.ndarray | None = None
               ) -> C2Location:
    track, track_pts, frame, length_mm = spine_track(image, progress, near)
    progress("locate", 0.55, "looking for the dens inside the C1 ring")
    evidence = {
        "canal": {"length_mm": round(length_mm, 1),
                  "observed_fraction": round(float(track.observed.mean()), 3),
                  "top_lps_mm": [round(float(v), 1) for v in track_pts[-1]],
                  "bottom_lps_mm": [round(float(v), 1) for v in track_pts[0]]},
    }
    frames = _readings(frame)
    first_error = None
    # a dens joined to C1 in the image (no island at the usual thresholds) is looked for only
    # when no reading found a dens island: the usual cues stay first wherever they work
    for fused in (False, True):
        answers, ambiguous, error = _read_all(image, frames, frame, track_pts, length_mm,
                                              evidence, progress, fused)
        first_error = first_error or error
        if answers or ambiguous is not None:
            break
    # a reading that saw two candidates a level apart vetoes the others' single one: it may be
    # the other level (the frames differ only in how the same bone is sliced)
    if ambiguous is not None:
        raise ambiguous
    if not answers:
        raise first_error
    return agreed_answer(answers, frame)


def _read_all(image: sitk.Image, frames: list[SpineFrame], frame: SpineFrame,
              track_pts: np.ndarray, length_mm: float, evidence: dict,
              progress: ProgressCallback, fused: bool):
    """Every reading's answer (frame, location), the first level ambiguity met and the first
    refusal met (see :func:`_automatic`)."""
    first_error = None
    ambiguous = None
    answers: list[tuple[SpineFrame, C2Location]] = []
    for used in frames:
        crop, candidates, runs = _dens_search(image, used, track_pts, fused)
        seen = dict(evidence)
        seen["spine_frame"] = used.evidence()
        seen["dens_joined_to_c1"] = fused
        seen["dens_candidates"] = len(candidates)
        seen["dens_candidates_rejected"] = len(
            [r for r in candidates if r.score >= MIN_DENS_SCORE]) - len(runs)
        if not runs:
            first_error = first_error or no_dens_error(image, track_pts, frame.rotation[:, 2],
                                                       length_mm)
            continue
        runs = _highest_first(runs, crop.spacing_mm)
        try:
            check_cut_column_above(crop, runs[0], candidates)
        except LocalisationError:
            if not answers:
                raise
            continue
        # best first; a run that fails as a dens (no tip above it, no C1 ring) is another
        # structure, and the next may be the dens. A cut C2 is cut in any frame: that refusal
        # stands; "not found" may be the frame's fault, so the scanner's axes are read next.
        not_dens: list[DensRun] = []

        def is_dens(other: DensRun, crop=crop, used=used, runs=runs, not_dens=not_dens) -> bool:
            # a rival is a candidate only if it passes the dens cues itself (C2's bone under
            # its tip, a tip, the C1 ring, a disc with C3 under it); one cut by the scan's
            # edge may still be the dens
            if any(other is r for r in not_dens):
                return False
            try:
                _c2_from_dens(image, crop, used, other, runs, {}, null_progress,
                              frame.rotation[:, 2])
            except LocalisationError as exc:
                return exc.code != "c2_not_found"
            return True

        for run in runs:
            try:
                loc = _c2_from_dens(image, crop, used, run, runs, seen, progress,
                                    frame.rotation[:, 2])
            except LocalisationError as exc:
                if exc.code != "c2_not_found" and not answers:
                    raise        # C2 cut by the scan's edge: cut in any frame
                first_error = first_error or exc
                if exc.code != "c2_not_found":
                    break        # a later, less suitable reading ran into an edge: no answer
                not_dens.append(run)
                continue
            try:
                check_one_level(crop, run, runs, loc, is_dens)
            except LocalisationError as exc:
                ambiguous = ambiguous or exc
                break
            if fused:
                # an island cut out of the C1 ring at a high threshold is weaker evidence
                loc.confidence = float(max(0.0, loc.confidence - FUSED_CONFIDENCE_PENALTY))
                loc.warnings.append("the dens is joined to C1 in the image; it was separated "
                                    "at a high bone threshold - check the region")
            answers.append((used, loc))
            break
    return answers, ambiguous, first_error


#: Confidence taken off an answer whose dens was cut out of the C1 ring it is joined to.
FUSED_CONFIDENCE_PENALTY = 0.1


#: Wrong-level guard, one reading: another dens-like run (one that passed every test but
#: the ranking) whose slices are separated from the answer's by more than this gap (mm) is a
#: second candidate one level away: the basion or C1 above the dens, or C2 below a skull-base
#: island. C1, C2 and C3 (and the basion) lie ~20 mm apart; two runs of one dens are split
#: only by the 1-5 mm where it touches the C1 arch or a cartilage line at its base.
OTHER_LEVEL_GAP_MM = 8.0
#: ... and no further than this (mm): beyond it the other run lies outside C1-C3.
OTHER_LEVEL_REACH_MM = 45.0
#: Wrong-level guard, across readings: dens tips read in different frames (the spine's own,
#: the scanner's slices turned to its front, the scanner's axes) that answer must agree along
#: the spine within this distance (mm) - half the ~20 mm spacing of the levels that can pass
#: for a dens (the tip's place across the spine is re-read from the bone anyway).
READINGS_AGREE_MM = 10.0


def check_one_level(crop: Crop, run: DensRun, runs: list[DensRun], loc: C2Location,
                    is_dens=None) -> None:
    """Refuse (``c2_not_found``) when another dens-like run lies a level above or below the
    answer's run, separated from it by soft tissue: two candidates one level apart that the
    dens cues cannot tell apart, and the rule is to refuse rather than answer C1 or C3 as C2.
    A rival *above* the answer that fails the dens cues itself (``is_dens``: C2's bone under
    its tip, a tip, the C1 ring, a disc with C3's body under it) is skull-base or C1 bone, no
    dens. A rival *below* always refuses: the answer may be the basion or C1 above a dens
    whose cues are weakened (the localiser's wrong answers on real scans were all of that
    kind, 20-50 mm above C2). Two runs joined by a
    continuous bone column (:func:`bone_gap_mm`) are one dens: its upper part touches the C1
    arch, or a cartilage line crosses its base."""
    sp = crop.spacing_mm
    for other in runs:
        if other is run:
            continue
        gap = max(other.k_lo - run.k_hi, run.k_lo - other.k_hi) * sp
        if not OTHER_LEVEL_GAP_MM < gap <= OTHER_LEVEL_REACH_MM:
            continue
        if other.score < COMPARABLE_SCORE * run.score:
            continue    # the dens cues tell them apart
        lower, upper = (run, other) if other.k_lo > run.k_hi else (other, run)
        soft = bone_gap_mm(crop, lower, upper)
        if soft <= SOFT_GAP_MM:
            continue
        if other is upper and is_dens is not None and not is_dens(other):
            continue    # bone above the dens that fails as a dens: the basion, C1's arch
        where = "above" if other is upper else "below"
        tip = loc.dens_tip_lps_mm
        raise LocalisationError(
            f"C2 was not found: two dens-like bone islands in front of the canal, one "
            f"{gap:.0f} mm {where} the other with {soft:.0f} mm of soft tissue between them "
            f"(dens tip candidate at z {tip[2]:.0f} mm LPS, scores {run.score:.1f} and "
            f"{other.score:.1f}); one of them is another level (the skull base, C1 or C3), and "
            "the dens cues do not tell which.",
            "Give a seed point on C2 (--seed X Y Z, or one click in Slicer), or a vertebra "
            "label map.", code="c2_not_found")


#: Density (HU) below which the column between two runs is soft tissue (a joint space, the
#: basion-dens interval, a disc: 0-100 HU; cancellous bone with partial volume >= 200 HU) and
#: the longest such stretch (mm) that still joins them as one bone: one 1 mm sample (noise,
#: a thin cartilage line); the 4-6 mm basion-dens interval and a disc read >= 2 mm even through
#: the partial volume of 2 mm slices.
SOFT_HU = 150.0
SOFT_GAP_MM = 1.5
#: A candidate scoring below this fraction of the answer's score is no rival.
COMPARABLE_SCORE = 0.5


def bone_gap_mm(crop: Crop, lower: DensRun, upper: DensRun) -> float:
    """Longest stretch (mm) of soft tissue on the line from the top of ``lower`` to the bottom
    of ``upper`` (mean HU of a 2 mm-radius disc per slice, read through the partial volume of
    the two runs' centres)."""
    a = np.array([lower.k_hi, *lower.slices[-1].centre_pl], float)
    b = np.array([upper.k_lo, *upper.slices[0].centre_pl], float)
    n = int(max(2, round(b[0] - a[0]))) + 1
    r = max(1, int(round(2.0 / crop.spacing_mm)))
    longest = run_len = 0
    for t in np.linspace(0.0, 1.0, n):
        k, p, lat = np.round(a + t * (b - a)).astype(int)
        block = crop.hu[k, max(0, p - r):p + r + 1, max(0, lat - r):lat + r + 1]
        if block.size and float(block.mean()) < SOFT_HU:
            run_len += 1
            longest = max(longest, run_len)
        else:
            run_len = 0
    return longest * float(b[0] - a[0]) / max(n - 1, 1) * crop.spacing_mm


#: A reading whose dens run shows the C1 ring (:func:`ring_fullness`) by this much more
#: fully than every reading that puts the dens tip a level away from its own is the answer in
#: their place: the dens stands inside C1's ring (the anterior arch in front, a lateral mass
#: on each side), while the basion or the clivus above it and C2's body or C3 below it do not.
#: 0.25 is one of the ring's parts missing on every slice (a lateral mass; or the arch on
#: every other slice).
RING_OVERRULES = 0.25
#: Confidence taken off an answer that overruled another reading.
OVERRULED_CONFIDENCE_PENALTY = 0.1


def answer_ring(loc: C2Location) -> float:
    """:func:`ring_fullness` of the dens run an answer was read from (from its evidence)."""
    d = loc.evidence.get("dens") or {}
    return 0.5 * (float(d.get("c1_anterior_arch_fraction", 0.0))
                  + float(d.get("c1_lateral_masses_fraction", 0.0)))


def agreed_answer(answers: list[tuple[SpineFrame, C2Location]], frame: SpineFrame
                  ) -> C2Location:
    """The first (most suitable) reading's answer, if every other reading that answered found
    its dens tip within ``READINGS_AGREE_MM`` of it along the spine. When some put the tip a
    level away, the reading whose dens shows the C1 ring by ``RING_OVERRULES`` more fully than
    every one a level away from it answers (with a warning, and
    ``OVERRULED_CONFIDENCE_PENALTY`` off its confidence); otherwise refuse (``c2_not_found``)
    saying which readings disagreed by how much along the spine."""
    up = frame.rotation[:, 2]
    tips = [np.asarray(loc.dens_tip_lps_mm, float) for _, loc in answers]
    rings = [answer_ring(loc) for _, loc in answers]

    def apart(i: int) -> list[int]:
        return [j for j in range(len(answers))
                if abs(float((tips[j] - tips[i]) @ up)) > READINGS_AGREE_MM]

    chosen = 0
    if apart(0):
        fuller = [i for i in range(len(answers))
                  if apart(i) and all(rings[i] >= rings[j] + RING_OVERRULES for j in apart(i))]
        if not fuller:
            used, loc = answers[0]
            j = apart(0)[0]
            other, d = answers[j][0], tips[j] - tips[0]
            raise LocalisationError(
                f"C2 was not found: the dens tip read along the {used.source} (z {tips[0][2]:.0f}"
                f" mm LPS) and along the {other.source} (z {tips[j][2]:.0f} mm) are "
                f"{np.linalg.norm(d):.0f} mm apart ({float(d @ up):+.0f} mm along the spine), "
                f"and neither shows the C1 ring around its dens clearly more fully (ring "
                f"{rings[0]:.2f} and {rings[j]:.2f}): one of them is another level.",
                "Give a seed point on C2 (--seed X Y Z, or one click in Slicer), or a vertebra "
                "label map.", code="c2_not_found")
        chosen = fuller[0]
    used, loc = answers[chosen]
    overruled = apart(chosen)
    agree = [answers[i][0].source for i in range(len(answers)) if i not in overruled]
    agree.remove(used.source)
    agree.insert(0, used.source)
    loc.evidence["readings_agreeing"] = agree
    if overruled:
        names = [answers[i][0].source for i in overruled]
        loc.evidence["readings_overruled"] = names
        loc.confidence = float(max(0.0, loc.confidence - OVERRULED_CONFIDENCE_PENALTY))
        loc.warnings.append(
            f"the dens read along the {' and the '.join(names)} lay a level away; the answer "
            f"is the reading whose dens shows the C1 ring around it (ring {rings[chosen]:.2f} "
            f"against {max(rings[i] for i in overruled):.2f}) - check the region")
    elif len(agree) > 1:
        loc.confidence = float(min(1.0, loc.confidence + 0.05))
    return loc


#: A dens-like run starting within this distance (mm) above another's top is the same C2
#: further up: the dens is C2's highest part, so the lower run is its body or the dens base.
SAME_C2_ABOVE_MM = 20.0


def ring_fullness(run: DensRun) -> float:
    """How fully the C1 ring is seen around a run, 0..1: the mean over its slices of the
    anterior arch in front (0/1) and the lateral masses beside (0-2, halved), averaged."""
    return float(np.mean([0.5 * (c.arch_in_front + 0.5 * c.masses_beside) for c in run.slices]))


def _highest_first(runs: list[DensRun], spacing_mm: float) -> list[DensRun]:
    """Runs in the order they are tried: best score first, but a run with another accepted run
    starting less than ``SAME_C2_ABOVE_MM`` above its top yields to that higher run (the dens
    tip is the top of C2; a lower island is part of C2's body, or the dens base below a joint
    of thin cartilage) - if the higher run shows the C1 ring at least as fully
    (:func:`ring_fullness`). The upper dens lies inside C1's ring, behind its anterior arch and
    between its lateral masses, and the dens base below it shows the ring less; the basion,
    the clivus's lower end, lies above C1 and can touch the dens tip in the image (VHM turned
    30 degrees and resampled: its run above a dens with the full ring on every slice showed
    the ring on 40 % of its slices, and was answered 14 mm up)."""
    order = list(runs)
    out: list[DensRun] = []
    while order:
        run = order.pop(0)

        def higher(lower: DensRun) -> list[DensRun]:
            return [r for r in order if 0 < (r.k_lo - lower.k_hi) * spacing_mm <= SAME_C2_ABOVE_MM
                    and ring_fullness(r) >= ring_fullness(lower)]

        above = higher(run)
        while above:
            run = max(above, key=lambda r: r.k_lo)
            order.remove(run)
            above = higher(run)
        out.append(run)
    # what was passed over comes after, best first
    return out + [r for r in runs if r not in out]


#: Beyond this tilt (degrees) of the spine the canal is followed again in the spine's frame.
RETRACK_TILT_DEG = 8.0


def _retrack(image: sitk.Image, frame: SpineFrame, track_pts: np.ndarray, spacing_mm: float
             ) -> tuple[CanalTrack, np.ndarray] | None:
    """The canal followed on a coarse grid in the spine's frame around the first track (the
    track and its LPS points, upwards), or None when it is not found there."""
    rot = frame.rotation
    top = track_pts[np.argmax(track_pts @ rot[:, 2])]
    u = (track_pts - top) @ rot
    grid = make_frame_crop(image, top, rot, u.min(0) - [50.0, 50.0, 10.0],
                           u.max(0) + [50.0, 50.0, 40.0], spacing_mm, sitk.sitkLinear)
    mask = canal_like(grid.hu, spacing_mm) & grid.valid
    track = track_canal(mask, spacing_mm, body_midline(grid.hu))
    if track is None or track.length_mm * spacing_mm < MIN_CANAL_MM:
        return None
    return track, grid.index_to_lps(np.stack([track.k, track.p, track.lr], axis=1))


#: Up to this tilt (degrees) of the spine from the scanner's axis the cues are first read on
#: the scanner's own slices (turned in-plane to the spine's front): the dens run tolerates a
#: slope, and reading along the acquired slices does not interpolate across them, which blurs
#: the 1-3 mm joint spaces that make the dens an island on thick-slice scans.
AXIAL_READ_MAX_TILT_DEG = 15.0


def _readings(frame: SpineFrame) -> list[SpineFrame]:
    """The frames the cues are read in, most suitable first: the spine's own frame, the
    scanner's slices turned to the spine's front, the scanner's axes (only for a spine within
    ``AXIAL_READ_MAX_TILT_DEG`` of the scanner's axis). Every reading is made; those that answer
    must agree (:func:`agreed_answer`), and a later one stands in when the earlier find no dens
    (a frame estimate off by a few degrees, or slices too thick to be resampled obliquely)."""
    front = -frame.rotation[:, 1].copy()
    front[2] = 0.0
    axial = frame
    if np.linalg.norm(front) > 1e-6:
        rot = rotation_from(np.array([0.0, 0.0, 1.0]), -front)
        axial = SpineFrame(rotation=rot, tilt_deg=0.0, turn_deg=frame.turn_deg,
                           symmetry=frame.symmetry, source="scanner slices, turned")
    scanner = SpineFrame(rotation=np.eye(3), tilt_deg=0.0, turn_deg=0.0,
                         symmetry=frame.symmetry, source="scanner axes")
    # the scanner's axes stand in for a spine frame a few degrees off; with the spine tilted
    # beyond what a dens run tolerates they slice C1-C2 obliquely, where skull-base or C1
    # bone can pass for the dens
    order = [axial, frame, scanner] if frame.tilt_deg <= AXIAL_READ_MAX_TILT_DEG else [
        frame, axial]
    out: list[SpineFrame] = []
    for f in order:
        if all(np.degrees(np.arccos(np.clip(np.trace(f.rotation.T @ g.rotation) / 2 - 0.5,
                                            -1, 1))) > 3.0 for g in out):
            out.append(f)
    return out


def _dens_search(image: sitk.Image, frame: SpineFrame, track_pts: np.ndarray,
                 fused: bool = False) -> tuple[Crop, list[DensRun], list[DensRun]]:
    """A 1 mm crop in ``frame`` around the upper canal, every dens-like run found in it, and
    the runs that may be the dens (best first).

    The dens is C2's peg: a run scoring below ``MIN_DENS_SCORE``, one with no body under it
    (:func:`c2net.locate.disc.body_below`) or one starting above the canal's top (the C1 ring
    encloses the canal around the dens base) or more than ``DENS_BELOW_CANAL_TOP_MM`` below it
    (a lower level: C3's body between its pedicles), or one more than ``MAX_DENS_OFF_MIDLINE_MM``
    sideways of the canal's centre (a lateral mass, a facet) is not (skull-base or C1 bone, another level,
    or noise). With ``fused`` the islands are also cut out of a C1 ring they are joined to
    (:data:`c2net.locate.dens.FUSED_SEPARATIONS`)."""
    rot = frame.rotation
    top = track_pts[np.argmax(track_pts @ rot[:, 2])]
    u = (track_pts - top) @ rot
    u = u[u[:, 2] >= -CROP_CANAL_MM]
    lo = u.min(0) - np.array([45.0, 45.0, 10.0])
    hi = u.max(0) + np.array([45.0, 40.0, 60.0])  # the canal may be lost at C2: look above
    crop = make_frame_crop(image, top, rot, lo, hi)
    ci = crop.lps_to_index(top + u @ rot.T)
    ks = np.arange(crop.hu.shape[0], dtype=float)
    order = np.argsort(ci[:, 0])
    # above the track's top keep its last centre; below its bottom leave it unknown
    centre_p = np.interp(ks, ci[order, 0], ci[order, 1], left=np.nan)
    centre_l = np.interp(ks, ci[order, 0], ci[order, 2], left=np.nan)
    canal_top_k = float(ci[:, 0].max())
    lowest = canal_top_k - DENS_BELOW_CANAL_TOP_MM / crop.spacing_mm
    cues = slice_cues(crop.hu, centre_p, centre_l, crop.spacing_mm, fused=fused)
    candidates = dens_runs(cues)
    runs = _dens_like(crop, candidates, centre_l, lowest, canal_top_k)
    for r in runs:
        r.below_canal_top_mm = float((canal_top_k - r.k_lo) * crop.spacing_mm)
    return crop, candidates, runs


def _dens_like(crop: Crop, candidates: list[DensRun], centre_l: np.ndarray, lowest: float,
               canal_top_k: float) -> list[DensRun]:
    """The candidate runs that may be the dens (see :func:`_dens_search`)."""
    def off_midline(r: DensRun) -> float:
        ks_ = np.array([c.k for c in r.slices])
        lat = np.array([c.centre_pl[1] for c in r.slices])
        return float(np.nanmean(np.abs(lat - centre_l[ks_]))) * crop.spacing_mm

    return [r for r in candidates if r.score >= MIN_DENS_SCORE
            and lowest <= r.k_lo <= canal_top_k and off_midline(r) <= MAX_DENS_OFF_MIDLINE_MM
            and not body_below(crop, r) < BODY_MIN_HU]


def _run_axis(run: DensRun) -> np.ndarray:
    """Unit vector (crop [S, P, L] index space) along the dens, pointing up: the local spine
    axis, used to step from the tip down to the body."""
    k = np.array([c.k for c in run.slices], float)
    pl = np.array([c.centre_pl for c in run.slices], float)
    if len(k) < 4 or np.ptp(k) < 3:
        return np.array([1.0, 0.0, 0.0])
    sp, sl = robust_slope(k, pl[:, 0]), robust_slope(k, pl[:, 1])
    # half-way to the frame's axis: a short run's slope is noisy
    v = np.array([1.0, 0.5 * np.clip(sp, -0.4, 0.4), 0.5 * np.clip(sl, -0.3, 0.3)])
    return v / np.linalg.norm(v)


def robust_slope(k: np.ndarray, x: np.ndarray) -> float:
    """The median of the slopes between every two slices (Theil-Sen): a run's end slice often
    holds a sliver of the C1 arch or of the body joined to the island (its centre 3 mm off the
    rest; all five answers 5-9 mm from their native on the real variants had one), which turns
    a least-squares line of 4-8 slices by 0.2-0.4 mm/mm and the 27 mm step by 5-10 mm."""
    i, j = np.triu_indices(len(k), 1)
    dk = k[j] - k[i]
    ok = dk > 0
    return float(np.median((x[j] - x[i])[ok] / dk[ok])) if np.any(ok) else 0.0


def confidence(run: DensRun, runs: list[DensRun], disc_found: bool, frame: SpineFrame) -> float:
    """0..1 from the evidence seen: the dens run's length, the C1 arch in front and the lateral
    masses beside it, the C2/C3 disc at a C2 height, the margin over the runner-up and how
    clearly the spine's mirror plane was found."""
    arch = float(np.mean([c.arch_in_front for c in run.slices]))
    masses = float(np.mean([c.masses_beside for c in run.slices])) / 2.0
    n = len(run.slices)
    margin = run.score - (runs[1].score if len(runs) > 1 else 0.0)
    value = (0.3 + 0.2 * min(1.0, n / 10.0) + 0.15 * arch + 0.1 * masses + 0.1 * disc_found
             + 0.1 * min(1.0, margin / 10.0) + 0.05 * float(np.clip(frame.symmetry, 0.0, 1.0)))
    return float(np.clip(value, 0.0, 1.0))


#: When the slices a dens was read on are tilted from the spine axis (estimated from the
#: canal proper) by more than this (degrees), C2's centre is stepped down along the spine
#: axis, not along the dens run. The same bound as the scanner's slices being read first
#: (``AXIAL_READ_MAX_TILT_DEG``): within it the run on them is taken as the dens's own axis
#: (its slope measured, halved towards the slices), beyond it the canal's. The canal's line is
#: fitted over C2-C5 when the track holds no more (a lordotic neck: 10-12 degrees off C2's own
#: axis on CThead, whose native answer moved 2.5 mm with a 10 degree bound).
STEP_ALONG_SPINE_MIN_DEG = AXIAL_READ_MAX_TILT_DEG


def _c2_from_dens(image: sitk.Image, crop: Crop, frame: SpineFrame, run: DensRun,
                  runs: list[DensRun], evidence: dict, progress: ProgressCallback,
                  spine_up: np.ndarray | None = None) -> C2Location:
    sp = crop.spacing_mm
    k_bottom, k_top = column_range(crop, run)
    k_end = column_top(crop, run, k_top)
    if k_end >= k_top - 2 and dens_cut_at_top(crop, run, k_top):
        raise LocalisationError(
            "C2 is not fully in the field of view: the dens reaches the top of the scan "
            f"(bone column up to z {crop.index_to_lps(np.array([k_top, 0, 0]))[2]:.0f} mm LPS).",
            "Use a scan that covers the whole dens and C1.", code="c2_partly_in_fov")
    def not_the_dens(what: str, hint: str) -> LocalisationError:
        z = crop.index_to_lps(np.array([k_end, *run.slices[-1].centre_pl]))[2]
        return LocalisationError(
            f"C2 was not found: the best dens candidate (bone column up to z {z:.0f} mm LPS) "
            f"has {what}", "Give a seed point on C2 (--seed X Y Z, or one click in Slicer), "
            + hint, code="c2_not_found")

    above = body_above(crop, run, k_end)
    if above >= BODY_ABOVE_MM:
        raise not_the_dens(f"{above:.0f} mm of vertebral body above it after a gap: it is a "
                           "lower level, not the dens.",
                           "or check that the scan covers C1 and the whole dens.")
    front = bone_in_front_above(crop, run, k_end)
    if front >= BODY_ABOVE_MM:
        raise not_the_dens(f"{front:.0f} mm of bone going on upwards just in front of its tip, "
                           "where the dens has only its joint with C1's arch: it is the back of "
                           "a vertebral body, not the dens.", "or a vertebra label map.")
    upper = run.slices[-min(len(run.slices), 4):]
    tip_pl = np.mean([c.centre_pl for c in upper], axis=0)
    tip_idx = np.array([min(k_end + 1.5 / sp, k_top + 0.5), tip_pl[0], tip_pl[1]])
    tip = crop.index_to_lps(tip_idx)
    if ring_slices(run) < MIN_RING_SLICES:
        raise LocalisationError(
            f"C2 was not found: a dens-like bone island in front of the canal (top at z "
            f"{tip[2]:.0f} mm LPS) has no C1 ring around it (anterior arch or lateral masses on "
            f"{ring_slices(run)} of {len(run.slices)} slices), so it may be another level.",
            "Give a seed point on C2 (--seed X Y Z, or one click in Slicer), or a vertebra label "
            "map.", code="c2_not_found")
    axis = _run_axis(run)
    if spine_up is not None:
        # C2 lies below its dens along the spine, not along the slices it was read on: read
        # on the scanner's slices of a tilted spine, the run's slope is that of the spine
        # only in part (a short run, its slope halved), so the step down follows the spine
        # axis estimated from the canal, seen in the crop's [S, P, L] index space
        v = (crop.rotation.T @ np.asarray(spine_up, float))[::-1]
        v = v / np.linalg.norm(v)
        if np.degrees(np.arccos(np.clip(v[0], -1.0, 1.0))) > STEP_ALONG_SPINE_MIN_DEG:
            axis = v
    # posterior direction perpendicular to the axis
    post = np.array([0.0, 1.0, 0.0]) - axis[1] * axis
    post /= np.linalg.norm(post)
    progress("locate", 0.8, "measuring C2 below the dens")
    profile = column_profile(crop, tip_idx, axis, k_bottom)
    height_mm, disc_found, bottom_cut = c2_height(crop, tip_idx, axis, k_bottom, profile)
    soft = soft_stretch_mm(profile, sp)
    if soft > SOFT_STRETCH_MM:
        raise LocalisationError(
            f"C2 was not found: under the best dens candidate's tip (z {tip[2]:.0f} mm LPS) "
            f"the column has {soft:.0f} mm of soft tissue within {SOLID_TO_MM:.0f} mm, where "
            "C2's dens and body are bone: the candidate is skull-base or C1 bone, not the dens.",
            "Give a seed point on C2 (--seed X Y Z, or one click in Slicer), or a vertebra label "
            "map.", code="c2_not_found")
    below_disc = disc_soft_mm(profile, height_mm, sp) if disc_found else 0.0
    if below_disc > MAX_DISC_MM:
        raise LocalisationError(
            f"C2 was not found: under the best dens candidate's tip (z {tip[2]:.0f} mm LPS) the "
            f"column falls to soft tissue {height_mm:.0f} mm down and stays soft for "
            f"{below_disc:.0f} mm - no C2/C3 disc with C3's body under it: the candidate is "
            "skull-base or C1 bone, not the dens.",
            "Give a seed point on C2 (--seed X Y Z, or one click in Slicer), or a vertebra label "
            "map.", code="c2_not_found")
    if bottom_cut:
        raise LocalisationError(
            "C2 is not fully in the field of view: the scan ends inside the body of C2 "
            f"(dens tip at z {tip[2]:.0f} mm LPS, no C2/C3 disc above the scan's lower edge).",
            "Use a scan that extends below C2 (to C3), or give a vertebra label map.",
            code="c2_partly_in_fov")
    centre_idx = tip_idx - axis * (CENTROID_BELOW_TIP_MM / sp) + post * (CENTROID_BEHIND_TIP_MM / sp)
    centre_idx = _bone_recentre(crop, centre_idx)
    centre = crop.index_to_lps(centre_idx)
    up_lps, back_lps = crop.vector_to_lps(axis), crop.vector_to_lps(post)
    lo, hi = _roi(centre, up_lps, back_lps)
    check_c2_inside_image(image, centre, crop.rotation, C2_HALF_WIDTH_MM, C2_ANTERIOR_MM,
                          C2_POSTERIOR_MM)
    arch = float(np.mean([c.arch_in_front for c in run.slices]))
    masses = float(np.mean([c.masses_beside for c in run.slices])) / 2.0
    n = len(run.slices)
    margin = run.score - (runs[1].score if len(runs) > 1 else 0.0)
    evidence.update({
        "dens": {"slices": n, "length_mm": round(run.length * sp, 1),
                 "score": round(run.score, 2), "slope": round(run_slope(run), 3),
                 "c1_anterior_arch_fraction": round(arch, 3),
                 "c1_lateral_masses_fraction": round(masses, 3),
                 "c1_ring_slices": ring_slices(run),
                 "below_canal_top_mm": round(run.below_canal_top_mm, 1),
                 "width_mm": round(float(np.median([c.width_mm for c in run.slices])), 1),
                 "runner_up_score": round(runs[1].score, 2) if len(runs) > 1 else None},
        "c2_height_mm": round(height_mm, 1) if height_mm else None,
        "c2_c3_disc_found": bool(disc_found),
        "spine_axis_lps": [round(float(v), 3) for v in up_lps],
    })
    warnings = []
    if not disc_found:
        warnings.append("the C2/C3 disc was not recognised; C2's lower end is estimated")
    if len(runs) > 1 and margin < 3.0:
        warnings.append("another dens-like structure scored almost as high; check the region")
    return C2Location(center_lps_mm=tuple(centre), dens_tip_lps_mm=tuple(tip),
                      roi_min_lps_mm=tuple(lo), roi_max_lps_mm=tuple(hi),
                      confidence=confidence(run, runs, disc_found, frame), method="automatic",
                      evidence=evidence, warnings=warnings)


#: Half-height (mm) of the slab whose bone re-centres C2 sideways; at the body level,
#: 27 mm below the dens tip, the slab holds C2 alone (C1 lies above, the C2/C3 disc ~10 mm below).
RECENTRE_SLAB_MM = 5.0
RECENTRE_HALF_WIDTH_MM = 30.0


def _bone_recentre(crop: Crop, centre_idx: np.ndarray) -> np.ndarray:
    """Move the estimate sideways onto the centroid of the bone in a slab at its level (C2 is
    nearly symmetric; the dens axis extrapolated 27 mm down is not precise sideways)."""
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


def _roi(centre: np.ndarray, up: np.ndarray, back: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned LPS box around the C2 box in the spine frame (LPS ``up`` and ``back``
    directions), plus the margin."""
    side = np.cross(back, up)
    corners = []
    for a in (-C2_HALF_WIDTH_MM, C2_HALF_WIDTH_MM):
        for b in (-C2_ANTERIOR_MM, C2_POSTERIOR_MM):
            for c in (-C2_INFERIOR_MM, C2_SUPERIOR_MM):
                corners.append(centre + a * side + b * back + c * up)
    corners = np.asarray(corners)
    return corners.min(0) - ROI_MARGIN_MM, corners.max(0) + ROI_MARGIN_MM
