"""C2 localisation on synthetic phantoms: automatic, refusals, seed and label-map overrides, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from c2net.errors import GeometryError, LocalisationError
from c2net.locate import C2Location, locate_c2
from c2net.locate.volume import check_resolution
from c2net.phantom import make_phantom

SAMPLE = [(1, None), (3, None), (5, None), (11, "RAI"), (12, "LPI"), (13, "random"),
          (14, "PLS"), (15, "random")]


def _phantom(seed, direction=None, fov="c1_c4"):
    return make_phantom(seed, spacing_mm=(0.8, 0.8, 1.0), direction=direction, fov=fov)


@pytest.fixture(scope="module")
def phantom():
    return _phantom(3)


def _err(loc: C2Location, truth: dict) -> float:
    return float(np.linalg.norm(np.asarray(loc.center_lps_mm) - truth["c2_center_lps_mm"]))


def test_phantom_sample_found_within_5mm():
    """Rotated, flipped and permuted orientations: most found, none at a wrong level."""
    errors = []
    for seed, direction in SAMPLE:
        ph = _phantom(seed, direction)
        try:
            loc = locate_c2(ph.ct)
        except LocalisationError:
            errors.append(np.inf)
            continue
        errors.append(_err(loc, ph.truth))
        lo, hi = np.asarray(loc.roi_min_lps_mm), np.asarray(loc.roi_max_lps_mm)
        bb = np.asarray(ph.truth["c2_bbox_lps_mm"])
        if errors[-1] < 5.0:  # the ROI must contain the whole of C2
            assert np.all(lo <= bb[0]) and np.all(hi >= bb[1])
    errors = np.asarray(errors)
    assert np.sum(errors < 5.0) >= 6, errors


def test_result_is_serialisable(phantom):
    loc = locate_c2(phantom.ct)
    d = loc.to_dict()
    json.dumps(d)
    assert d["method"] == "automatic" and d["frame"] == "LPS mm"
    assert 0.0 <= d["confidence"] <= 1.0
    assert d["evidence"]["dens"]["slices"] >= 4
    assert np.linalg.norm(np.asarray(loc.dens_tip_lps_mm) - phantom.truth["dens_tip_lps_mm"]) < 5.0


def test_c2_cut_by_the_field_of_view_is_refused():
    for seed in (21, 22):
        ph = make_phantom(seed, spacing_mm=(0.8, 0.8, 1.0), fov="c2_cut")
        with pytest.raises(LocalisationError) as exc:
            locate_c2(ph.ct)
        assert exc.value.code in ("c2_partly_in_fov", "c2_not_in_fov")


def test_dens_cut_by_the_scan_top_is_not_replaced_by_a_lower_run():
    """Scans ending inside the dens: bone below the cut held dens-like runs one level down
    (found at 14-48 mm from C2's centre before); the truncated column above them is the dens,
    and two island slices with no C1 around them are no dens (31006)."""
    for seed in (30001, 30009, 30019, 30027, 31006):
        ph = make_phantom(seed, fov="c2_cut")
        with pytest.raises(LocalisationError) as exc:
            locate_c2(ph.ct)
        assert exc.value.code in ("c2_partly_in_fov", "c2_not_in_fov", "c2_not_found")


def test_scan_above_c2_is_refused(phantom):
    """Keep only what lies above the dens tip (a head scan whose lowest slice is C1)."""
    ct = phantom.ct
    tip = np.asarray(phantom.truth["dens_tip_lps_mm"])
    k = int(np.ceil(ct.TransformPhysicalPointToContinuousIndex((tip + [0, 0, 4]).tolist())[2]))
    top = ct[:, :, k:]
    with pytest.raises(LocalisationError) as exc:
        locate_c2(top)
    assert exc.value.code in ("c2_not_in_fov", "c2_partly_in_fov")
    assert exc.value.hint


def test_too_coarse_is_refused():
    img = sitk.Image(64, 64, 40, sitk.sitkFloat32)
    img.SetSpacing((4.5, 4.5, 2.5))
    with pytest.raises(GeometryError) as exc:
        locate_c2(img)
    assert exc.value.code == "resolution_too_coarse"
    thick = sitk.Image(64, 64, 40, sitk.sitkFloat32)
    thick.SetSpacing((0.8, 0.8, 5.0))
    with pytest.raises(GeometryError):
        check_resolution(thick)
    fine = sitk.Image(8, 8, 8, sitk.sitkFloat32)
    fine.SetSpacing((1.0, 1.0, 2.0))
    assert check_resolution(fine)["slice_mm"] == 2.0


def test_seed_override(phantom):
    truth = np.asarray(phantom.truth["c2_center_lps_mm"])
    loc = locate_c2(phantom.ct, seed_lps_mm=truth + [3.0, 5.0, -4.0])
    assert loc.method == "seed"
    assert np.linalg.norm(np.asarray(loc.center_lps_mm) - truth) < 10.0
    assert "seed_lps_mm" in loc.evidence


def test_seed_outside_image_is_refused(phantom):
    lo = np.asarray(phantom.ct.GetOrigin())
    with pytest.raises(LocalisationError) as exc:
        locate_c2(phantom.ct, seed_lps_mm=lo - 500.0)
    assert exc.value.code == "seed_outside_image"
    with pytest.raises(LocalisationError):
        locate_c2(phantom.ct, seed_lps_mm=[np.nan, 0, 0])


def _c2_mask(ph, value: int) -> sitk.Image:
    arr = sitk.GetArrayFromImage(ph.labels)
    out = sitk.GetImageFromArray((np.isin(arr, (1, 2, 3)) * value).astype(np.uint8))
    out.CopyInformation(ph.labels)
    return out


def test_multilabel_mask_on_another_grid(phantom):
    mask = _c2_mask(phantom, 41)
    coarse = sitk.Resample(mask, [s // 2 for s in mask.GetSize()], sitk.Transform(),
                           sitk.sitkNearestNeighbor, mask.GetOrigin(),
                           [2 * s for s in mask.GetSpacing()], mask.GetDirection(), 0)
    loc = locate_c2(phantom.ct, vertebra_mask=coarse, c2_label=41)
    assert loc.method == "vertebra_mask" and loc.confidence == 1.0
    assert _err(loc, phantom.truth) < 1.5
    with pytest.raises(LocalisationError) as exc:
        locate_c2(phantom.ct, vertebra_mask=coarse, c2_label=7)
    assert exc.value.code == "mask_label_missing"


def test_totalsegmentator_forms(phantom, tmp_path):
    multi = sitk.GetArrayFromImage(phantom.labels)
    multi_img = sitk.GetImageFromArray(multi)
    multi_img.CopyInformation(phantom.labels)
    with pytest.raises(LocalisationError) as exc:  # several labels, no --c2-label
        locate_c2(phantom.ct, vertebra_mask=multi_img)
    assert exc.value.code == "mask_label_missing"
    folder = tmp_path / "totalseg"
    folder.mkdir()
    sitk.WriteImage(_c2_mask(phantom, 1), str(folder / "vertebrae_C2.nii.gz"))
    for given in (folder, folder / "vertebrae_C2.nii.gz", str(folder)):
        loc = locate_c2(phantom.ct, vertebra_mask=given)
        assert _err(loc, phantom.truth) < 1.0
        lo, hi = np.asarray(loc.roi_min_lps_mm), np.asarray(loc.roi_max_lps_mm)
        bb = np.asarray(phantom.truth["c2_bbox_lps_mm"])
        assert np.all(lo <= bb[0]) and np.all(hi >= bb[1])


def test_cli_prints_and_writes_json(phantom, tmp_path, capsys):
    from c2net.cli import main

    ct_path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(phantom.ct, str(ct_path))
    out = tmp_path / "loc.json"
    assert main(["locate", str(ct_path), "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads(out.read_text())
    assert printed == written
    assert "not a medical device" in written["disclaimer"]
    centre = np.asarray(written["location"]["center_lps_mm"])
    assert np.linalg.norm(centre - phantom.truth["c2_center_lps_mm"]) < 5.0
    # a RAS seed is converted and reported
    t = np.asarray(phantom.truth["c2_center_lps_mm"])
    ras = [-t[0], -t[1], t[2]]
    assert main(["locate", str(ct_path), "--seed", *map(str, ras), "--seed-frame", "RAS"]) == 0
    seeded = json.loads(capsys.readouterr().out)
    assert seeded["seed"]["frame"] == "RAS"
    assert np.allclose(seeded["seed"]["lps_mm"], t)
    # a refusal exits with 2 and says why
    assert main(["locate", str(ct_path), "--seed", "9999", "0", "0"]) == 2
    assert "outside the image" in capsys.readouterr().err


def _cue(k, p, lat, arch=True):
    from c2net.locate.dens import SliceCue
    return SliceCue(k=k, island=True, width_mm=9.0, area_mm2=60.0, arch_in_front=arch,
                    masses_beside=2, centre_pl=(p, lat))


def test_dens_run_survives_a_stray_island():
    """An island elsewhere on one slice (a piece of the arch) does not break the dens column."""
    from c2net.locate.dens import dens_runs
    cues = [_cue(k, 50.0, 45.0) for k in range(20, 25)]
    cues += [_cue(25, 40.0, 43.0, arch=False)]            # stray island, 10 mm in front
    cues += [_cue(k, 50.0, 45.0) for k in range(27, 30)]  # the dens goes on above it
    runs = dens_runs(cues)
    assert runs[0].k_lo == 20 and runs[0].k_hi == 29


def test_dens_run_drops_skull_base_bone_touching_its_tip():
    """Bone above the tip that slopes forwards (basion) is cut off, not the whole run dropped."""
    from c2net.locate.dens import dens_runs
    cues = [_cue(k, 50.0, 45.0) for k in range(20, 25)]
    cues += [_cue(25 + i, 48.0 - 2.5 * i, 45.0, arch=False) for i in range(3)]
    runs = dens_runs(cues)
    assert runs and runs[0].k_lo == 20 and runs[0].k_hi in (24, 25)
