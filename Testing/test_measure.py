"""Measurement on analytic shapes with exact answers (no phantom generator needed)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from analytic_shapes import make_tube, tube_ct
from c2net.errors import MeasurementError
from c2net.measure import axis_angles_deg, isthmus_slices, measure_both, measure_pedicle
from c2net.verdict import BORDERLINE, HIGH_RISK, LOW_RISK, mpd_verdict


def _angle_deg(a, b):
    return float(np.degrees(np.arccos(min(1.0, abs(float(np.dot(a, b)))))))


@pytest.mark.parametrize("side,mpd,spacing", [
    ("left", 5.5, (0.5, 0.5, 0.5)),
    ("right", 3.2, (0.4, 0.4, 0.8)),
    ("left", 7.5, (1.0, 1.0, 1.0)),
])
def test_elliptic_tube_mpd_axis_and_centre(side, mpd, spacing):
    tube = make_tube(side, mpd_mm=mpd, height_mm=mpd + 3.0, cortex_mm=1.2,
                     medial_deg=30, cranial_deg=25)
    ct, mask = tube_ct(tube, spacing=spacing, supersample=2, seed=3)
    m = measure_pedicle(ct, mask, side)
    assert abs(m.mpd_mm - mpd) <= 0.3
    assert _angle_deg(m.axis_lps, tube.axis) <= 3.0
    assert np.linalg.norm(np.subtract(m.isthmus_center_lps_mm, tube.center)) <= 1.5
    assert _angle_deg(m.mpd_direction_lps, tube.width_dir) <= 10.0
    # the MPD line is as long as the MPD and crosses the isthmus
    e1, e2 = np.asarray(m.mpd_endpoints_lps_mm)
    assert abs(np.linalg.norm(e2 - e1) - m.mpd_mm) < 1e-6
    assert abs(m.outer_height_mm - (mpd + 3.0)) <= 0.8
    if tube.inner_width_mm >= 2.0:  # a sub-millimetre marrow cavity is below resolution
        assert abs(m.inner_width_mm - tube.inner_width_mm) <= 0.6
    assert m.axis_lps[1] < 0  # posterior -> anterior
    med, cra = axis_angles_deg(m.axis_lps, side)
    assert abs(med - 30) <= 3 and abs(cra - 25) <= 3


def test_flipped_permuted_direction_keeps_side_and_answer():
    tube = make_tube("right", mpd_mm=4.6, height_mm=7.5, cortex_mm=1.0, center=(-20.0, 8.0, 5.0))
    # index axes: i -> superior, j -> patient right (flipped x), k -> anterior
    d = np.array([[0, -1, 0], [0, 0, -1], [1, 0, 0]], dtype=float)
    ct, mask = tube_ct(tube, spacing=(0.6, 0.5, 0.7), direction=d, supersample=2, seed=5)
    m = measure_pedicle(ct, mask, "right")
    assert abs(m.mpd_mm - 4.6) <= 0.45
    assert m.isthmus_center_lps_mm[0] < 0  # patient right is -x in LPS
    assert _angle_deg(m.axis_lps, tube.axis) <= 3.0
    med, _ = axis_angles_deg(m.axis_lps, "right")
    assert med > 0


def test_mask_on_a_larger_grid_gives_the_same_answer():
    """The measurement works on the mask's bounding box: padding the grid (a 512 x 512 scan's
    field of view) changes nothing, and the box keeps the mask's physical position."""
    tube = make_tube("left", mpd_mm=5.0, center=(3.0, -2.0, 1.0))
    ct, mask = tube_ct(tube, spacing=(0.6, 0.6, 0.8), supersample=2, fov_mm=30, seed=2)
    small = measure_pedicle(ct, mask, "left")
    big_ct = sitk.ConstantPad(ct, [40, 25, 10], [15, 30, 20], -1000)
    big_mask = sitk.ConstantPad(mask, [40, 25, 10], [15, 30, 20], 0)
    big = measure_pedicle(big_ct, big_mask, "left")
    assert big.mpd_mm == pytest.approx(small.mpd_mm, abs=1e-6)
    np.testing.assert_allclose(big.isthmus_center_lps_mm, small.isthmus_center_lps_mm, atol=1e-6)


def test_measure_both_from_label_map_and_sides():
    left = make_tube("left", mpd_mm=6.0, center=(0.0, 0.0, 0.0))
    ct, mask = tube_ct(left, spacing=(0.7, 0.7, 0.7), supersample=2, fov_mm=30)
    labels = sitk.Cast(mask, sitk.sitkUInt8) * 7
    res = measure_both(ct, labels, left_label=7, right_label=7)
    assert abs(res["left"].mpd_mm - res["right"].mpd_mm) < 1e-9
    with pytest.raises(MeasurementError, match="empty"):
        measure_both(ct, labels, left_label=7, right_label=9)


def test_non_elongated_mask_is_refused():
    img = sitk.Image([30, 30, 30], sitk.sitkFloat32) + 40.0
    img.SetSpacing([0.5] * 3)
    ball = sitk.Cast(sitk.Image([30, 30, 30], sitk.sitkUInt8), sitk.sitkUInt8)
    arr = np.zeros((30, 30, 30), np.uint8)
    z, y, x = np.ogrid[:30, :30, :30]
    arr[(z - 15) ** 2 + (y - 15) ** 2 + (x - 15) ** 2 <= 36] = 1
    ball = sitk.GetImageFromArray(arr)
    ball.CopyInformation(img)
    with pytest.raises(MeasurementError, match="not an elongated pedicle"):
        measure_pedicle(img, ball, "left")


def test_mask_touching_the_edge_is_refused():
    tube = make_tube("left", mpd_mm=5.0)
    tube.mask_half_length_mm = 30.0
    tube.half_length_mm = 30.0
    ct, mask = tube_ct(tube, spacing=(1.0, 1.0, 1.0), fov_mm=24, supersample=1)
    with pytest.raises(MeasurementError, match="touches the edge"):
        measure_pedicle(ct, mask, "left")


def test_mask_stored_over_its_own_extent_is_not_cut_off():
    """A .seg.nrrd keeps a segment over its own extent: the mask fills its grid to the edge,
    but only the scan's edge can cut a pedicle off."""
    tube = make_tube("left", mpd_mm=5.0, height_mm=8.0)
    ct, mask = tube_ct(tube, spacing=(0.6, 0.6, 0.6), supersample=1, seed=2)
    arr = sitk.GetArrayViewFromImage(mask) > 0
    lo = [int(np.nonzero(arr.any(axis=tuple(b for b in range(3) if b != a)))[0][0]) for a in (2, 1, 0)]
    hi = [int(np.nonzero(arr.any(axis=tuple(b for b in range(3) if b != a)))[0][-1]) for a in (2, 1, 0)]
    tight = sitk.RegionOfInterest(mask, [h - q + 1 for q, h in zip(lo, hi)], lo)
    ref = measure_pedicle(ct, mask, "left")
    m = measure_pedicle(ct, tight, "left")
    assert m.mpd_mm == pytest.approx(ref.mpd_mm, abs=0.05)


def test_mask_on_soft_tissue_has_no_cortex():
    tube = make_tube("left", mpd_mm=5.0)
    ct, mask = tube_ct(tube, spacing=(1.0, 1.0, 1.0), supersample=1, hu=(40.0, 40.0, 40.0))
    with pytest.raises(MeasurementError, match="No cortical bone"):
        measure_pedicle(ct, mask, "left")


def test_isthmus_slices_shape_geometry_and_order():
    tube = make_tube("left", mpd_mm=5.0)
    ct, mask = tube_ct(tube, spacing=(0.8, 0.8, 0.8), supersample=1, fov_mm=40)
    m = measure_pedicle(ct, mask, "left")
    sl = isthmus_slices(ct, m, mask)
    assert sl.hu.shape == (5, 64, 64) and sl.hu.dtype == np.float32
    zs = [c[2] for c in sl.slice_centers_lps_mm]
    assert np.allclose(np.abs(np.diff(zs)), 1.0)
    assert sl.mask[0].sum() >= sl.mask[-1].sum()  # wide -> narrow
    # the pedicle (bone) sits at the crop centre
    assert sl.hu[2, 28:36, 28:36].max() > 700


def test_mpd_verdict_rules():
    assert mpd_verdict(5.5, 0.2, 4.78) == LOW_RISK
    assert mpd_verdict(4.0, 0.2, 4.78) == HIGH_RISK
    assert mpd_verdict(4.9, 0.2, 4.78) == BORDERLINE
    assert mpd_verdict(4.3, 0.2, 4.30) == BORDERLINE
