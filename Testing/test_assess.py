"""End to end: phantom -> c2net assess -> report files; refusals; atomic output; batch.

These use the shipped models in models/ (ONNX Runtime, CPU) on small phantoms.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from c2net import DISCLAIMER
from c2net.assess import assess, remeasure
from c2net.batch import Case, read_manifest, run_batch
from c2net.cli import main as cli_main
from c2net.errors import C2NetError, LocalisationError
from c2net.geometry import offset_in, on_full_grid
from c2net.phantom import make_phantom
from c2net.progress import parse_line


@pytest.fixture(scope="module")
def phantom_dir(neck_phantom_dir) -> Path:
    return neck_phantom_dir   # conftest: seed 11, 0.8 x 0.8 x 1.0 mm, RAI, MPD 6.2 / 3.4


@pytest.fixture(scope="module")
def assessed(phantom_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("as") / "report"
    result = assess(phantom_dir / "ct.nii.gz", out, threads=2)
    return result, out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_assessment_is_ok_and_sides_are_right(assessed, phantom_dir):
    result, _ = assessed
    truth = json.loads((phantom_dir / "truth.json").read_text())
    assert result.status == "ok"
    for side in ("left", "right"):
        sa = result.sides[side]
        t = truth["sides"][side]
        assert sa.measurement is not None and sa.prediction is not None
        # patient side is right: the isthmus found is the truth's isthmus of that side
        dist = np.linalg.norm(np.subtract(sa.measurement.isthmus_center_lps_mm, t["isthmus_center_lps_mm"]))
        assert dist < 4.0, (side, dist)
        assert abs(sa.measurement.mpd_mm - t["mpd_mm"]) < 1.0
        assert 0.0 <= sa.prediction.p_high_risk <= 1.0
    assert result.sides["left"].verdict_mpd == "low_risk"
    assert result.sides["right"].verdict_mpd == "high_risk"


def test_report_files_present_and_consistent(assessed, phantom_dir):
    result, out = assessed
    names = {"report.json", "report.csv", "report.html", "report.pdf", "segmentation.seg.nrrd",
             "segmentation.nii.gz", "attention.nrrd", "isthmus_left.gif", "isthmus_right.gif"}
    assert names <= {p.name for p in out.iterdir()}
    rep = json.loads((out / "report.json").read_text())
    assert rep["status"] == "ok" and rep["disclaimer"] == DISCLAIMER
    assert set(rep["timings_s"]) >= {"load", "locate", "segment", "measure", "classify", "explain", "total"}
    assert all(len(m["sha256"]) == 64 for m in rep["models"])
    with (out / "report.csv").open() as fh:
        rows = {r["side"]: r for r in csv.DictReader(fh)}
    for side in ("left", "right"):
        assert float(rows[side]["mpd_mm"]) == pytest.approx(rep["sides"][side]["mpd_mm"], abs=1e-3)
        assert rows[side]["verdict_mpd"] == rep["sides"][side]["verdict_mpd"]
    ct = sitk.ReadImage(str(phantom_dir / "ct.nii.gz"))
    nii = sitk.ReadImage(str(out / "segmentation.nii.gz"))        # input-sized, as ITK-SNAP wants
    assert nii.GetSize() == ct.GetSize()
    np.testing.assert_allclose(nii.GetOrigin(), ct.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(nii.GetDirection(), ct.GetDirection(), atol=1e-6)
    # the .seg.nrrd and the heat map cover the C2 region only, on the CT's own voxels
    for name in ("segmentation.seg.nrrd", "attention.nrrd"):
        img = sitk.ReadImage(str(out / name))
        offset = offset_in(img, ct)
        assert offset is not None, name
        assert np.prod(img.GetSize()) < np.prod(ct.GetSize()), name
    seg_nrrd = sitk.ReadImage(str(out / "segmentation.seg.nrrd"))
    assert seg_nrrd.GetMetaData("Segmentation_ReferenceImageExtentOffset") == \
        " ".join(str(v) for v in offset_in(seg_nrrd, ct))
    # the same labels at the same voxels in both files
    back = sitk.GetArrayFromImage(on_full_grid(seg_nrrd, ct))
    np.testing.assert_array_equal(back, sitk.GetArrayFromImage(nii))
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "segmentation.nii.gz")))
    assert set(np.unique(seg)) <= {0, 1, 2} and (seg == 1).any() and (seg == 2).any()
    html = (out / "report.html").read_text()
    assert "Research use only" in html


def test_input_untouched_and_cli_progress_lines(phantom_dir, tmp_path, capsys):
    before = _sha(phantom_dir / "ct.nii.gz")
    rc = cli_main(["assess", str(phantom_dir / "ct.nii.gz"), "--out", str(tmp_path / "r"),
                   "--progress-lines", "--threads", "2"])
    assert rc == 0
    lines = [parse_line(x) for x in capsys.readouterr().out.splitlines()]
    stages = {x["stage"] for x in lines if x and x["kind"] == "progress"}
    assert {"load", "locate", "segment", "measure", "classify", "report"} <= stages
    assert [x for x in lines if x and x["kind"] == "result"][-1]["status"] == "ok"
    assert _sha(phantom_dir / "ct.nii.gz") == before


def test_remeasure_from_segmentation(assessed):
    result, _ = assessed
    again = remeasure(result.ct, result.segmentation, threads=2)
    for side in ("left", "right"):
        assert again.sides[side].measurement.mpd_mm == pytest.approx(
            result.sides[side].measurement.mpd_mm, abs=1e-6)


def test_missing_input_gives_exit_2_and_error_report(tmp_path, capsys):
    rc = cli_main(["assess", str(tmp_path / "nope.nii.gz"), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and "error:" in err and "hint:" in err and "Traceback" not in err
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    assert rep["status"] == "error" and rep["error"]["code"] and rep["error"]["hint"]


def test_c2_not_in_field_of_view_is_refused(tmp_path):
    ph = make_phantom(seed=3, spacing_mm=(1.0, 1.0, 1.0), fov="c1_c4")
    # keep only the top 12 mm: above C2
    size = list(ph.ct.GetSize())
    top = sitk.RegionOfInterest(ph.ct, [size[0], size[1], 12], [0, 0, size[2] - 12])
    with pytest.raises(LocalisationError):
        assess(top, tmp_path / "r", threads=2)
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    assert rep["status"] == "error" and rep["error"]["code"].startswith("c2_")


def test_atomic_output_on_failure_midway(phantom_dir, tmp_path, monkeypatch):
    import c2net.classify

    def boom(*a, **k):
        raise RuntimeError("simulated crash in the classifier")

    monkeypatch.setattr(c2net.classify, "predict_risk", boom)
    out = tmp_path / "r"
    with pytest.raises(RuntimeError):
        assess(phantom_dir / "ct.nii.gz", out, threads=2)
    assert not out.exists()


def test_existing_output_is_not_overwritten(phantom_dir, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(C2NetError, match="not empty|exists"):
        assess(phantom_dir / "ct.nii.gz", out, threads=2)
    assert (out / "keep.txt").read_text() == "precious"


def test_batch_isolates_failures_and_resumes(phantom_dir, tmp_path, monkeypatch):
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not an image")
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"case_id,input\ngood,{phantom_dir / 'ct.nii.gz'}\nbroken,{bad}\n")
    cases = read_manifest(str(manifest))
    rows = run_batch(cases, str(tmp_path / "cohort"), show_progress=False)
    status = {r["case_id"]: r["status"] for r in rows}
    assert status == {"good": "ok", "broken": "error"}
    with (tmp_path / "cohort" / "failures.csv").open() as fh:
        assert [r["case_id"] for r in csv.DictReader(fh)] == ["broken"]
    # resume: the finished case is kept, only the failed one is run again
    import c2net.batch

    calls = []
    monkeypatch.setattr(c2net.batch, "run_case", lambda c, *a, **k: calls.append(c.case_id) or [])
    rows2 = run_batch(cases, str(tmp_path / "cohort"), resume=True, show_progress=False)
    assert calls == ["broken"] and [r["case_id"] for r in rows2] == ["good", "good"]


@pytest.mark.slow
def test_batch_on_a_local_dask_cluster(phantom_dir, tmp_path):
    pytest.importorskip("dask.distributed")
    cases = [Case("a", str(phantom_dir / "ct.nii.gz")), Case("b", str(tmp_path / "missing.nrrd"))]
    rows = run_batch(cases, str(tmp_path / "cohort"), workers=2, show_progress=False)
    assert {r["case_id"]: r["status"] for r in rows} == {"a": "ok", "b": "error"}
    assert json.loads((tmp_path / "cohort" / "batch.json").read_text())["engine"] == "dask"


def test_an_early_error_exits_cleanly_while_the_models_load(tmp_path, small_phantom):
    """The models load on a worker thread while the CT is read; a CT refused once read (a
    sheared voxel grid) must still end with exit 2 and its message - not abort the process on
    exit with ONNX Runtime half-way through creating a session ("terminate called without an
    active exception", exit 134)."""
    import gzip
    import struct
    import subprocess
    import sys

    nii = tmp_path / "ct.nii"
    sitk.WriteImage(sitk.Cast(small_phantom.ct, sitk.sitkInt16), str(nii))
    raw = bytearray(nii.read_bytes())
    rows = np.array(struct.unpack("<12f", raw[280:328])).reshape(3, 4)
    rows[0, 2] += 0.18 * rows[2, 2]                    # shear the sform
    raw[280:328] = struct.pack("<12f", *rows.flatten())
    sheared = tmp_path / "sheared.nii.gz"
    sheared.write_bytes(gzip.compress(bytes(raw)))
    for i in range(3):
        out = subprocess.run([sys.executable, "-m", "c2net", "assess", str(sheared), "--out",
                              str(tmp_path / f"out{i}"), "--quiet"],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 2, (out.returncode, out.stderr[-500:])
        assert "terminate called" not in out.stderr and "sheared" in out.stderr


def test_transverse_widths_follow_the_vertebra_when_the_head_is_turned(small_phantom):
    """Patient turned 30 degrees about the spine axis (the same voxels, rotated direction):
    the report's transverse widths run along the vertebra's left-right line, as `c2net
    measure` (measure_both) reads them, not along the scanner's x axis."""
    from c2net.measure import measure_both

    ph = small_phantom
    centre = np.asarray(ph.truth["c2_center_lps_mm"], float)
    t = np.radians(30.0)
    rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    posed = sitk.Image(ph.ct)
    posed.SetDirection((rot @ np.asarray(ph.ct.GetDirection()).reshape(3, 3)).ravel().tolist())
    posed.SetOrigin((centre + rot @ (np.asarray(ph.ct.GetOrigin()) - centre)).tolist())
    truth = sitk.GetArrayFromImage(ph.labels)
    labels = np.zeros_like(truth, dtype=np.uint8)
    labels[truth == 2], labels[truth == 3] = 1, 2
    seg = sitk.GetImageFromArray(labels)
    seg.CopyInformation(posed)
    report = remeasure(posed, seg, threads=2)
    reference = measure_both(posed, seg)
    for side in ("left", "right"):
        got, want = report.sides[side].measurement, reference[side]
        assert got.outer_width_transverse_mm == pytest.approx(want.outer_width_transverse_mm,
                                                               abs=0.15), side
        assert got.inner_width_transverse_mm == pytest.approx(want.inner_width_transverse_mm,
                                                               abs=0.15), side


def test_assess_command_start_up_imports_no_scipy_plotting_or_torch():
    """Issue #16: the `c2net assess` command's start-up (its module and the pipeline's) imports
    no SciPy (it loads on the models' worker thread while the CT is read), no plotting library
    and no torch: before, the trajectory options pulled the whole measurement package in."""
    import subprocess
    import sys

    code = ("import sys, c2net.cli, c2net.commands.assess, c2net.assess; "
            "print(sorted(m for m in ('scipy', 'matplotlib', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
