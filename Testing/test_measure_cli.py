"""``c2net measure`` end to end: the tool's own segmentation files, .seg.nrrd segment names,
phantom labels, and trajectories in LPS and RAS (issues #12, #13)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from c2net.cli import main
from c2net.phantom import make_phantom, write_phantom
from c2net.report.segmentation_files import write_segmentation_files


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("measure_cli")
    ph = make_phantom(seed=11, spacing_mm=0.8, fov="c2_crop", mpd_left_mm=4.2, mpd_right_mm=6.3)
    paths = write_phantom(ph, root / "phantom")
    return ph, root, paths


def _run(argv, out):
    assert main(["measure", *argv, "--out", str(out)]) == 0
    return json.loads(out.read_text())


def test_segmentation_files_of_this_program_round_trip(case, tmp_path):
    """assess writes segmentation.nii.gz / .seg.nrrd with 1 = left, 2 = right; measure reads
    them (the .seg.nrrd by its segment names) and answers as from the phantom's labels."""
    ph, root, paths = case
    lab = sitk.GetArrayFromImage(ph.labels)
    seg = np.zeros_like(lab)
    seg[lab == ph.truth["labels"]["pedicle_left"]] = 1
    seg[lab == ph.truth["labels"]["pedicle_right"]] = 2
    img = sitk.GetImageFromArray(seg)
    img.CopyInformation(ph.labels)
    out_dir = tmp_path / "report"
    out_dir.mkdir()
    write_segmentation_files(img, out_dir, reference=ph.ct)
    ref = _run([paths["ct"], "--pedicles", paths["labels"]], tmp_path / "ref.json")
    assert ref["labels"]["left"] == 2 and ref["labels"]["right"] == 3
    nii = _run([paths["ct"], "--pedicles", str(out_dir / "segmentation.nii.gz")], tmp_path / "nii.json")
    assert (nii["labels"]["left"], nii["labels"]["right"]) == (1, 2)
    nrrd = _run([paths["ct"], "--pedicles", str(out_dir / "segmentation.seg.nrrd")], tmp_path / "nrrd.json")
    assert nrrd["labels"]["source"] == "segment names in the file"
    for side in ("left", "right"):
        assert nii["sides"][side]["mpd_mm"] == pytest.approx(ref["sides"][side]["mpd_mm"], abs=1e-6)
        assert nrrd["sides"][side]["mpd_mm"] == pytest.approx(ref["sides"][side]["mpd_mm"], abs=1e-6)
        for key in ("outer_width_transverse_mm", "inner_width_transverse_mm", "no_medullary_canal"):
            assert key in nii["sides"][side]
        assert abs(ref["sides"][side]["mpd_mm"] - ph.truth["sides"][side]["mpd_mm"]) <= 0.45
    # a .seg.nrrd whose segments carry other values: the names decide, not a convention
    swapped = sitk.GetImageFromArray(np.where(seg == 1, 7, np.where(seg == 2, 5, 0)).astype(np.uint8))
    swapped.CopyInformation(ph.labels)
    for n, (name, value) in enumerate((("C2 pedicle right", 5), ("C2 pedicle left", 7))):
        swapped.SetMetaData(f"Segment{n}_Name", name)
        swapped.SetMetaData(f"Segment{n}_LabelValue", str(value))
    sitk.WriteImage(swapped, str(tmp_path / "mine.seg.nrrd"), True)
    mine = _run([paths["ct"], "--pedicles", str(tmp_path / "mine.seg.nrrd")], tmp_path / "mine.json")
    assert (mine["labels"]["left"], mine["labels"]["right"]) == (7, 5)
    assert mine["sides"]["left"]["mpd_mm"] == pytest.approx(ref["sides"]["left"]["mpd_mm"], abs=1e-6)


def test_trajectories_in_lps_and_ras_give_the_same_answer(case, tmp_path):
    ph, root, paths = case
    lps, ras = [], []
    for side in ("left", "right"):
        t = ph.truth["sides"][side]
        c, a = np.asarray(t["isthmus_center_lps_mm"]), np.asarray(t["axis_lps"])
        e, g = c - 7.0 * a, c + 7.0 * a
        lps += [f"--trajectory-{side}", *map(str, [*e, *g])]
        er, gr = e * [-1, -1, 1], g * [-1, -1, 1]
        ras += [f"--trajectory-{side}", *map(str, [*er, *gr])]
    a = _run([paths["ct"], *lps], tmp_path / "lps.json")
    b = _run([paths["ct"], *ras, "--seed-frame", "RAS"], tmp_path / "ras.json")
    for side in ("left", "right"):
        assert a["sides"][side]["axis_source"] == "trajectory"
        assert a["sides"][side]["mpd_mm"] == pytest.approx(b["sides"][side]["mpd_mm"], abs=1e-9)
        assert abs(a["sides"][side]["mpd_mm"] - ph.truth["sides"][side]["mpd_mm"]) <= 0.45
    assert a["sides"]["left"]["verdict_mpd"] != "low_risk"       # 4.2 mm
    assert a["sides"]["right"]["verdict_mpd"] == "low_risk"      # 6.3 mm


def test_measure_without_mask_or_trajectories_says_what_to_give(case, capsys):
    ph, root, paths = case
    assert main(["measure", paths["ct"]]) != 0
    err = capsys.readouterr()
    assert "trajectory" in (err.err + err.out)
