"""The training-free anatomical C2 pedicle finder (c2net.pedicle_finder) and how the pipeline
uses it (fallback per side, check of the U-Net masks).

Research use only - not a medical device.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from c2net.errors import SegmentationError
from c2net.geometry import index_to_lps
from c2net.pedicle_finder import find_pedicles
from c2net.pedicle_finder.check import AGREE, CHECK, NOT_CHECKED, compare_measurements
from c2net.pedicle_finder.levels import bone_levels
from c2net.results import PedicleMeasurement


def _distance_to_label(labels: sitk.Image, value: int, point) -> float:
    kji = np.argwhere(sitk.GetArrayViewFromImage(labels) == value)
    pts = index_to_lps(labels, kji[:, ::-1].astype(float))
    return float(np.min(np.linalg.norm(pts - np.asarray(point), axis=1)))


def _posed(ph, r: np.ndarray, centre: np.ndarray):
    """The phantom's voxels (CT and labels) re-posed by the rotation ``r`` about ``centre``:
    the same voxels with a rotated direction matrix."""
    posed = sitk.Image(ph.ct)
    d = np.asarray(ph.ct.GetDirection(), float).reshape(3, 3)
    posed.SetDirection((r @ d).ravel().tolist())
    posed.SetOrigin((centre + r @ (np.asarray(ph.ct.GetOrigin()) - centre)).tolist())
    labels = sitk.Image(ph.labels)
    labels.CopyInformation(posed)
    return posed, labels


@pytest.fixture(scope="module")
def found(small_phantom):
    return find_pedicles(small_phantom.ct, small_phantom.truth["c2_center_lps_mm"])


# ----------------------------------------------------------------------------- bone levels
@pytest.mark.parametrize("cortex", [700.0, 1500.0])
def test_bone_levels_follow_the_scan(cortex):
    """Blurred real cortex (~700 HU) and phantom cortex (~1500 HU): the levels are read from
    the scan (the inside-bone level scales with the cortex), not fixed thresholds."""
    rng = np.random.default_rng(0)
    vals = np.concatenate([rng.normal(40, 15, 60000),      # soft tissue
                           rng.normal(320, 40, 8000),      # cancellous bone
                           rng.normal(cortex, 60, 3000)])  # cortex
    lv = bone_levels(vals)
    assert 25 <= lv.soft_hu <= 55
    assert 0.8 * cortex <= lv.cortex_hu <= 1.2 * cortex
    assert lv.soft_hu + 80 < lv.solid_hu < 0.5 * lv.cortex_hu
    assert lv.soft_hu < lv.soft_max_hu < lv.solid_hu


def test_marrow_inside_a_cortical_shell_is_inside_bone():
    """Marrow darker than the inside-bone level still counts as bone when cortex encloses it."""
    from c2net.pedicle_finder import solid_bone
    from c2net.pedicle_finder.levels import BoneLevels

    z, y, x = np.mgrid[:30, :30, :30]
    r = np.sqrt((z - 15) ** 2 + (y - 15) ** 2 + (x - 15) ** 2)
    hu = np.where(r < 10, 1500.0, 40.0)
    hu[r < 8] = 250.0
    solid = solid_bone(hu, BoneLevels(40.0, 1500.0, 400.0))
    assert solid[r < 8].all() and not solid[r > 11].any()


def test_no_bone_no_pedicle_and_no_exception():
    img = sitk.Image([100, 90, 70], sitk.sitkFloat32) + 40.0
    img.SetSpacing([1.0, 1.0, 1.0])
    r = find_pedicles(img, img.TransformContinuousIndexToPhysicalPoint([50, 45, 35]))
    assert r.sides == {"left": None, "right": None}
    assert set(r.reasons) == {"left", "right"} and "no bone" in r.reasons["left"]
    outside = find_pedicles(img, (500.0, 0.0, 0.0))
    assert "outside" in outside.reasons["right"]
    assert r.labels.GetSize() == img.GetSize() and r.labels.GetOrigin() == img.GetOrigin()
    assert not sitk.GetArrayViewFromImage(r.labels).any()


# ----------------------------------------------------------------------------- on a phantom
def test_finder_isthmus_on_the_right_pedicle(small_phantom, found):
    """The isthmus point lies on (within 1.5 mm of) the true pedicle of its own side, far from
    the other side's; label 1 (left) lies at +x of label 2 (right)."""
    ph = small_phantom
    for side, value, other in (("left", 2, 3), ("right", 3, 2)):
        f = found.sides[side]
        assert f is not None, found.reasons
        assert _distance_to_label(ph.labels, value, f.isthmus_center_lps_mm) <= 1.5
        assert _distance_to_label(ph.labels, other, f.isthmus_center_lps_mm) > 10.0
        axis = np.asarray(f.axis_lps)
        assert axis[1] < -0.5 and axis[2] > 0.0             # anterior and rising
        assert np.sign(axis[0]) == (-1 if side == "left" else 1)   # converging medially
    arr = sitk.GetArrayFromImage(found.labels)
    assert arr.shape == sitk.GetArrayViewFromImage(ph.ct).shape
    xs = {v: index_to_lps(found.labels, np.argwhere(arr == v)[:, ::-1].astype(float))[:, 0].mean()
          for v in (1, 2)}
    assert xs[1] > xs[2] + 15.0


def test_finder_isthmus_is_the_waist_not_the_end_of_a_corridor_in_the_body():
    """The isthmus is where the pedicle narrows between the pillar and the body. A straight
    corridor lying in the body alone has more clearance than one across a narrow isthmus; the
    finder used to pick it and put the isthmus at its end, 5 mm (median) from the true one on
    phantoms of ordinary anatomy. It must lie within 3 mm of the true isthmus centre."""
    from c2net.phantom import make_phantom

    errors = []
    for seed in (5001, 5002, 5003, 5011):
        ph = make_phantom(seed=seed, spacing_mm=0.8, fov="c1_c4")
        r = find_pedicles(ph.ct, ph.truth["c2_center_lps_mm"])
        for side in ("left", "right"):
            assert r.sides[side] is not None, (seed, side, r.reasons)
            errors.append(float(np.linalg.norm(np.subtract(
                r.sides[side].isthmus_center_lps_mm,
                ph.truth["sides"][side]["isthmus_center_lps_mm"]))))
    assert sum(e <= 3.0 for e in errors) >= 7, np.round(errors, 1)


def test_finder_is_pose_free(small_phantom, found):
    """The same anatomy stored as RAI and as a permuted ASL grid gives the same isthmi (the
    finder works on a canonical LPS crop) and never swaps the sides."""
    from c2net.phantom import make_phantom

    for code in ("RAI", "ASL"):
        ph = make_phantom(seed=7, spacing_mm=0.8, mpd_left_mm=6.0, mpd_right_mm=3.5,
                          direction=code, fov="c1_c4")
        r = find_pedicles(ph.ct, ph.truth["c2_center_lps_mm"])
        for side in ("left", "right"):
            assert r.sides[side] is not None, (code, r.reasons)
            d = np.linalg.norm(np.subtract(r.sides[side].isthmus_center_lps_mm,
                                           found.sides[side].isthmus_center_lps_mm))
            assert d <= 2.0, (code, side, d)


def _cell_centre(ct: sitk.Image, c: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """The middle of the 1 mm cell (in ``rot``'s frame) that holds ``c``, for the lattice of
    cells whose 80 x 72 x 56 mm crops sample half a millimetre off ``ct``'s origin (computed
    here from the definition, not with the finder's own helper)."""
    o = np.asarray(ct.GetOrigin(), float)
    half = (np.array([80, 72, 56]) - 1) / 2.0
    return o + rot @ (np.round(rot.T @ (np.asarray(c, float) - o) - half - 0.5) + 0.5 + half)


@pytest.mark.parametrize("framed", [False, True])
def test_finder_is_invariant_to_a_sub_voxel_shift_of_the_centre(small_phantom, framed):
    """The finder's crop is snapped onto the scan's 1 mm lattice, so centres less than half a
    millimetre apart in one lattice cell give the same answer exactly (before, every crop voxel
    was resampled differently and a 0.1 mm shift of the located centre moved a real side's MPD
    by 0.24 mm). With and without the localiser's spine frame (a tilted frame's crop is
    resampled from a canonical box, which is snapped too)."""
    ph = small_phantom
    frame = None
    rot = np.eye(3)
    if framed:
        up = np.asarray(ph.truth["c2_frame_lps"]["superior"], float)
        ant = np.array([0.0, -np.cos(0.2), np.sin(0.2)])            # 11 deg off the phantom's
        up = up - (up @ ant) * ant
        frame = {"axis_lps": (up / np.linalg.norm(up)).tolist(), "anterior_lps": ant.tolist()}
        from c2net.pedicle_finder import spine_frame_matrix
        rot = spine_frame_matrix(frame)
    cell = _cell_centre(ph.ct, np.asarray(ph.truth["c2_center_lps_mm"], float), rot)
    answers = []
    for shift in ((0.0, 0.0, 0.0), (0.3, -0.2, 0.35), (-0.4, 0.3, -0.1)):
        r = find_pedicles(ph.ct, cell + rot @ np.asarray(shift), frame)
        assert r.found("left") and r.found("right"), r.reasons
        answers.append([r.sides[s].isthmus_center_lps_mm + r.sides[s].axis_lps
                        + (r.sides[s].clearance_mm, r.sides[s].mask_voxels_1mm)
                        for s in ("left", "right")])
    for other in answers[1:]:
        np.testing.assert_allclose(other, answers[0], atol=1e-9)


def test_finder_never_takes_c1_lateral_masses_for_c2_pedicles(small_phantom):
    """With the C2 centre read 12 mm too high (towards C1) but the dens tip known, no isthmus
    is answered at C1's level: C1's lateral masses lie between C1's ring and its foramen
    transversarium like a pedicle, but 8-15 mm below the dens tip, where C2's isthmi never
    are (24-33 mm). Before the rule the finder answered 25-30 mm from C2's isthmi here."""
    ph = small_phantom
    up = np.asarray(ph.truth["c2_frame_lps"]["superior"])
    frame = {"axis_lps": up.tolist(),
             "anterior_lps": (-np.asarray(ph.truth["c2_frame_lps"]["posterior"])).tolist()}
    high = np.asarray(ph.truth["c2_center_lps_mm"]) + 12.0 * up
    res = find_pedicles(ph.ct, high, frame, dens_tip_lps_mm=ph.truth["dens_tip_lps_mm"])
    for side in ("left", "right"):
        f = res.sides[side]
        if f is None:
            assert "below the dens tip" in res.reasons[side]
        else:
            true = np.asarray(ph.truth["sides"][side]["isthmus_center_lps_mm"])
            assert np.linalg.norm(np.asarray(f.isthmus_center_lps_mm) - true) <= 5.0


def test_no_isthmus_constriction_above_the_dens_tip_floor():
    """The dens-tip floor (no isthmus higher than 20 mm below the tip) bounds the isthmus
    itself, not only the centre of the corridor segment that finds it: a cranially tilted
    segment reaches a few mm above its centre's slice, and its constriction used to be answered
    up to 1.8 mm above the floor (phantoms 5001, 5002: the floor put 1 mm below the true
    isthmus). Every answered isthmus lies at most half a 1 mm slice above the floor."""
    from c2net.pedicle_finder.tube import MIN_ISTHMUS_BELOW_TIP_MM
    from c2net.phantom import make_phantom

    above = []
    for seed in (5001, 5002):
        ph = make_phantom(seed=seed, spacing_mm=0.8, fov="c1_c4")
        up = np.asarray(ph.truth["c2_frame_lps"]["superior"])
        frame = {"axis_lps": up.tolist(),
                 "anterior_lps": (-np.asarray(ph.truth["c2_frame_lps"]["posterior"])).tolist()}
        for side in ("left", "right"):
            iso = np.asarray(ph.truth["sides"][side]["isthmus_center_lps_mm"])
            tip = iso + (MIN_ISTHMUS_BELOW_TIP_MM - 1.0) * up     # floor 1 mm below the isthmus
            f = find_pedicles(ph.ct, ph.truth["c2_center_lps_mm"], frame,
                              dens_tip_lps_mm=tip).sides[side]
            if f is not None:
                above.append(float(np.dot(np.asarray(f.isthmus_center_lps_mm) - tip, up))
                             + MIN_ISTHMUS_BELOW_TIP_MM)
    assert above and max(above) <= 0.5 + 1e-6, np.round(above, 2)


def test_finder_far_from_c2_finds_no_canal(small_phantom):
    """Given a point in the soft tissue beside the neck, there is no C2 ring to find."""
    c = np.asarray(small_phantom.truth["c2_center_lps_mm"]) + (0.0, -45.0, 0.0)
    r = find_pedicles(small_phantom.ct, c)
    assert not r.found("left") and not r.found("right")


# ----------------------------------------------------------------------------- the check
def _m(centre, mpd):
    return PedicleMeasurement(
        side="left", mpd_mm=mpd, mpd_direction_lps=(1, 0, 0),
        mpd_endpoints_lps_mm=((0, 0, 0), (mpd, 0, 0)), inner_width_mm=max(mpd - 2, 0),
        outer_height_mm=8.0, inner_height_mm=5.0, isthmus_center_lps_mm=tuple(centre),
        axis_lps=(0, -1, 0), medial_angle_deg=25.0, cranial_angle_deg=20.0,
        mpd_uncertainty_mm=0.3)


def test_check_agree_and_disagree():
    a = _m((10, 20, 30), 6.0)
    assert compare_measurements(a, _m((11, 21, 31), 6.3)).status == AGREE
    far = compare_measurements(a, _m((10, 20, 33.5), 6.0))
    assert far.status == CHECK and far.flagged and "apart" in far.reason
    assert far.isthmus_distance_mm == pytest.approx(3.5)
    wide = compare_measurements(a, _m((10, 20, 30), 6.6))
    assert wide.status == CHECK and wide.mpd_difference_mm == pytest.approx(0.6)
    assert compare_measurements(a, None, "no canal").status == CHECK
    assert compare_measurements(None, None).status == NOT_CHECKED
    d = far.to_dict()
    assert d["status"] == CHECK and d["max_isthmus_distance_mm"] == 3.0


# ----------------------------------------------------------------------------- in the pipeline
def test_finder_stands_in_when_the_unet_finds_nothing(small_phantom, monkeypatch):
    from c2net import segment

    def no_pedicle(*a, **k):
        raise SegmentationError("the network found no plausible C2 pedicle on either side", "")

    monkeypatch.setattr(segment, "segment_pedicles", no_pedicle)
    out = segment.segment_pedicles_checked(small_phantom.ct,
                                           small_phantom.truth["c2_center_lps_mm"])
    assert out.segmenter == {"left": segment.FINDER, "right": segment.FINDER}
    arr = sitk.GetArrayFromImage(out.labels)
    assert (arr == 1).sum() > 100 and (arr == 2).sum() > 100
    assert any("anatomical finder" in n for n in out.notes)


def test_a_mask_that_cannot_be_measured_gives_way_to_the_finder_s_corridor(small_phantom,
                                                                           monkeypatch):
    """A side whose mask cannot be measured (not an elongated pedicle, too small: real masks
    on re-posed scans were, 4 of 74 sides) is measured along the finder's corridor instead -
    the mask only seeds the axis, and the finder's answer is an axis - and is reported as the
    finder's, flagged, with the reason. Before, the side was not measured at all."""
    import c2net.measure as measure
    from c2net.assess import assess
    from c2net.errors import MeasurementError
    from c2net.segment import FINDER, UNET

    real = measure.measure_pedicle

    def refuse_left(ct, mask, side, **kw):
        if side == "left":
            raise MeasurementError("The left C2 pedicle mask is not an elongated pedicle.", "")
        return real(ct, mask, side, **kw)

    monkeypatch.setattr(measure, "measure_pedicle", refuse_left)
    res = assess(small_phantom.ct, seed_lps_mm=small_phantom.truth["c2_center_lps_mm"],
                 raise_on_error=False)
    left, right = res.sides["left"], res.sides["right"]
    assert left.measurement is not None, left.error
    assert left.segmenter == FINDER and left.check_segmentation
    assert "could not be measured" in left.segmentation_check.reason
    assert abs(left.measurement.mpd_mm - small_phantom.truth["sides"]["left"]["mpd_mm"]) <= 0.5
    assert right.segmenter == UNET and right.measurement is not None


def test_unet_kept_when_on_the_pedicle_and_replaced_when_a_fragment(small_phantom, monkeypatch):
    """A U-Net mask covering the true pedicle stays the U-Net's; a few-voxel fragment on one
    side is implausible and the finder's mask stands in on that side only."""
    from c2net import segment

    truth = sitk.GetArrayFromImage(small_phantom.labels)
    good = np.zeros_like(truth, dtype=np.uint8)
    good[truth == 2] = 1
    good[truth == 3] = 2
    frag = good.copy()
    kji = np.argwhere(good == 2)
    frag[good == 2] = 0
    frag[tuple(kji[:30].T)] = 2                       # 30 voxels of 0.5 mm3: a fragment

    def fake(arr):
        def run(ct, *a, **k):
            img = sitk.GetImageFromArray(arr)
            img.CopyInformation(ct)
            return img
        return run

    centre = small_phantom.truth["c2_center_lps_mm"]
    monkeypatch.setattr(segment, "segment_pedicles", fake(good))
    out = segment.segment_pedicles_checked(small_phantom.ct, centre)
    assert out.segmenter == {"left": segment.UNET, "right": segment.UNET}
    monkeypatch.setattr(segment, "segment_pedicles", fake(frag))
    out = segment.segment_pedicles_checked(small_phantom.ct, centre)
    assert out.segmenter == {"left": segment.UNET, "right": segment.FINDER}
    assert any("fragment" in n for n in out.notes)


def test_finder_in_a_flexed_neck_uses_the_spine_frame(small_phantom):
    """The phantom's voxels posed 20 deg flexed (rotated direction matrix): with the
    localiser's spine frame the finder still puts each isthmus on its own pedicle.

    Until session 6 a strict xfail: a near tie in the corridor search (the left pedicle and
    the body's corner scored 3.745 and 3.753 mm of clearance) that the crop's sub-mm phase
    decided. With the crop snapped to the scan's lattice (``lattice_centre``) the phase is
    fixed and the pedicle wins; no tie-break rule was added (a mirror-angle one moved two real
    sides 3-6 mm), so this still guards the spine-frame search rather than proving a margin."""
    from c2net.locate import locate_c2

    ph = small_phantom
    centre = np.asarray(ph.truth["c2_center_lps_mm"], float)
    t = np.radians(20.0)
    r = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    posed, labels = _posed(ph, r, centre)
    loc = locate_c2(posed)
    res = find_pedicles(posed, loc.center_lps_mm, loc.evidence.get("spine_frame"))
    for side, value in (("left", 2), ("right", 3)):
        f = res.sides[side]
        assert f is not None, res.reasons
        assert _distance_to_label(labels, value, f.isthmus_center_lps_mm) <= 2.0


@pytest.mark.parametrize("roll_deg", [-20.0, 20.0])
def test_finder_rolls_its_frame_to_the_vertebra_s_symmetry(small_phantom, roll_deg):
    """The phantom's voxels tilted sideways by 20 deg (direction rotated about the patient's
    posterior axis) and searched in the scanner's frame (as when the localiser read C2 on the
    scanner's slices): the finder rolls its crop to the vertebra's left-right symmetry and
    puts each isthmus on its own pedicle."""
    ph = small_phantom
    centre = np.asarray(ph.truth["c2_center_lps_mm"], float)
    t = np.radians(roll_deg)
    r = np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])
    posed, labels = _posed(ph, r, centre)
    res = find_pedicles(posed, centre, None)
    for side, value in (("left", 2), ("right", 3)):
        f = res.sides[side]
        assert f is not None, res.reasons
        assert _distance_to_label(labels, value, f.isthmus_center_lps_mm) <= 2.0
    assert abs(abs(res.evidence["roll_deg"]) - abs(roll_deg)) <= 4.0
    # the upright phantom is symmetric as it stands
    upright = find_pedicles(ph.ct, centre, None)
    assert abs(upright.evidence["roll_deg"]) <= 4.0


def test_the_check_measures_the_finder_corridor_where_the_truth_is(small_phantom, found):
    """The check's own measurement (the image's edges along the finder's corridor, a window
    around its isthmus: half the cost of measuring its whole mask) finds the true isthmus and
    reads the MPD that the true mask reads, so a correct U-Net mask is confirmed and one whose
    isthmus is 6 mm off is flagged."""
    from c2net.measure import measure_both
    from c2net.pedicle_finder.check import measure_corridor

    ph = small_phantom
    truth = sitk.GetArrayFromImage(ph.labels)
    labels = np.zeros_like(truth, dtype=np.uint8)
    labels[truth == 2], labels[truth == 3] = 1, 2
    unet_like = sitk.GetImageFromArray(labels)
    unet_like.CopyInformation(ph.ct)
    measured = measure_both(ph.ct, unet_like)
    for side in ("left", "right"):
        corridor = measure_corridor(ph.ct, found.sides[side])
        t = ph.truth["sides"][side]
        assert np.linalg.norm(np.subtract(corridor.isthmus_center_lps_mm,
                                          t["isthmus_center_lps_mm"])) <= 2.0
        assert abs(corridor.mpd_mm - measured[side].mpd_mm) <= 0.15, (side, corridor.mpd_mm)
        assert compare_measurements(measured[side], corridor).status == AGREE
        m = measured[side]
        off = PedicleMeasurement(**{**m.__dict__, "isthmus_center_lps_mm": tuple(
            np.add(m.isthmus_center_lps_mm, 6.0 * np.asarray(m.axis_lps)))})
        assert compare_measurements(off, corridor).flagged


def test_waist_ranks_before_width():
    """A segment through a waist outranks a wider one that does not narrow between wider bone
    (one lying in the body, its least clearance at its end); among waists the wider wins."""
    from c2net.pedicle_finder.tube import NO_WAIST, WAIST, _best_first, waist_score

    lines = np.array([[3.0, 2.0, 1.5, 2.0, 3.0],      # waist, least 1.5
                      [2.0, 2.5, 3.0, 3.5, 4.0],      # no waist, least 2.0 (at its end)
                      [3.5, 2.5, 2.0, 2.5, 3.5]])     # waist, least 2.0
    score, rank = waist_score(lines)
    assert list(rank) == [WAIST, NO_WAIST, WAIST]
    assert score[1] == pytest.approx(2.0) and score[0] > 1.5
    assert list(_best_first(score, rank)) == [2, 0, 1]


def test_bilateral_height_check_re_searches_the_side_away_from_c2_s_level():
    """C2's isthmi lie at the same height (within ~2 mm): answers 12 mm apart are not both
    pedicles. The side further from C2's isthmus level (28.5 mm below the dens tip) is
    searched again near the other's height and replaced by what is found there; answers at a
    consistent height, or without a dens tip to tell which side is wrong, are left alone, and
    so is a side whose search near the other's height finds nothing."""
    from c2net.pedicle_finder import MAX_HEIGHT_MISMATCH_MM, bilaterally_consistent
    from c2net.pedicle_finder.tube import WAIST, Tube

    def tube(side, k, score=3.0):
        mask = np.zeros((4, 4, 4), bool)
        mask[1, 1, 1] = True
        return Tube(side, np.array([k, 30.0, 40.0]), np.array([0.5, -0.8, 0.3]), score, mask,
                    25.0, 30.0, evidence={"rank": WAIST, "score": score})

    calls = []

    def search(found):
        def run(side, slices, near):
            calls.append((side, slices, near))
            return found.get(side)
        return run

    tip = 48.5                                   # C2's isthmi expected at slice 20
    geo = np.tile([25.0, 32.0, 6.0], (60, 1))    # canal centre row 25, column 32 on every slice
    level = {"left": tube("left", 20.0), "right": tube("right", 20.0 + MAX_HEIGHT_MISMATCH_MM - 1)}
    out, note = bilaterally_consistent(level, search({}), tip, geo)
    assert out == level and not calls and "replaced" not in note
    # the right answer sits 12 mm below C2's level (C3, a narrow right pedicle passed over):
    # it is the one searched again, however well the left would score at the right's height
    apart = {"left": tube("left", 20.5), "right": tube("right", 8.0, score=5.0)}
    found = {"left": tube("left", 9.0, score=9.0), "right": tube("right", 19.0, score=1.2)}
    out, note = bilaterally_consistent(apart, search(found), tip, geo)
    assert note["replaced"] == "right" and out["right"].isthmus_kji[0] == 19.0
    assert out["left"] is apart["left"]
    assert [c[0] for c in calls] == ["right"]
    lo, hi = calls[0][1]
    assert lo <= 20.5 <= hi and hi - lo == 2 * MAX_HEIGHT_MISMATCH_MM
    # searched around the left isthmus's mirror image across the canal's centre (column 32):
    # at its height and row, column 2 * 32 - 40 = 24, within the height tolerance
    point, radius = calls[0][2]
    assert np.allclose(point, (20.5, 30.0, 24.0)) and radius == MAX_HEIGHT_MISMATCH_MM
    assert bilaterally_consistent(apart, search(found), None, geo)[0] == apart   # no dens tip
    out, note = bilaterally_consistent(apart, search({}), tip, geo)
    assert out == apart and note["replaced"] is None


def test_the_check_measures_with_the_side_s_own_cortical_density(small_phantom, monkeypatch):
    """In assess() the check of a U-Net side starts once that side's measurement is done and
    measures the finder's corridor with the cortical density and the reconstruction blur that
    measurement read off the scan (one scanner model for both: what differs is where each
    segmenter puts the pedicle; without the blur the check read sigma_k = 0 and a narrow
    canal's walls differently)."""
    from c2net.assess import assess
    from c2net.pedicle_finder import check

    seen, blur = {}, {}
    real = check.measure_corridor

    def spy(ct, found, cortical_density_hu=None, scan_blur_mm=None):
        seen[found.side] = cortical_density_hu
        blur[found.side] = scan_blur_mm
        return real(ct, found, cortical_density_hu, scan_blur_mm)

    monkeypatch.setattr(check, "measure_corridor", spy)
    res = assess(small_phantom.ct)
    checked = [s for s in ("left", "right") if res.sides[s].segmenter == "unet"]
    assert checked, "the phantom's sides come from the U-Net"
    for side in checked:
        assert seen[side] is not None
        assert seen[side] == res.sides[side].measurement.cortical_density_hu
        assert blur[side] is not None
        assert blur[side] == res.sides[side].measurement.scan_blur_mm
        assert res.sides[side].measurement.to_dict()["scan_blur_mm"] is not None
