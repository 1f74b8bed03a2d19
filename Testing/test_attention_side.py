"""Attention points at the right pedicle (issue 12).

The classifier's 64 x 64 mm crop around one isthmus also holds the other pedicle; a network
trained on it looked there. These tests check, with answers known in advance:

* the map is not mirrored on its way back to CT space (a synthetic map with one hot pixel lands
  on the LPS point that pixel was sampled from);
* the shipped classifier sees only its own pedicle's neighbourhood: blanking the *opposite*
  pedicle cannot change its probability, blanking the measured one does more;
* on held-out phantoms of both sides (seeds outside the training cohort 1000-1239) the
  Grad-CAM peak lies on the measured pedicle's side of the midline, near its isthmus.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import SimpleITK as sitk
from c2net.classifier_view import APERTURE_RADIUS_MM, aperture_radius_mm, own_side_view
from c2net.classify import predict_risk, sees_own_side_only
from c2net.explain import attention_volume, cam_image
from c2net.models import load_model
from c2net.results import IsthmusSlices, RiskPrediction


def test_cam_goes_back_to_the_point_it_came_from():
    centre = (12.0, -30.0, 40.0)
    slices = IsthmusSlices(side="left", hu=np.zeros((5, 64, 64), np.float32),
                           slice_centers_lps_mm=[(centre[0], centre[1], centre[2] - 2 + k)
                                                 for k in range(5)], pixel_mm=1.0)
    cam = np.zeros((5, 64, 64), np.float32)
    cam[2, 20, 50] = 1.0          # row 20 (posterior axis), column 50 (patient-left axis)
    img = cam_image(slices, cam)
    hot = np.asarray(img.TransformIndexToPhysicalPoint((50, 20, 2)))
    expect = np.array([centre[0] + (50 - 31.5), centre[1] + (20 - 31.5), centre[2]])
    np.testing.assert_allclose(hot, expect, atol=1e-6)
    # and through the whole attention volume onto a flipped (RAI) CT grid
    ct = sitk.Image(80, 80, 20, sitk.sitkFloat32)
    ct.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, -1))
    ct.SetOrigin((60.0, 20.0, 50.0))
    pred = RiskPrediction(side="left", p_high_risk=0.5, logits=(0.0, 0.0), temperature=1.0,
                          cam_high_risk=cam, model_id="x")
    vol = attention_volume(ct, [(slices, pred)])
    arr = sitk.GetArrayFromImage(vol)
    k, j, i = np.unravel_index(np.argmax(arr), arr.shape)
    peak = np.asarray(vol.TransformIndexToPhysicalPoint((int(i), int(j), int(k))))
    assert np.linalg.norm(peak - expect) < 1.01


def test_aperture_keeps_the_centre_and_hides_the_far_field():
    hu = np.full((5, 64, 64), 900.0, np.float32)
    out = own_side_view(hu, 12.0)
    assert np.all(out[:, 31:33, 31:33] == 900.0)
    assert np.all(out[:, :, :10] == -200.0) and np.all(out[:, :, -10:] == -200.0)
    # the radius never reaches the other isthmus, whatever the neck's size
    assert aperture_radius_mm((10, 0, 0), (-10, 0, 0)) == pytest.approx(10.0)
    assert aperture_radius_mm((14, 0, 0), (-14, 0, 5)) == APERTURE_RADIUS_MM


@pytest.fixture(scope="module")
def classifier():
    model = load_model("classifier", threads=2)
    if not sees_own_side_only(model):
        pytest.fail("the shipped classifier was trained on the whole 64 mm crop: it can look at "
                    "the other pedicle (retrain with 'c2net train cls', see models/MODEL_CARD.md)")
    return model


@pytest.fixture(scope="module")
def held_out_sides():
    """Both sides of two held-out phantoms (one low/high, one high/low), assessed end to end."""
    from c2net.assess import assess
    from c2net.phantom import make_phantom

    out = []
    for seed, mpd in ((50007, (5.8, 3.6)), (50011, (3.4, 6.1))):
        ph = make_phantom(seed=seed, spacing_mm=(0.6, 0.6, 0.8), mpd_left_mm=mpd[0],
                          mpd_right_mm=mpd[1], fov="c1_c4")
        res = assess(ph.ct, None, threads=2)
        for side in ("left", "right"):
            sa, other = res.sides[side], res.sides["right" if side == "left" else "left"]
            out.append((seed, side, sa, other))
    return out


def _blank(hu: np.ndarray, mask: np.ndarray, dx_px: int = 0) -> np.ndarray:
    from scipy import ndimage

    region = ndimage.binary_dilation(mask > 0, iterations=3)
    region = np.roll(region, dx_px, axis=2)
    out = hu.copy()
    out[region] = 40.0   # soft tissue where the bone was
    return out


def test_blanking_the_opposite_pedicle_changes_nothing(classifier, held_out_sides):
    for seed, side, sa, other in held_out_sides:
        sl = sa.slices
        c, oc = sl.slice_centers_lps_mm[0], other.measurement.isthmus_center_lps_mm
        dx = int(round(oc[0] - c[0]))           # columns run along +x (patient left)

        def p(hu, sl=sl, oc=oc):
            s2 = copy.copy(sl)
            s2.hu = hu
            return predict_risk(s2, model=classifier, other_isthmus_lps_mm=oc)

        base = p(sl.hu)
        own = p(_blank(sl.hu, sl.mask))
        opposite = p(_blank(sl.hu, sl.mask, dx))
        z = lambda r: r.logits[1] - r.logits[0]   # noqa: E731 - the decision variable
        d_own, d_opp = abs(z(own) - z(base)), abs(z(opposite) - z(base))
        assert d_opp < 1e-3, (seed, side, d_opp)
        assert d_own > d_opp, (seed, side, d_own, d_opp)


def test_cam_peak_lies_on_the_measured_pedicle(classifier, held_out_sides):
    """The high-risk map of a high-risk side peaks on its pedicle (within half an 8 mm CAM cell
    of the pedicle mask in the classifier's slices); any non-empty map peaks nearer its own
    isthmus than the other; the map is zero where the network saw no CT."""
    high = 0
    for seed, side, sa, other in held_out_sides:
        sl, cam = sa.slices, sa.prediction.cam_high_risk
        assert np.all(cam[:, :, :4] == 0) and np.all(cam[:, :, -4:] == 0)   # outside the aperture
        if cam.max() <= 0:          # a confidently low-risk side has no high-risk evidence
            assert sa.prediction.p_high_risk < 0.5, (seed, side)
            continue
        c = np.asarray(sl.slice_centers_lps_mm[0])
        _, j, i = np.unravel_index(np.argmax(cam), cam.shape)
        peak = c[:2] + (np.array([i, j]) - 31.5)
        own = np.asarray(sa.measurement.isthmus_center_lps_mm)[:2]
        opp = np.asarray(other.measurement.isthmus_center_lps_mm)[:2]
        assert np.linalg.norm(peak - own) < np.linalg.norm(peak - opp), (seed, side, peak)
        if sa.prediction.p_high_risk >= 0.5:
            high += 1
            rows, cols = np.nonzero(sl.mask.any(axis=0))
            gap = np.min(np.hypot(rows - j, cols - i)) * sl.pixel_mm
            assert gap <= 4.0, (seed, side, peak, gap)
    assert high == 2   # one high-risk left and one high-risk right pedicle were checked
