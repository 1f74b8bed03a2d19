"""RAS <-> LPS and IJKToRAS <-> SimpleITK geometry, checked against SimpleITK itself.

Every one of the 48 axis-aligned orientations (signed permutation matrices), with anisotropic
spacing, an off-centre origin and an asymmetric volume, so that a swapped axis or a lost sign
cannot cancel out.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import SimpleITK as sitk
from c2net import slicer_geometry as sg

F = np.diag([-1.0, -1.0, 1.0])


def _signed_permutations():
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            m = np.zeros((3, 3))
            for col, (row, s) in enumerate(zip(perm, signs)):
                m[row, col] = s
            yield m


ORIENTATIONS = list(_signed_permutations())


def test_there_are_48_distinct_orientations():
    assert len(ORIENTATIONS) == 48
    assert len({m.tobytes() for m in ORIENTATIONS}) == 48


def _ijk_to_ras(direction_ras: np.ndarray, spacing, origin_ras) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = direction_ras @ np.diag(spacing)
    m[:3, 3] = origin_ras
    return m


def test_point_flip_and_round_trip():
    p_ras = np.array([10.0, -20.0, 30.0])
    assert np.allclose(sg.ras_to_lps_points(p_ras), [-10.0, 20.0, 30.0])
    pts = np.random.default_rng(0).normal(size=(7, 3)) * 50
    assert np.allclose(sg.lps_to_ras_points(sg.ras_to_lps_points(pts)), pts)
    assert sg.ras_to_lps_points(pts).shape == (7, 3)
    with pytest.raises(ValueError):
        sg.ras_to_lps_points(np.zeros((3, 2)))


def test_patient_left_is_positive_x_in_lps_and_negative_in_ras():
    # A point 30 mm to the patient's left of the origin.
    left_lps = np.array([30.0, 0.0, 0.0])
    assert sg.lps_to_ras_points(left_lps)[0] == -30.0


def test_transform_conversion_matches_point_conversion():
    rng = np.random.default_rng(1)
    a = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    t = np.eye(4)
    t[:3, :3] = a
    t[:3, 3] = rng.normal(size=3) * 10
    p_ras = rng.normal(size=3) * 20
    moved_ras = (t @ np.append(p_ras, 1.0))[:3]
    t_lps = sg.ras_to_lps_transform(t)
    moved_lps = (t_lps @ np.append(sg.ras_to_lps_points(p_ras), 1.0))[:3]
    assert np.allclose(sg.lps_to_ras_points(moved_lps), moved_ras)
    assert np.allclose(sg.lps_to_ras_transform(t_lps), t)


@pytest.mark.parametrize("index", range(48))
def test_ijk_to_ras_matches_simpleitk_in_every_orientation(index):
    direction_ras = ORIENTATIONS[index]
    spacing = (0.37, 0.81, 2.5)
    origin_ras = (-101.3, 57.9, -233.1)
    ijk_to_ras = _ijk_to_ras(direction_ras, spacing, origin_ras)

    sp, origin_lps, direction = sg.sitk_geometry_from_ijk_to_ras(ijk_to_ras)
    size = (7, 5, 4)  # asymmetric
    img = sitk.Image(size, sitk.sitkUInt8)
    img.SetSpacing(sp)
    img.SetOrigin(origin_lps)
    img.SetDirection(direction)

    rng = np.random.default_rng(index)
    for ijk in [(0, 0, 0), (6, 4, 3), (1, 2, 3)] + [tuple(rng.uniform(-1, 8, 3)) for _ in range(3)]:
        lps_sitk = np.array(img.TransformContinuousIndexToPhysicalPoint([float(v) for v in ijk]))
        ras_slicer = sg.ijk_to_ras_points(ijk_to_ras, ijk)
        assert np.allclose(sg.ras_to_lps_points(ras_slicer), lps_sitk, atol=1e-9), (index, ijk)
        assert np.allclose(sg.ras_to_ijk_points(ijk_to_ras, ras_slicer), ijk, atol=1e-9)

    # and back: SimpleITK geometry -> the same IJKToRAS
    back = sg.ijk_to_ras_from_sitk_geometry(img.GetSpacing(), img.GetOrigin(), img.GetDirection())
    assert np.allclose(back, ijk_to_ras, atol=1e-12)


@pytest.mark.parametrize("index", range(0, 48, 5))
def test_array_voxel_lands_at_the_same_patient_point(index):
    """A marker voxel set through the [k, j, i] array (as arrayFromVolume gives it) sits at
    the same LPS point in SimpleITK as Slicer's IJKToRAS puts it in RAS."""
    direction_ras = ORIENTATIONS[index]
    ijk_to_ras = _ijk_to_ras(direction_ras, (0.5, 0.9, 1.7), (12.0, -40.0, 80.0))
    sp, origin, direction = sg.sitk_geometry_from_ijk_to_ras(ijk_to_ras)
    arr = np.zeros((6, 5, 9), dtype=np.uint8)  # [k, j, i]
    kji = (4, 1, 7)
    arr[kji] = 1
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(sp)
    img.SetOrigin(origin)
    img.SetDirection(direction)
    # find the marker through SimpleITK's own index space
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(img)
    centroid_lps = np.array(stats.GetCentroid(1))
    ijk = sg.array_index_to_ijk(kji)
    assert ijk == (7, 1, 4)
    assert np.allclose(sg.lps_to_ras_points(centroid_lps), sg.ijk_to_ras_points(ijk_to_ras, ijk))


def test_array_axis_letters_come_from_the_matrix():
    # LPS-ordered axial grid as Slicer shows it: i -> patient left, j -> posterior, k -> superior
    axial = _ijk_to_ras(np.diag([-1.0, -1.0, 1.0]), (0.5, 0.5, 2.0), (0, 0, 0))
    assert sg.array_axis_letters(axial) == "SPL"
    # a sagittal acquisition: i -> posterior, j -> inferior, k -> patient left
    sag = np.zeros((3, 3))
    sag[1, 0] = -1.0   # i along -A = posterior
    sag[2, 1] = -1.0   # j along -S = inferior
    sag[0, 2] = -1.0   # k along -R = left
    letters = sg.array_axis_letters(_ijk_to_ras(sag, (1, 1, 1), (0, 0, 0)))
    assert letters == "LIP"
    assert letters[0] != "S"  # array axis 0 is NOT axial here


def test_oblique_volume_round_trips():
    rng = np.random.default_rng(5)
    rot = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    ijk_to_ras = _ijk_to_ras(rot, (0.6, 0.7, 3.0), (5.0, 6.0, 7.0))
    sp, origin, direction = sg.sitk_geometry_from_ijk_to_ras(ijk_to_ras)
    assert np.allclose(sp, (0.6, 0.7, 3.0))
    img = sitk.Image((3, 3, 3), sitk.sitkUInt8)
    img.SetSpacing(sp)
    img.SetOrigin(origin)
    img.SetDirection(direction)
    p = img.TransformContinuousIndexToPhysicalPoint((1.5, 0.25, 2.0))
    assert np.allclose(sg.lps_to_ras_points(p), sg.ijk_to_ras_points(ijk_to_ras, (1.5, 0.25, 2.0)))


def test_degenerate_matrices_are_refused():
    bad = np.eye(4)
    bad[:3, 2] = 0.0
    with pytest.raises(ValueError, match="spacing"):
        sg.sitk_geometry_from_ijk_to_ras(bad)
    shear = np.eye(4)
    shear[0, 1] = 0.9
    with pytest.raises(ValueError, match="sheared"):
        sg.sitk_geometry_from_ijk_to_ras(shear)
    with pytest.raises(ValueError):
        sg.ijk_to_lps_matrix(np.eye(3))


def test_mpd_line_endpoints_convert_and_keep_length():
    ends_lps = np.array([[10.0, 20.0, 30.0], [13.0, 24.0, 30.0]])
    ends_ras = sg.line_endpoints_lps_to_ras(ends_lps)
    assert np.allclose(ends_ras[0], [-10.0, -20.0, 30.0])
    assert np.isclose(np.linalg.norm(ends_ras[1] - ends_ras[0]), 5.0)
    with pytest.raises(ValueError):
        sg.line_endpoints_lps_to_ras(ends_lps[:1])
