"""Semi-automatic pedicle labels of the shared real CTs (c2net.training.real_labels).

Research use only - not a medical device.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from c2net.training import real_labels as RL


def _image(shape_kji=(30, 40, 40)):
    img = sitk.Image(list(shape_kji[::-1]), sitk.sitkUInt8)
    img.SetOrigin((-20.0, -20.0, -15.0))
    return img


def test_label_is_the_connected_bone_bar_within_the_cylinder():
    img = _image()
    t, r = RL.axis_coordinates(img, (0, 0, 0), (0, 1, 0))       # the bar runs along y
    solid = r <= 3.0                                              # a 3 mm bar through the centre
    kk, jj, ii = np.indices(solid.shape)
    solid |= jj >= 30                                             # the body beyond 10 mm
    solid |= (np.abs(ii - 26) <= 1) & (np.abs(jj - 20) <= 1) & (np.abs(kk - 15) <= 1)  # a chip
    lab = RL.pedicle_label(solid, img, (0, 0, 0), (0, 1, 0))
    assert lab[15, 20, 20]                                        # the isthmus
    assert not lab[15, 20, 26]                                    # the chip 6 mm away, apart
    assert np.all(np.abs(t[lab]) <= RL.LABEL_HALF_LENGTH_MM)      # cut before the body
    assert np.all(r[lab] <= RL.LABEL_RADIUS_MM)
    assert lab.sum() == pytest.approx(np.sum(solid & (np.abs(t) <= 7) & (r <= 3.0)), rel=0.05)
    # no bone at the isthmus: no label (rather than a label somewhere else)
    assert not RL.pedicle_label(np.zeros_like(solid), img, (0, 0, 0), (0, 1, 0)).any()


DATA = RL.shared_data_dir()


@pytest.mark.skipif(not (DATA / "real" / RL.REAL_SCANS["cthead"]).exists(),
                    reason="real CT data folder is absent")
def test_cthead_labels_rebuild_on_the_readers_pedicles(tmp_path):
    rows = RL.build_real_cases(tmp_path, DATA, scans=["cthead"])
    assert (tmp_path / "manifest.csv").exists() and rows[0]["scan"] == "cthead"
    truth = json.loads((tmp_path / "cthead" / "truth.json").read_text())
    lab = sitk.ReadImage(str(tmp_path / "cthead" / "labels.nii.gz"))
    arr = sitk.GetArrayFromImage(lab)
    centre = np.asarray(truth["c2_center_lps_mm"])
    for side, value in RL.LABEL_VALUES.items():
        kji = np.argwhere(arr == value)
        assert 400 < len(kji) < 2000                               # a pedicle, not a vertebra
        from c2net.geometry import index_to_lps

        pts = index_to_lps(lab, kji[:, ::-1].astype(float))
        isth = np.asarray(truth["sides"][side]["isthmus_center_lps_mm"])
        assert np.min(np.linalg.norm(pts - isth, axis=1)) < 1.0    # holds the reader's isthmus
        lateral = pts[:, 0] - centre[0]                            # LPS x = patient left
        assert np.all(lateral > 3) if side == "left" else np.all(lateral < -3)
    from c2net.training.data import read_ct_manifest

    assert read_ct_manifest(tmp_path / "manifest.csv")[0].patient_id == "REAL_cthead"
