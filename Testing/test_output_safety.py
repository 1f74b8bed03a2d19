"""A user's files are sacred: the one output-folder rule of every command, batch reruns,
unwritable folders and sheared grids (issue 12, data safety).

Each test replays a defect found by running the documented options as a new user would.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import stat
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from c2net import output_folder
from c2net.batch import Case, run_batch
from c2net.cli import main as cli_main
from c2net.errors import OutputError
from c2net.output_folder import check_output_folder
from c2net.output_folder import output_folder as out_folder
from c2net.phantom import write_phantom
from c2net.report import FILE_KEYS


@pytest.fixture(scope="module")
def case_dir(neck_phantom_dir) -> Path:
    return neck_phantom_dir   # conftest: the CT alone in .../scans, its parent holds nothing else


def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _no_work(monkeypatch):
    """Fail the test if the pipeline starts loading: refusals must come before any work."""
    import c2net.assess

    def boom(*a, **k):
        raise AssertionError("the pipeline started although the output folder was refused")

    monkeypatch.setattr(c2net.assess, "_loaded", boom)


# --------------------------------------------------------------------------- the rule itself
def test_overwrite_replaces_only_own_files_and_removes_stale_ones(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "sub").mkdir()
    (out / "sub" / "x.dcm").write_text("dicom")
    (out / "report.pdf").write_text("stale pdf of an earlier run")
    with pytest.raises(OutputError, match="not empty"):
        check_output_folder(out, overwrite=False)
    with out_folder(out, ["report.json", "report.pdf"], overwrite=True) as tmp:
        (tmp / "report.json").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "report.json", "sub"]
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "sub" / "x.dcm").read_text() == "dicom"


def test_failure_leaves_folder_as_it_was(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text("previous")
    (out / "notes.txt").write_text("mine")
    before = _tree(out)
    with pytest.raises(RuntimeError):
        with out_folder(out, ["report.json"], overwrite=True) as tmp:
            (tmp / "report.json").write_text("half")
            raise RuntimeError("crash")
    assert _tree(out) == before and sorted(p.name for p in out.iterdir()) == ["notes.txt", "report.json"]
    new = tmp_path / "a" / "b"
    with pytest.raises(RuntimeError):
        with out_folder(new, ["report.json"]):
            raise RuntimeError("crash")
    assert not (tmp_path / "a").exists()   # the folders it created are removed again


def test_undeclared_file_is_never_moved_in(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="undeclared"):
        with out_folder(out, ["report.json"], overwrite=True) as tmp:
            (tmp / "keep.txt").write_text("clobber")
    assert (out / "keep.txt").read_text() == "mine"


# --------------------------------------------------------------------------- assess
def test_assess_overwrite_keeps_unrelated_files(case_dir, tmp_path, capsys):
    out = tmp_path / "report"
    out.mkdir()
    (out / "my_notes.txt").write_text("surgeon's notes")
    (out / "report.pdf").write_text("old")
    assert cli_main(["assess", str(case_dir / "ct.nii.gz"), "--out", str(out), "--overwrite"]) == 0
    names = {p.name for p in out.iterdir()}
    assert "my_notes.txt" in names and set(FILE_KEYS.values()) <= names
    assert (out / "my_notes.txt").read_text() == "surgeon's notes"
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF")
    err = capsys.readouterr().err
    assert "[3/8] Locate C2" in err and "[8/8] Write report" in err   # stages shown as they run


@pytest.mark.parametrize("where", ["same", "parent"])
def test_assess_refuses_output_that_contains_the_input(case_dir, where, monkeypatch, capsys):
    _no_work(monkeypatch)
    before = _tree(case_dir.parent)
    out = case_dir if where == "same" else case_dir.parent
    rc = cli_main(["assess", str(case_dir / "ct.nii.gz"), "--out", str(out), "--overwrite"])
    err = capsys.readouterr().err
    assert rc == 2 and "contains the input" in err and "hint:" in err
    assert _tree(case_dir.parent) == before


def test_assess_refuses_output_inside_a_dicom_input_folder(tmp_path, monkeypatch, capsys):
    _no_work(monkeypatch)
    dicom = tmp_path / "dicom"
    dicom.mkdir()
    (dicom / "IM0001.dcm").write_bytes(b"x" * 10)
    rc = cli_main(["assess", str(dicom), "--out", str(dicom / "report")])
    assert rc == 2 and "inside the input folder" in capsys.readouterr().err
    rc = cli_main(["assess", str(dicom), "--out", str(tmp_path), "--overwrite"])
    assert rc == 2 and "contains the input" in capsys.readouterr().err
    assert [p.name for p in dicom.iterdir()] == ["IM0001.dcm"]


def test_unwritable_output_is_an_input_problem_found_before_work(case_dir, tmp_path, monkeypatch,
                                                                   capsys):
    _no_work(monkeypatch)

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(output_folder.tempfile, "mkstemp", denied)
    out = tmp_path / "locked"
    out.mkdir()
    rc = cli_main(["assess", str(case_dir / "ct.nii.gz"), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and str(out) in err and "cannot be written" in err and "Permission denied" in err


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_unwritable_output_real_permissions(case_dir, tmp_path, capsys):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        rc = cli_main(["assess", str(case_dir / "ct.nii.gz"), "--out", str(out)])
    finally:
        out.chmod(0o755)
    assert rc == 2 and "cannot be written" in capsys.readouterr().err


# --------------------------------------------------------------------------- phantom and demo
def test_phantom_and_demo_follow_the_same_rule(tmp_path, small_phantom, capsys):
    out = tmp_path / "ph"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(OutputError, match="not empty"):
        write_phantom(small_phantom, out)
    write_phantom(small_phantom, out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["ct.nii.gz", "labels.nii.gz", "mine.txt",
                                                    "truth.json"]
    rc = cli_main(["demo", "--out", str(out)])
    assert rc == 2 and "--overwrite" in capsys.readouterr().err


def test_demo_seed_is_named_for_what_it_is(capsys):
    with pytest.raises(SystemExit):
        cli_main(["demo", "--help"])
    text = capsys.readouterr().out
    assert "--phantom-seed" in text and "--seed " not in text


# --------------------------------------------------------------------------- batch
def _summary(root: Path) -> list:
    with (root / "summary.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_batch_rerun_refused_resume_reruns_failed_and_summary_keeps_rows(case_dir, tmp_path,
                                                                          capsys):
    root = tmp_path / "cohort"
    fixed = tmp_path / "later.nii.gz"
    fixed.write_bytes(b"not yet an image")
    a = Case("a", str(case_dir / "ct.nii.gz"))
    b = Case("b", str(fixed))
    rows = run_batch([a, b], str(root), show_progress=False)
    assert {r["case_id"]: r["status"] for r in rows} == {"a": "ok", "b": "error"}
    mode = stat.S_IMODE((root / "summary.csv").stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask and stat.S_IMODE((root / "failures.csv").stat().st_mode) == mode
    (root / "a" / "surgeon_notes.txt").write_text("keep me")

    # run again without --resume/--overwrite: refused before any work, nothing lost
    before = _tree(root)
    rc = cli_main(["batch", str(case_dir / "ct.nii.gz"), "--out", str(root), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "--resume" in err and "--overwrite" in err
    assert _tree(root) == before

    # the user fixes input b; --resume keeps a (finished) and re-runs b (it failed)
    sitk.WriteImage(sitk.ReadImage(str(case_dir / "ct.nii.gz")), str(fixed))
    rows = run_batch([a, b], str(root), resume=True, show_progress=False)
    assert {r["case_id"]: r["status"] for r in rows} == {"a": "ok", "b": "ok"}
    assert (root / "a" / "surgeon_notes.txt").read_text() == "keep me"

    # a later run of one other case keeps the earlier cases' rows in the cohort summary
    c = Case("c", str(tmp_path / "missing.nrrd"))
    rc = run_batch([c], str(root), resume=True, show_progress=False)
    ids = [r["case_id"] for r in _summary(root)]
    assert ids == ["a", "a", "b", "b", "c"]
    assert [r["case_id"] for r in csv.DictReader((root / "failures.csv").open())] == ["c"]
    assert json.loads((root / "batch.json").read_text(encoding="utf-8"))["cases_in_summary"] == 3


def test_batch_overwrite_keeps_user_files_and_exit_code_says_failed(tmp_path, capsys):
    root = tmp_path / "cohort"
    (root / "missing").mkdir(parents=True)
    (root / "missing" / "notes.txt").write_text("keep me")
    bad = str(tmp_path / "missing.nrrd")
    rc = cli_main(["batch", bad, "--out", str(root), "--quiet"])
    assert rc == 2 and "--overwrite" in capsys.readouterr().err
    rc = cli_main(["batch", bad, "--out", str(root), "--quiet", "--overwrite"])
    out = capsys.readouterr().out
    assert rc == 4 and "1 failed" in out and "failures.csv" in out
    assert (root / "missing" / "notes.txt").read_text() == "keep me"
    assert (root / "missing" / "report.json").is_file()


def test_batch_case_folder_must_not_hold_its_input(tmp_path, capsys):
    root = tmp_path / "cohort"
    (root / "ct").mkdir(parents=True)
    img = root / "ct" / "ct.nii.gz"
    img.write_bytes(b"whatever")
    # case id of cohort/ct/ct.nii.gz is 'ct_ct'; a manifest can name the case 'ct' -> cohort/ct
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"case_id,input\nct,{img}\n")
    rc = cli_main(["batch", "--manifest", str(manifest), "--out", str(root), "--overwrite", "--quiet"])
    assert rc == 2 and "contains the input" in capsys.readouterr().err
    assert img.read_bytes() == b"whatever"


# --------------------------------------------------------------------------- sheared grids
def _sheared_nifti(src: sitk.Image, path: Path, shear: float) -> None:
    sitk.WriteImage(src, str(path.with_suffix("")), False)   # plain .nii, then patch its sform
    raw = bytearray(path.with_suffix("").read_bytes())
    rows = np.array(struct.unpack("<12f", raw[280:328])).reshape(3, 4)
    rows[0, 2] += shear * rows[2, 2]
    raw[280:328] = struct.pack("<12f", *rows.flatten())
    raw[254:256] = struct.pack("<h", 2)
    path.write_bytes(gzip.compress(bytes(raw)))
    path.with_suffix("").unlink()


@pytest.mark.parametrize("fmt", ["nrrd", "nii.gz"])
def test_sheared_grid_is_refused_with_the_fix(tmp_path, small_phantom, fmt, capfd):
    img = sitk.Cast(small_phantom.ct, sitk.sitkInt16)
    path = tmp_path / f"sheared.{fmt}"
    if fmt == "nrrd":
        d = np.asarray(img.GetDirection()).reshape(3, 3).copy()
        d[:, 2] = d[:, 2] + np.tan(np.radians(12)) * d[:, 0]
        img.SetDirection(tuple((d / np.linalg.norm(d, axis=0)).flatten()))
        sitk.WriteImage(img, str(path))
    else:
        _sheared_nifti(img, path, np.tan(np.radians(12)))
    rc = cli_main(["assess", str(path), "--out", str(tmp_path / "r"), "--quiet"])
    captured = capfd.readouterr()
    assert rc == 2 and "sheared voxel grid" in captured.err and "12.0" in captured.err
    assert "WARNING" not in captured.err and "itk" not in captured.err.lower()
    rep = json.loads((tmp_path / "r" / "report.json").read_text(encoding="utf-8"))
    assert rep["status"] == "error" and rep["error"]["code"] == "sheared_grid"


def test_outputs_overlay_an_oblique_input(tmp_path, small_phantom):
    """Every output file overlays the input: label centroids of .nii.gz and .seg.nrrd agree."""
    from c2net.assess import assess

    img = sitk.Image(small_phantom.ct)
    r = sitk.VersorTransform((0.3, 0.2, 1.0), np.radians(8)).GetMatrix()
    img.SetDirection(tuple((np.asarray(r).reshape(3, 3) @ np.asarray(img.GetDirection()).reshape(3, 3)).flatten()))
    out = tmp_path / "r"
    assess(img, out, threads=2, seed_lps_mm=_truth_centre(small_phantom, img))
    nii = sitk.ReadImage(str(out / "segmentation.nii.gz"))
    nrrd = sitk.ReadImage(str(out / "segmentation.seg.nrrd"))
    for label, nrrd_value in ((1, 1), (2, 2)):
        a, b = _centroid(nii, label), _centroid(nrrd, nrrd_value)
        assert np.linalg.norm(a - b) < 0.5, (label, a, b)


def _truth_centre(ph, moved: sitk.Image) -> list:
    """The phantom's C2 centre carried from its own grid onto the re-posed one (same voxels)."""
    c = np.asarray(ph.truth["c2_center_lps_mm"], dtype=float)
    idx = ph.ct.TransformPhysicalPointToContinuousIndex(tuple(c))
    return list(moved.TransformContinuousIndexToPhysicalPoint(idx))


def _centroid(img: sitk.Image, label: int) -> np.ndarray:
    if img.GetNumberOfComponentsPerPixel() > 1:   # a multi-layer seg.nrrd: take the first layer
        img = sitk.VectorIndexSelectionCast(img, 0)
    arr = sitk.GetArrayFromImage(img)
    kji = np.argwhere(arr == label).mean(axis=0)
    return np.asarray(img.TransformContinuousIndexToPhysicalPoint(tuple(float(v) for v in kji[::-1])))
