"""Tests of c2net.report on a synthetic, asymmetric "Assess C2" result (no models, no pipeline).

The CT is stored with a permuted, flipped direction matrix (index i -> patient right, j ->
inferior, k -> anterior) so that any writer that ignores the geometry puts things on the wrong
side. The left pedicle (patient left, +x) and the right one differ in width, and a dense bead
sits at patient LEFT-ANTERIOR only, so pictures can be checked for orientation.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Optional, Tuple

import c2net
import c2net.report as report_pkg
import numpy as np
import pytest
import SimpleITK as sitk
import slicerio
from c2net.errors import C2NetError, OutputError
from c2net.geometry import index_to_lps, index_to_lps_matrix
from c2net.report import FILE_KEYS, write_report
from c2net.report.csv_report import COLUMNS
from c2net.report.figures import oblique_basis, side_views
from c2net.report.schema_check import validation_errors
from c2net.report.volume_checks import same_grid
from c2net.results import (
    Assessment,
    IsthmusSlices,
    PedicleMeasurement,
    RiskPrediction,
    SideAssessment,
)
from c2net.verdict import DecisionSettings, agreement, mpd_verdict, network_verdict
from PIL import Image

DIRECTION = np.column_stack([(-1.0, 0, 0), (0, 0, -1.0), (0, -1.0, 0)])   # det +1
SPACING = (0.5, 1.0, 0.5)
SIZE = (128, 32, 112)             # i: 64 mm (x), j: 32 mm (z), k: 56 mm (y)
BEAD_LPS = np.array([25.0, -15.0, 0.0])     # patient left, anterior


def _unit(v):
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def pedicle_frame(side: str):
    """(centre, axis, u (MPD direction), v) of a synthetic pedicle, LPS."""
    sx = 1.0 if side == "left" else -1.0
    centre = np.array([12.0 * sx, 2.0, 0.0])
    axis = _unit([-0.34 * sx, -0.94, 0.10])       # posterior -> anterior, converging medially
    x = np.array([1.0, 0, 0])
    u = _unit(x - (x @ axis) * axis)
    v = np.cross(axis, u)
    return centre, axis, u, v


def make_ct(width_mm: dict, height_mm: float = 8.0) -> Tuple[sitk.Image, sitk.Image]:
    """CT (HU float32) and pedicle labels (uint8: 1 left, 2 right) on the stored grid."""
    ref = sitk.Image(list(SIZE), sitk.sitkFloat32)
    ref.SetSpacing(SPACING)
    ref.SetDirection(DIRECTION.ravel().tolist())
    # choose the origin so that the volume is centred on LPS (0, 0, 0)
    centre_idx = (np.array(SIZE) - 1) / 2.0
    ref.SetOrigin((-(DIRECTION @ (np.array(SPACING) * centre_idx))).tolist())
    kk, jj, ii = np.meshgrid(*[np.arange(n) for n in SIZE[::-1]], indexing="ij")
    ijk = np.stack([ii.ravel(), jj.ravel(), kk.ravel()], axis=1)
    p = index_to_lps(ref, ijk)
    hu = np.full(len(p), 40.0, np.float32)
    labels = np.zeros(len(p), np.uint8)
    # vertebral body: ellipsoid anterior to the pedicles
    body = ((p[:, 0] / 14) ** 2 + ((p[:, 1] + 14) / 9) ** 2 + (p[:, 2] / 12) ** 2) <= 1
    hu[body] = 280.0
    for side, label in (("left", 1), ("right", 2)):
        c, a, u, v = pedicle_frame(side)
        d = p - c
        t = d @ a
        su, sv = d @ u, d @ v
        half_w = width_mm[side] / 2 * (1 + 0.012 * t ** 2)
        r = (su / half_w) ** 2 + (sv / (height_mm / 2)) ** 2
        tube = (r <= 1) & (np.abs(t) <= 12)
        inner = ((su / np.maximum(half_w - 0.8, 0.3)) ** 2
                 + (sv / (height_mm / 2 - 0.8)) ** 2 <= 1) & tube
        hu[tube] = 1300.0
        hu[inner] = 260.0
        labels[tube & (np.abs(t) <= 9)] = label
    hu[np.linalg.norm(p - BEAD_LPS, axis=1) <= 2.0] = 1800.0
    shape = SIZE[::-1]
    ct = sitk.GetImageFromArray(hu.reshape(shape))
    ct.CopyInformation(ref)
    seg = sitk.GetImageFromArray(labels.reshape(shape))
    seg.CopyInformation(ref)
    return ct, seg


def _axial_stack(image: sitk.Image, centre, interp, default, pixel) -> np.ndarray:
    """Five 1 mm axial 64x64 slices around ``centre`` (row -> posterior, column -> left)."""
    ref = sitk.Image([64, 64, 5], sitk.sitkUInt8)
    ref.SetSpacing([1.0, 1.0, 1.0])
    ref.SetOrigin((np.asarray(centre) - np.array([31.5, 31.5, 2.0])).tolist())
    return sitk.GetArrayFromImage(sitk.Resample(image, ref, sitk.Transform(), interp, default,
                                                pixel))


def make_assessment(width_mm: Optional[dict] = None, p_high: Optional[dict] = None,
                    status: str = "ok") -> Assessment:
    """A complete synthetic Assessment (status "ok"), or a failed one (status "error")."""
    settings = DecisionSettings()
    common = dict(
        warnings=["synthetic test case"],
        input={"path": "/data/phantom/case007.nii.gz", "format": "nifti",
               "patient_id": "PHANTOM-007", "study_instance_uid": "1.2.826.0.1.7",
               "series_instance_uid": "1.2.826.0.1.7.2", "series_description": "C-spine bone",
               "size": list(SIZE), "spacing_mm": list(SPACING)},
        settings=settings.to_dict(),
        models=[{"id": "c2net-unet", "kind": "segmentation", "version": "0.1.0",
                 "sha256": "a" * 64, "file": "models/unet.onnx"},
                {"id": "c2net-c3d", "kind": "classifier", "version": "0.1.0",
                 "sha256": "b" * 64, "file": "models/c3d.onnx"}],
        software={"c2net": c2net.__version__, "SimpleITK": sitk.Version.VersionString(),
                  "execution_provider": "CPUExecutionProvider"},
        timings_s={"load": 0.12, "segment": 0.8},
        created_utc="2026-01-02T03:04:05Z",
    )
    if status == "error":
        return Assessment(status="error",
                          error={"code": "c2_not_found", "message": "C2 was not found in the scan.",
                                 "hint": "Give a seed point on C2 (--seed X Y Z)."}, **common)
    width_mm = width_mm or {"left": 6.2, "right": 3.6}
    p_high = p_high or {"left": 0.12, "right": 0.91}
    ct, seg = make_ct(width_mm)
    att = np.zeros(SIZE[::-1], np.float32)
    sides = {}
    kk, jj, ii = np.meshgrid(*[np.arange(n) for n in SIZE[::-1]], indexing="ij")
    p = index_to_lps(ct, np.stack([ii.ravel(), jj.ravel(), kk.ravel()], 1)).reshape(
        SIZE[::-1] + (3,))
    for side in ("left", "right"):
        c, a, u, v = pedicle_frame(side)
        w = width_mm[side]
        unc = 0.2
        medial = float(np.degrees(np.arctan2(0.34, 0.94)))
        m = PedicleMeasurement(
            side=side, mpd_mm=w, mpd_direction_lps=tuple(u),
            mpd_endpoints_lps_mm=(tuple(c - w / 2 * u), tuple(c + w / 2 * u)),
            inner_width_mm=w - 1.6, outer_height_mm=8.0, inner_height_mm=6.4,
            isthmus_center_lps_mm=tuple(c), axis_lps=tuple(a), medial_angle_deg=medial,
            cranial_angle_deg=5.7, mpd_uncertainty_mm=unc,
            profile=[{"t_mm": -1.0, "outer_width_mm": w + 0.1, "inner_width_mm": w - 1.5},
                     {"t_mm": 0.0, "outer_width_mm": w, "inner_width_mm": w - 1.6}])
        hu = _axial_stack(ct, c, sitk.sitkLinear, -1024.0, sitk.sitkFloat32)
        mask = (_axial_stack(seg, c, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
                == (1 if side == "left" else 2)).astype(np.uint8)
        yy, xx = np.mgrid[0:64, 0:64]
        cam2 = np.exp(-((xx - 33) ** 2 + (yy - 30) ** 2) / (2 * 5.0 ** 2)).astype(np.float32)
        cam = np.repeat(cam2[None], 5, axis=0)
        slices = IsthmusSlices(side, hu.astype(np.float32),
                               [tuple(c + np.array([0, 0, dz])) for dz in (-2, -1, 0, 1, 2)],
                               1.0, mask)
        pred = RiskPrediction(side, p_high[side], (0.3, -0.2), 1.3, cam, "c2net-c3d@0.1.0")
        dist = np.linalg.norm((p - c)[..., :2], axis=-1)
        near = (np.abs(p[..., 2] - c[2]) <= 2.5) & (dist < 12)
        att[near] = np.maximum(att[near], np.exp(-dist[near] ** 2 / (2 * 4.0 ** 2)))
        vm = mpd_verdict(w, unc, settings.cutoff_mm)
        vn = network_verdict(p_high[side], settings.network_threshold)
        sides[side] = SideAssessment(side, m, pred, slices, vm, vn, agreement(vm, vn))
    att_img = sitk.GetImageFromArray(att)
    att_img.CopyInformation(ct)
    return Assessment(status="ok", localisation={"confidence": 0.97, "method": "synthetic"},
                      sides=sides, ct=ct, segmentation=seg, attention=att_img, **common)


# =============================================================================== tests

ALL_FILES = set(FILE_KEYS.values())


@pytest.fixture(scope="module")
def case():
    return make_assessment({"left": 4.9, "right": 3.6}, {"left": 0.35, "right": 0.28})


@pytest.fixture(scope="module")
def written(case, tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "case007"
    return case, out, write_report(case, out)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load_json(out: Path) -> dict:
    return json.loads((out / "report.json").read_text(encoding="utf-8"))


def test_all_files_written_and_listed(written):
    _, out, paths = written
    assert set(paths) == set(FILE_KEYS)
    assert {p.name for p in out.iterdir()} == ALL_FILES
    assert all(p.parent == out and p.stat().st_size > 0 for p in paths.values())
    # no temporary or backup folder left next to the output
    assert [p.name for p in out.parent.iterdir()] == [out.name]
    rep = _load_json(out)
    assert set(rep["files"]) == ALL_FILES - {"report.json"}
    for name, digest in rep["files"].items():
        assert _sha(out / name) == digest, name


def test_json_content_and_schema(written):
    case, out, _ = written
    rep = _load_json(out)
    assert validation_errors(rep) == []
    assert rep["status"] == "ok" and rep["error"] is None
    assert rep["schema_version"] == "1.0"
    assert rep["disclaimer"].startswith("Research use only")
    left, right = rep["sides"]["left"], rep["sides"]["right"]
    assert left["mpd_mm"] == 4.9 and right["mpd_mm"] == 3.6
    assert left["verdict_mpd"] == "borderline" and right["verdict_mpd"] == "high_risk"
    assert right["agreement"] == "disagree" and left["agreement"] == "borderline"
    assert left["isthmus_center_lps_mm"][0] > 0 > right["isthmus_center_lps_mm"][0]
    for key in ("inner_width_mm", "height_mm", "axis_lps", "medial_angle_deg",
                "cranial_angle_deg", "mpd_uncertainty_mm", "p_high_risk", "verdict_network"):
        assert left[key] is not None and right[key] is not None
    assert rep["settings"]["cutoff_mm"] == 4.78 and "Wu" in rep["settings"]["cutoff_source"]
    assert [m["sha256"] for m in rep["models"]] == ["a" * 64, "b" * 64]


def test_csv_matches_json(written):
    _, out, _ = written
    rep = _load_json(out)
    with open(out / "report.csv", newline="", encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert lines[0].split(",")[:3] == ["patient_id", "study_instance_uid", "series_instance_uid"]
    rows = list(csv.DictReader(lines))
    assert list(rows[0]) == COLUMNS
    assert [r["side"] for r in rows] == ["left", "right"]
    for row in rows:
        s = rep["sides"][row["side"]]
        for key in ("mpd_mm", "mpd_uncertainty_mm", "inner_width_mm", "height_mm",
                    "medial_angle_deg", "cranial_angle_deg", "p_high_risk"):
            assert float(row[key]) == s[key], key
        for i, axis in enumerate("xyz"):
            assert float(row[f"isthmus_center_{axis}_lps_mm"]) == s["isthmus_center_lps_mm"][i]
        for key in ("verdict_mpd", "verdict_network", "agreement"):
            assert row[key] == s[key]
        assert float(row["cutoff_mm"]) == rep["settings"]["cutoff_mm"]
        assert row["patient_id"] == "PHANTOM-007"
        assert row["classifier_model_id"] == "c2net-c3d@0.1.0"
        assert "c2net-unet@0.1.0" in row["model_ids"]
        assert row["disclaimer"].startswith("Research use only")


def test_seg_nrrd_opens_with_named_segments_on_input_geometry(written):
    case, out, _ = written
    seg = slicerio.read_segmentation(str(out / "segmentation.seg.nrrd"))
    names = {s["name"]: s for s in seg["segments"]}
    assert set(names) == {"C2 pedicle left", "C2 pedicle right"}
    # the pedicles' own box, on the CT's voxels: Slicer's extent offset says where it lies
    off = [int(v) for v in seg["referenceImageExtentOffset"]]
    expected = np.eye(4)
    expected[:3, :3] = index_to_lps_matrix(case.ct)
    expected[:3, 3] = case.ct.TransformIndexToPhysicalPoint(off)
    np.testing.assert_allclose(seg["ijkToLPS"], expected, atol=1e-6)
    vox = seg["voxels"]                                        # (i, j, k)
    assert all(o + n <= m for o, n, m in zip(off, vox.shape, case.ct.GetSize()))
    truth = sitk.GetArrayFromImage(case.segmentation).transpose(2, 1, 0)
    inside = truth[off[0]:off[0] + vox.shape[0], off[1]:off[1] + vox.shape[1],
                   off[2]:off[2] + vox.shape[2]]
    np.testing.assert_array_equal(vox, inside)
    assert np.count_nonzero(inside) == np.count_nonzero(truth)   # nothing left outside
    for side, code in (("left", "7771000"), ("right", "24028007")):
        s = names[f"C2 pedicle {side}"]
        term = s["terminology"]
        assert term["type"][1] == "78972004"                  # SNOMED-CT pedicle of vertebra
        assert term["typeModifier"][1] == code                 # laterality
        # the voxels of the segment named "left" lie in patient left (+x in LPS)
        ijk = np.argwhere(vox == s["labelValue"])
        xyz = ijk @ expected[:3, :3].T + expected[:3, 3]
        assert (np.sign(xyz[:, 0]) == (1 if side == "left" else -1)).all()
        lo = ijk.min(axis=0)
        hi = ijk.max(axis=0)
        assert list(s["extent"]) == [int(lo[0]), int(hi[0]), int(lo[1]), int(hi[1]),
                                     int(lo[2]), int(hi[2])]


def test_nifti_and_attention_on_input_grid(written):
    case, out, _ = written
    nii = sitk.ReadImage(str(out / "segmentation.nii.gz"))
    assert same_grid(nii, case.ct)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(nii),
                                  sitk.GetArrayFromImage(case.segmentation))
    att = sitk.ReadImage(str(out / "attention.nrrd"))
    assert att.GetPixelID() == sitk.sitkFloat32
    assert same_grid(att, case.ct)
    a = sitk.GetArrayFromImage(att)
    assert 0.0 <= a.min() and a.max() <= 1.0 and a.max() > 0.5
    np.testing.assert_array_equal(a, sitk.GetArrayFromImage(case.attention))


def test_gifs_have_five_frames(written):
    _, out, _ = written
    for side in ("left", "right"):
        with Image.open(out / f"isthmus_{side}.gif") as im:
            assert im.n_frames == 5
            assert im.info.get("loop") == 0


def test_html_self_contained_with_flags(written):
    _, out, _ = written
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<title>C2 pedicle screw assessment</title>" in html
    assert "Research use only \u2014 not a medical device" in html
    assert "PHANTOM-007" in html and "1.2.826.0.1.7.2" in html
    assert html.count("data:image/png;base64,") == 4           # views + strip per side
    assert "src=\"http" not in html and "<link" not in html and "<script" not in html
    assert 'class="borderline">BORDERLINE' in html
    assert 'class="alert">DISAGREE' in html
    assert "Wu et al. 2023" in html and "a" * 64 in html


def test_pdf_has_two_a4_pages(written):
    _, out, _ = written
    data = (out / "report.pdf").read_bytes()
    assert data.startswith(b"%PDF")
    boxes = re.findall(rb"/MediaBox \[ 0 0 ([0-9.]+) ([0-9.]+) \]", data)
    assert len(boxes) == 2                                     # two pages
    for w, h in boxes:                                         # A4: 595 x 842 pt
        assert abs(float(w) - 595.3) < 1 and abs(float(h) - 841.9) < 1
    assert "Research use only".encode("utf-16-be") in data     # document metadata


def test_error_assessment_writes_json_and_html_only(tmp_path):
    a = make_assessment(status="error")
    out = tmp_path / "failed"
    paths = write_report(a, out)
    assert set(paths) == {"json", "html"}
    assert {p.name for p in out.iterdir()} == {"report.json", "report.html"}
    rep = _load_json(out)
    assert validation_errors(rep) == []
    assert rep["status"] == "error" and rep["error"]["code"] == "c2_not_found"
    assert rep["files"] == {"report.html": _sha(out / "report.html")}
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "C2 was not found in the scan." in html and "--seed X Y Z" in html
    assert "Research use only" in html


@pytest.mark.parametrize("target", ["write_pdf_report", "write_attention_file"])
def test_failure_midway_leaves_nothing(case, tmp_path, monkeypatch, target):
    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(report_pkg, target, boom)
    out = tmp_path / "new"
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_report(case, out)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []

    # an existing report is never clobbered, even with overwrite=True
    old = tmp_path / "old"
    old.mkdir()
    (old / "report.json").write_text("previous")
    with pytest.raises(RuntimeError):
        write_report(case, old, overwrite=True)
    assert [p.name for p in old.iterdir()] == ["report.json"]
    assert (old / "report.json").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]


def test_refuses_non_empty_folder_unless_overwrite(tmp_path):
    a = make_assessment(status="error")        # fast to write
    out = tmp_path / "case"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError) as exc:
        write_report(a, out)
    assert exc.value.hint and "overwrite" in exc.value.hint
    assert (out / "notes.txt").read_text() == "keep me"
    (out / "report.pdf").write_text("a stale report of an earlier run")
    paths = write_report(a, out, overwrite=True)
    # only the report's own files are replaced: the user's notes stay, the stale PDF goes
    assert {p.name for p in out.iterdir()} == {"report.json", "report.html", "notes.txt"}
    assert (out / "notes.txt").read_text() == "keep me"
    assert paths["json"] == out.absolute() / "report.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case"]
    # an existing empty folder is fine without overwrite; a file is not a folder
    empty = tmp_path / "empty"
    empty.mkdir()
    write_report(a, empty)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError):
        write_report(a, tmp_path / "afile", overwrite=True)


def test_segmentation_off_grid_is_refused(tmp_path):
    a = make_assessment()
    shifted = sitk.Image(a.segmentation)
    shifted.SetOrigin([o + 1.0 for o in shifted.GetOrigin()])
    a.segmentation = shifted
    with pytest.raises(C2NetError, match="not on the input CT's grid"):
        write_report(a, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_schema_rejects_broken_reports(written):
    _, out, _ = written
    good = _load_json(out)
    assert validation_errors(good) == []

    def broken(mutate):
        d = json.loads(json.dumps(good))
        mutate(d)
        return validation_errors(d)

    assert broken(lambda d: d["sides"]["left"].update(verdict_mpd="maybe"))
    assert broken(lambda d: d["sides"].pop("right"))
    assert broken(lambda d: d["sides"]["left"].update(p_high_risk=1.5))
    assert broken(lambda d: d["sides"]["left"].pop("mpd_mm"))
    assert broken(lambda d: d.update(status="error"))                  # error must be set
    assert broken(lambda d: d.update(status="error", error={"code": "x", "message": "m"}))
    assert broken(lambda d: d["files"].update({"report.csv": "not-a-sha"}))
    assert broken(lambda d: d.pop("disclaimer"))
    assert broken(lambda d: d["sides"]["right"].update(isthmus_center_lps_mm=[1.0, 2.0]))
    assert broken(lambda d: d.update(status="error",
                                     error={"code": "c", "message": "m", "hint": None})) == []


def test_views_follow_patient_orientation(case):
    """Patient left on the image's right (radiological), anterior on top, on an oblique scan."""
    axial, oblique = side_views(case, "left")
    # the bead sits at patient LEFT-ANTERIOR of the left isthmus: image right, upper half
    r, c = np.unravel_index(np.argmax(axial.ct_hu), axial.ct_hu.shape)
    centre = (axial.ct_hu.shape[0] - 1) / 2
    assert c > centre and r < centre
    # the right pedicle (patient right) appears on the image's left of the left isthmus view
    cols_right = np.nonzero(axial.labels == 2)[1]
    cols_left = np.nonzero(axial.labels == 1)[1]
    assert cols_right.size and cols_left.size and cols_right.mean() < cols_left.mean()
    assert axial.edges == ("R", "L", "A", "P") and oblique.edges == ("R", "L", "S", "I")
    # oblique view: image right = patient left, image down = inferior, plane normal = axis
    axis = np.asarray(case.sides["left"].measurement.axis_lps)
    u, v = oblique_basis(axis)
    assert u[0] > 0.9 and v[2] < -0.9
    assert abs(np.dot(np.cross(u, v), axis)) > 0.999
    # the MPD line lies in the oblique plane and has the measured length
    assert oblique.mpd_in_plane
    length_mm = np.linalg.norm(oblique.mpd_px[1] - oblique.mpd_px[0]) * oblique.px_mm
    assert abs(length_mm - 4.9) < 1e-6


def test_report_does_not_modify_the_assessment(tmp_path):
    a = make_assessment()
    before = json.dumps(a.to_dict(), sort_keys=True)
    seg_before = sitk.GetArrayFromImage(a.segmentation).copy()
    write_report(a, tmp_path / "r")
    assert json.dumps(a.to_dict(), sort_keys=True) == before
    np.testing.assert_array_equal(sitk.GetArrayFromImage(a.segmentation), seg_before)
    assert not a.segmentation.GetMetaDataKeys() or "Segment0_Name" not in \
        a.segmentation.GetMetaDataKeys()


def test_output_folder_is_readable(written):
    _, out, _ = written
    assert os.stat(out).st_mode & 0o055 == 0o055


def test_one_side_not_measured(tmp_path):
    """A side that could not be measured is reported as such; the other side is complete."""
    a = make_assessment()
    a.sides["right"] = SideAssessment(
        "right", error={"code": "measurement_failed", "message": "no elongated pedicle found",
                        "hint": "Check the segmentation of the right pedicle."})
    out = tmp_path / "partial"
    paths = write_report(a, out)
    assert "gif_right" not in paths and "gif_left" in paths
    rep = _load_json(out)
    assert validation_errors(rep) == []
    assert rep["sides"]["right"]["error"]["code"] == "measurement_failed"
    assert rep["sides"]["right"]["verdict_mpd"] is None
    rows = list(csv.DictReader(open(out / "report.csv", newline="", encoding="utf-8")))
    right = [r for r in rows if r["side"] == "right"][0]
    assert right["mpd_mm"] == "" and right["side_error"] == "no elongated pedicle found"
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "not measured (see below)" in html
    assert ("Right: not assessed: no elongated pedicle found. What to do: Check the "
            "segmentation of the right pedicle.") in html
    assert html.count("data:image/png;base64,") == 2
