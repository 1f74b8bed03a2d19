"""Tests of the synthetic phantom generator (c2net.phantom) and `c2net phantom`."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk
from c2net import cli
from c2net.errors import InputError, OutputError
from c2net.geometry import index_to_lps, physical_bounds
from c2net.phantom import (
    LABELS,
    make_phantom,
    parse_direction,
    read_phantom,
    write_phantom,
)
from c2net.phantom_pedicle import (
    pedicle_implicit_lps,
    pedicle_outer_height_mm,
    pedicle_outer_width_mm,
)

SMALL = dict(spacing_mm=1.0, fov="c2_crop", direction="LPS")


def _section_min_diameter(side: dict, t: float, n_dirs: int = 180) -> float:
    """Smallest diameter of the outer section at t, found by bisection on the implicit shape.

    For each direction in the plane perpendicular to the axis, the chord through the section
    centre is bracketed and bisected on the sign of the implicit function (independent of the
    width formula); the minimum over directions of the chord length is the section's minimum
    diameter (the section is centrally symmetric, so centre chords suffice).
    """
    c = np.asarray(side["isthmus_center_lps_mm"]) + t * np.asarray(side["axis_lps"])
    u = np.asarray(side["mpd_direction_lps"])
    v = np.asarray(side["height_direction_lps"])
    phis = np.linspace(0, np.pi, n_dirs, endpoint=False)
    dirs = np.cos(phis)[:, None] * u + np.sin(phis)[:, None] * v
    lo = np.zeros(n_dirs)
    hi = np.full(n_dirs, 30.0)
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        inside_pos = pedicle_implicit_lps(side, c + mid[:, None] * dirs) < 0
        inside_neg = pedicle_implicit_lps(side, c - mid[:, None] * dirs) < 0
        inside = inside_pos & inside_neg
        lo = np.where(inside, mid, lo)
        hi = np.where(inside, hi, mid)
    return float(np.min(2 * lo))


def test_deterministic_with_seed():
    a = make_phantom(3, **SMALL)
    b = make_phantom(3, **SMALL)
    c = make_phantom(4, **SMALL)
    assert np.array_equal(sitk.GetArrayFromImage(a.ct), sitk.GetArrayFromImage(b.ct))
    assert np.array_equal(sitk.GetArrayFromImage(a.labels), sitk.GetArrayFromImage(b.labels))
    assert a.truth == b.truth
    assert a.truth["sides"]["left"]["mpd_mm"] != c.truth["sides"]["left"]["mpd_mm"]


def test_given_mpd_does_not_change_anatomy_of_other_side():
    a = make_phantom(5, mpd_left_mm=4.0, **SMALL)
    b = make_phantom(5, mpd_left_mm=7.0, **SMALL)
    ra, rb = a.truth["sides"]["right"], b.truth["sides"]["right"]
    assert ra["mpd_mm"] == rb["mpd_mm"]
    assert ra["axis_lps"] == rb["axis_lps"]
    assert a.truth["sides"]["left"]["mpd_mm"] == 4.0
    assert b.truth["sides"]["left"]["mpd_mm"] == 7.0


def test_truth_schema_and_labels(small_phantom):
    tr = small_phantom.truth
    assert tr["schema"] == "c2net-phantom-truth" and tr["schema_version"] == 1
    assert tr["labels"]["c2"] == 1 and tr["labels"]["pedicle_left"] == 2
    assert tr["labels"]["pedicle_right"] == 3 and tr["labels"]["c1"] == 4 and tr["labels"]["c3"] == 5
    assert tr["labels"] == LABELS
    assert tr["sides"]["left"]["mpd_mm"] == 6.0 and tr["sides"]["right"]["mpd_mm"] == 3.5
    json.dumps(tr)  # JSON-serialisable
    lab = sitk.GetArrayFromImage(small_phantom.labels)
    present = set(np.unique(lab).tolist())
    assert {0, 1, 2, 3, 4, 5} <= present
    assert small_phantom.labels.GetSize() == small_phantom.ct.GetSize()
    assert tr["c2_complete_in_fov"] is True
    for side in ("left", "right"):
        s = tr["sides"][side]
        assert s["inner_width_mm"] == pytest.approx(
            max(s["mpd_mm"] - 2 * s["cortical_thickness_mm"], 0.0), abs=1e-6)
        assert s["outer_height_mm"] > s["mpd_mm"]
        assert 20 <= s["medial_angle_deg"] <= 40 and 15 <= s["cranial_angle_deg"] <= 35
        assert 0.6 <= s["cortical_thickness_mm"] <= 1.6
        assert np.linalg.norm(s["axis_lps"]) == pytest.approx(1.0, abs=1e-5)
        assert abs(np.dot(s["axis_lps"], s["mpd_direction_lps"])) < 1e-5


def test_ct_looks_like_ct(small_phantom):
    a = sitk.GetArrayFromImage(small_phantom.ct)
    lab = sitk.GetArrayFromImage(small_phantom.labels)
    assert small_phantom.ct.GetPixelID() == sitk.sitkFloat32
    assert a.min() >= -1024 and a.max() <= 3071
    assert np.median(a[lab == 1]) > 250          # bone
    assert (a < -900).mean() > 0.05               # air around the neck
    soft = a[(lab == 0) & (a > -200) & (a < 200)]
    assert 0 < np.median(soft) < 90               # soft tissue near muscle/fat mix


@pytest.mark.parametrize("seed", range(12))
def test_narrowest_section_equals_mpd(seed):
    ph = make_phantom(seed, spacing_mm=2.0, fov="c2_crop", direction="LPS", noise=False)
    for side in ("left", "right"):
        s = ph.truth["sides"][side]
        shape = s["shape"]
        ts = np.linspace(-6, 6, 49)
        diam = [_section_min_diameter(s, t, 90) for t in ts]
        k = int(np.argmin(diam))
        assert abs(ts[k]) < 0.3, "the narrowest section must be at the isthmus (t=0)"
        fine = np.linspace(ts[k] - 0.25, ts[k] + 0.25, 11)
        best = min(_section_min_diameter(s, t, 360) for t in fine)
        assert best == pytest.approx(s["mpd_mm"], abs=0.05)
        assert pedicle_outer_width_mm(shape, 0.0) == pytest.approx(s["mpd_mm"], abs=1e-9)
        assert pedicle_outer_height_mm(shape, 0.0) == pytest.approx(s["outer_height_mm"], abs=1e-9)
        # the isthmus section is free of other bone, so the union does not change it
        assert s["isthmus_clearance_mm"] > 0.5
        # inner width along the MPD direction at t = 0
        c = np.asarray(s["isthmus_center_lps_mm"])
        u = np.asarray(s["mpd_direction_lps"])
        r = np.linspace(0, 6, 6001)
        inner = pedicle_implicit_lps(s, c + r[:, None] * u, inner=True) < 0
        half = r[inner].max() if inner.any() else 0.0
        assert 2 * half == pytest.approx(s["inner_width_mm"], abs=0.01)


ORIENTATIONS = ["LPS", "RAI", "ASL", "PIR",
                [0.98, 0.0, 0.2, 0.0, -1.0, 0.0, 0.2, 0.0, -0.98]]


@pytest.mark.parametrize("direction", ORIENTATIONS, ids=lambda d: d if isinstance(d, str) else "oblique")
def test_pedicle_labels_on_patient_side(direction):
    if not isinstance(direction, str):
        m = np.asarray(direction).reshape(3, 3)
        q, _ = np.linalg.qr(m)
        direction = (q * np.sign(np.diag(q))).ravel().tolist()
    ph = make_phantom(11, spacing_mm=(1.0, 0.9, 1.2), mpd_left_mm=5.0, mpd_right_mm=3.0,
                      fov="c2_crop", direction=direction, noise=False)
    assert np.allclose(np.asarray(ph.ct.GetDirection()), parse_direction(direction).ravel(), atol=1e-9)
    lab = sitk.GetArrayFromImage(ph.labels)
    x = {}
    for name in ("pedicle_left", "pedicle_right", "c2"):
        kji = np.argwhere(lab == LABELS[name])
        assert len(kji) > 10, name
        x[name] = index_to_lps(ph.labels, kji[:, ::-1].astype(float))[:, 0].mean()
    mid = ph.truth["c2_body_center_lps_mm"][0]
    assert x["pedicle_left"] > mid + 5 > mid - 5 > x["pedicle_right"]
    for side in ("left", "right"):
        assert (ph.truth["sides"][side]["isthmus_center_lps_mm"][0] > mid) == (side == "left")
    # the labelled voxels are inside the analytic tube's labelled segment
    from c2net.phantom import in_label_segment

    for side, name in (("left", "pedicle_left"), ("right", "pedicle_right")):
        kji = np.argwhere(lab == LABELS[name])
        pts = index_to_lps(ph.labels, kji[:, ::-1].astype(float))
        assert in_label_segment(ph.truth["sides"][side], pts).all()


def test_label_width_at_isthmus_matches_mpd():
    ph = make_phantom(2, spacing_mm=0.5, mpd_left_mm=6.0, mpd_right_mm=3.5, fov="c2_crop",
                      direction="LPS", noise=False, max_voxels=6e6)
    lab = sitk.GetArrayFromImage(ph.labels)
    for side, name in (("left", "pedicle_left"), ("right", "pedicle_right")):
        s = ph.truth["sides"][side]
        kji = np.argwhere(lab == LABELS[name])
        pts = index_to_lps(ph.labels, kji[:, ::-1].astype(float))
        d = pts - np.asarray(s["isthmus_center_lps_mm"])
        t = d @ np.asarray(s["axis_lps"])
        su = d @ np.asarray(s["mpd_direction_lps"])
        sv = d @ np.asarray(s["height_direction_lps"])
        slab = (np.abs(t) < 0.5) & (np.abs(sv) < 0.5)   # thin strip along the MPD direction
        width = su[slab].max() - su[slab].min()
        assert width == pytest.approx(s["mpd_mm"], abs=0.5 * 1.0 + 0.1)


def test_ct_bone_at_isthmus_reflects_width():
    """Bright cortex at both walls along the MPD line, cancellous inside for a wide pedicle."""
    ph = make_phantom(2, spacing_mm=0.5, mpd_left_mm=7.0, mpd_right_mm=3.0, fov="c2_crop",
                      direction="LPS", noise=False, max_voxels=6e6, cortical_thickness_mm=1.0)
    s = ph.truth["sides"]["left"]
    c = np.asarray(s["isthmus_center_lps_mm"])
    u = np.asarray(s["mpd_direction_lps"])
    r = np.linspace(-7, 7, 141)
    prof = np.array([ph.ct.EvaluateAtPhysicalPoint((c + ri * u).tolist(), sitk.sitkLinear)
                     for ri in r])
    assert prof[np.abs(r) < 1.0].mean() < prof.max() - 300   # cancellous dip in the middle
    assert prof[np.abs(r) > 5.5].mean() < 200                 # soft tissue outside
    above = r[prof > 0.5 * (prof.max() + 40)]
    assert above.max() - above.min() == pytest.approx(7.0, abs=1.5)


def test_write_read_and_refuse_overwrite(tmp_path, small_phantom):
    out = tmp_path / "case"
    paths = write_phantom(small_phantom, out)
    assert sorted(p.name for p in out.iterdir()) == ["ct.nii.gz", "labels.nii.gz", "truth.json"]
    back = read_phantom(out)
    assert np.array_equal(sitk.GetArrayFromImage(back.ct), sitk.GetArrayFromImage(small_phantom.ct))
    assert np.array_equal(sitk.GetArrayFromImage(back.labels),
                          sitk.GetArrayFromImage(small_phantom.labels))
    assert np.allclose(back.ct.GetDirection(), small_phantom.ct.GetDirection())
    assert np.allclose(back.ct.GetOrigin(), small_phantom.ct.GetOrigin(), atol=1e-4)
    assert back.truth["geometry"]["size"] == list(back.ct.GetSize())
    assert json.loads(open(paths["truth"]).read())["patient_id"] == small_phantom.truth["patient_id"]
    with pytest.raises(OutputError):
        write_phantom(small_phantom, out)
    write_phantom(small_phantom, out, overwrite=True)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(InputError, match="MPD"):
        make_phantom(0, mpd_left_mm=30.0, **SMALL)
    with pytest.raises(InputError, match="field of view"):
        make_phantom(0, fov="pelvis")
    with pytest.raises(InputError, match="orientation"):
        parse_direction("LPX")
    with pytest.raises(InputError, match="repeats"):
        parse_direction("LLS")
    with pytest.raises(InputError, match="spacing"):
        make_phantom(0, spacing_mm=(1.0, -1.0, 1.0))


def test_cli_single_case(tmp_path, capsys):
    out = tmp_path / "one"
    rc = cli.main(["phantom", str(out), "--seed", "4", "--spacing", "1.0", "1.0", "1.5",
                   "--mpd-left", "5.5", "--mpd-right", "2.5", "--direction", "RAI",
                   "--fov", "c2_crop"])
    assert rc == 0
    ph = read_phantom(out)
    assert ph.truth["sides"]["left"]["mpd_mm"] == 5.5
    assert np.allclose(ph.ct.GetSpacing(), (1.0, 1.0, 1.5))
    assert np.allclose(np.asarray(ph.ct.GetDirection()).reshape(3, 3), np.diag([-1, -1, -1]))
    lo, hi = physical_bounds(ph.ct)
    assert np.all(np.asarray(ph.truth["c2_bbox_lps_mm"][0]) >= lo)
    # refuses to write into the now non-empty folder
    rc = cli.main(["phantom", str(out), "--seed", "4", "--fov", "c2_crop"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "hint:" in err


def test_cli_bad_argument(tmp_path, capsys):
    rc = cli.main(["phantom", str(tmp_path / "x"), "--direction", "QQQ"])
    assert rc == 2
    assert "orientation" in capsys.readouterr().err
    rc = cli.main(["phantom", str(tmp_path / "y"), "--spacing", "1", "2"])
    assert rc == 2


def test_cli_cohort(tmp_path):
    out = tmp_path / "cohort"
    rc = cli.main(["phantom", "--cohort", "3", str(out), "--seed", "10", "--spacing", "1.2",
                   "--fov", "c2_crop", "--workers", "2"])
    assert rc == 0
    with open(out / "manifest.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3
    assert list(rows[0].keys())[:6] == ["patient_id", "ct", "labels", "truth", "mpd_left_mm",
                                        "mpd_right_mm"]
    assert len({r["patient_id"] for r in rows}) == 3
    for r in rows:
        ct = sitk.ReadImage(str(out / r["ct"]))
        lab = sitk.ReadImage(str(out / r["labels"]))
        truth = json.loads((out / r["truth"]).read_text())
        assert ct.GetSize() == lab.GetSize() and np.allclose(ct.GetOrigin(), lab.GetOrigin())
        assert truth["geometry"]["size"] == list(ct.GetSize())
        assert float(r["mpd_left_mm"]) == pytest.approx(truth["sides"]["left"]["mpd_mm"])


@pytest.mark.parametrize("seed", range(4))
def test_fov_edge_keeps_c2_and_cut_removes_part_of_it(seed):
    edge = make_phantom(seed, spacing_mm=1.5, fov="c2_edge", direction="random", noise=False)
    cut = make_phantom(seed, spacing_mm=1.5, fov="c2_cut", direction="random", noise=False)
    assert edge.truth["c2_complete_in_fov"] is True
    assert cut.truth["c2_complete_in_fov"] is False
    # C2 voxels in the label map agree with the flags: the edge case is within a few mm of a
    # border of the grid, the cut case has C2 voxels on a border face
    for ph, touches in ((edge, False), (cut, True)):
        lab = sitk.GetArrayFromImage(ph.labels)
        c2 = np.isin(lab, [1, 2, 3])
        faces = [c2[0], c2[-1], c2[:, 0], c2[:, -1], c2[:, :, 0], c2[:, :, -1]]
        assert any(f.any() for f in faces) == touches
    lab = sitk.GetArrayFromImage(edge.labels)
    kji = np.argwhere(np.isin(lab, [1, 2, 3]))
    gap = np.minimum(kji.min(0), np.asarray(lab.shape) - 1 - kji.max(0))
    assert gap.min() * 1.5 <= 12.0


def test_random_mode_varies_geometry():
    seen = set()
    for seed in range(6):
        ph = make_phantom(seed, spacing_mm=2.0, noise=False)
        seen.add((ph.truth["fov"], tuple(np.round(ph.ct.GetDirection(), 3))))
        rot = ph.truth["head_rotation_deg"]
        assert abs(rot["yaw"]) <= 10 and abs(rot["roll"]) <= 10
        # truth vectors include the head rotation: axis in LPS = C2 frame rotation of the
        # anatomical axis, whose angles are the anatomical ones
        f = ph.truth["c2_frame_lps"]
        R = np.column_stack([f["left"], f["posterior"], f["superior"]])
        for side in ("left", "right"):
            s = ph.truth["sides"][side]
            a = R.T @ np.asarray(s["axis_lps"])
            sx = 1 if side == "left" else -1
            assert np.degrees(np.arctan2(-sx * a[0], -a[1])) == pytest.approx(s["medial_angle_deg"], abs=1e-3)
    assert len(seen) >= 3
