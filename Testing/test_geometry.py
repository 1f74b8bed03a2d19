"""Tests of c2net.geometry: patient left stays left and millimetres stay millimetres through
all 48 axis orders/flips and oblique grids; round trips input grid -> canonical -> input grid.

The phantom is deliberately asymmetric: a bright ball in patient LEFT (+x LPS), a dimmer,
elongated box ANTERIOR-SUPERIOR (-y, +z) and a small marker posterior-right-inferior, so any
swap or flip of an axis moves at least one of them.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import SimpleITK as sitk
from c2net import geometry as geo

LEFT_BALL = np.array([12.0, 2.0, -3.0])  # LPS mm: patient left
AS_BOX = np.array([-4.0, -14.0, 12.0])  # anterior-superior, a little to the right
PRI_DOT = np.array([-15.0, 10.0, -12.0])  # posterior-right-inferior
BASE_SPACING = (0.7, 0.8, 0.9)  # all finer than 1 mm (coarser axes: see below)
BASE_SIZE = (70, 60, 52)  # i, j, k
BASE_ORIGIN = (-24.0, -23.0, -22.0)


def _smooth_step(d: np.ndarray, width: float = 0.6) -> np.ndarray:
    """1 inside (d < 0) -> 0 outside, over about +-``width`` mm."""
    return 1.0 / (1.0 + np.exp(np.clip(d / width, -50, 50)))


def phantom_hu(points: np.ndarray) -> np.ndarray:
    """Analytic HU at LPS points (..., 3): air, soft-tissue box, three asymmetric objects."""
    p = np.asarray(points, float)
    ball = _smooth_step(np.linalg.norm(p - LEFT_BALL, axis=-1) - 5.0)
    half = np.array([3.0, 4.0, 6.0])
    box = _smooth_step(np.max(np.abs(p - AS_BOX) / half, axis=-1) * 3.0 - 3.0)
    dot = _smooth_step(np.linalg.norm(p - PRI_DOT, axis=-1) - 3.0)
    body = _smooth_step(np.max(np.abs(p) - 20.0, axis=-1), 1.0)
    return -1000.0 + 1040.0 * body + 1200.0 * ball + 600.0 * box + 300.0 * dot


def grid_points(image: sitk.Image) -> np.ndarray:
    """LPS points of every voxel, shaped [k, j, i, 3] like the image's numpy array."""
    size = image.GetSize()
    kk, jj, ii = np.meshgrid(*[np.arange(s) for s in size[::-1]], indexing="ij")
    ijk = np.stack([ii.ravel(), jj.ravel(), kk.ravel()], axis=1)
    return geo.index_to_lps(image, ijk).reshape(size[::-1] + (3,))


def analytic_image(size, spacing, origin, direction=None) -> sitk.Image:
    ref = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    ref.SetSpacing([float(s) for s in spacing])
    ref.SetOrigin([float(o) for o in origin])
    ref.SetDirection(np.asarray(np.eye(3) if direction is None else direction, float).ravel().tolist())
    arr = phantom_hu(grid_points(ref)).astype(np.float32)
    return geo.copy_geometry(arr, ref)


@pytest.fixture(scope="module")
def base() -> sitk.Image:
    return analytic_image(BASE_SIZE, BASE_SPACING, BASE_ORIGIN)


def reorient(image: sitk.Image, perm, flips) -> sitk.Image:
    """The same physical content with index axis c = old axis ``perm[c]``, reversed if
    ``flips[c]``: the array is permuted/flipped and direction, spacing, origin follow."""
    arr_ijk = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    new = arr_ijk.transpose(perm)
    d_old = geo.direction_matrix(image)
    sp_old = np.asarray(image.GetSpacing())
    size_old = np.asarray(image.GetSize())
    first_old_index = np.zeros(3)
    cols = []
    for c, (axis, flip) in enumerate(zip(perm, flips)):
        if flip:
            new = np.flip(new, axis=c)
            first_old_index[axis] = size_old[axis] - 1
        cols.append(d_old[:, axis] * (-1.0 if flip else 1.0))
    out = sitk.GetImageFromArray(np.ascontiguousarray(new.transpose(2, 1, 0)))
    out.SetSpacing([float(sp_old[a]) for a in perm])
    out.SetDirection(np.stack(cols, axis=1).ravel().tolist())
    out.SetOrigin(geo.index_to_lps(image, first_old_index)[0].tolist())
    return out


def blob_centroid_lps(image: sitk.Image, lo: float, hi: float, near: np.ndarray,
                      radius: float = 12.0) -> np.ndarray:
    """Intensity-weighted centroid (LPS mm) of voxels with lo < HU < hi within ``radius``."""
    arr = sitk.GetArrayFromImage(image)
    pts = grid_points(image)
    mask = (arr > lo) & (arr < hi) & (np.linalg.norm(pts - near, axis=-1) < radius)
    w = (arr[mask] - lo)
    return (pts[mask] * w[:, None]).sum(axis=0) / w.sum()


ORIENTATIONS = [(perm, flips) for perm in itertools.permutations(range(3))
                for flips in itertools.product((False, True), repeat=3)]


def test_there_are_48_distinct_orientations(base):
    codes = {geo.orientation_code(reorient(base, p, f)) for p, f in ORIENTATIONS}
    assert len(ORIENTATIONS) == 48 and len(codes) == 48


def test_reorient_helper_keeps_physical_content(base):
    img = reorient(base, (2, 0, 1), (True, False, True))
    pts = grid_points(img)
    np.testing.assert_allclose(sitk.GetArrayFromImage(img), phantom_hu(pts), atol=1e-3)


@pytest.fixture(scope="module")
def canonical_base(base) -> sitk.Image:
    return geo.to_canonical(base, 1.0)


@pytest.mark.parametrize("perm,flips", ORIENTATIONS,
                         ids=[f"p{''.join(map(str, p))}-f{''.join('1' if x else '0' for x in f)}"
                              for p, f in ORIENTATIONS])
def test_48_orientations_land_in_the_same_canonical_place(base, canonical_base, perm, flips):
    img = reorient(base, perm, flips)
    can = geo.to_canonical(img, 1.0)
    assert can.GetDirection() == tuple(np.eye(3).ravel())
    assert can.GetSpacing() == (1.0, 1.0, 1.0)
    # the same canonical grid and the same voxel values whatever the input's axis order
    assert can.GetSize() == canonical_base.GetSize()
    np.testing.assert_allclose(can.GetOrigin(), canonical_base.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(sitk.GetArrayFromImage(can), sitk.GetArrayFromImage(canonical_base),
                               atol=0.5)
    ball = blob_centroid_lps(can, 300.0, 3000.0, LEFT_BALL)
    box = blob_centroid_lps(can, -100.0, 900.0, AS_BOX, radius=7.0)
    np.testing.assert_allclose(ball, LEFT_BALL, atol=0.5)
    np.testing.assert_allclose(box, AS_BOX, atol=0.5)
    assert ball[0] > 8.0  # patient left is +x
    # canonical array axes: [S, P, L]; the left ball sits at a high axis-2 index
    k, j, i = np.round(geo.lps_to_index(can, LEFT_BALL)[0][::-1]).astype(int)
    arr = sitk.GetArrayFromImage(can)
    assert arr[k, j, i] > 1000.0
    mirrored = geo.lps_to_index(can, LEFT_BALL * np.array([-1.0, 1.0, 1.0]))[0]
    assert mirrored[0] < i and arr[tuple(np.round(mirrored[::-1]).astype(int))] < 500.0


@pytest.mark.parametrize("axis", [(0.0, 0.0, 1.0), (1.0, 0.0, 0.0), (1.0, 1.0, 1.0)])
def test_oblique_20_degrees_keeps_left_and_positions(axis):
    rot = sitk.VersorTransform(tuple(float(a) for a in axis), float(np.radians(20.0)))
    direction = np.asarray(rot.GetMatrix()).reshape(3, 3)
    # an oblique grid around the same content (origin chosen so the box covers it)
    size = (64, 64, 56)
    spacing = (0.8, 0.75, 0.9)
    centre_index = (np.asarray(size) - 1) / 2.0
    origin = -direction @ (centre_index * np.asarray(spacing))
    img = analytic_image(size, spacing, origin, direction)
    assert geo.obliquity_deg(img) == pytest.approx(20.0, abs=0.5) or axis == (1.0, 1.0, 1.0)
    can = geo.to_canonical(img, 1.0)
    np.testing.assert_allclose(blob_centroid_lps(can, 300.0, 3000.0, LEFT_BALL), LEFT_BALL,
                               atol=0.5)
    np.testing.assert_allclose(blob_centroid_lps(can, -100.0, 900.0, AS_BOX, radius=7.0),
                               AS_BOX, atol=0.5)
    # canonical voxels hold the analytic value of their own LPS point (inside the old grid)
    pts = grid_points(can)
    ijk = geo.lps_to_index(img, pts.reshape(-1, 3)).reshape(pts.shape)
    inside = np.all((ijk > 2) & (ijk < np.asarray(size) - 3), axis=-1)
    err = np.abs(sitk.GetArrayFromImage(can) - phantom_hu(pts))[inside]
    assert np.median(err) < 5.0 and np.percentile(err, 99) < 150.0


def _labels(image: sitk.Image) -> sitk.Image:
    """Label 1: a 10 mm ball around the left ball; 2: a 16 mm cube anterior-superior
    (organ-sized, so a 1 mm nearest-neighbour round trip can keep Dice > 0.95)."""
    pts = grid_points(image)
    lab = np.zeros(pts.shape[:3], np.uint8)
    lab[np.linalg.norm(pts - LEFT_BALL, axis=-1) < 10.0] = 1
    lab[np.max(np.abs(pts - np.array([-6.0, -12.0, 12.0])), axis=-1) < 8.0] = 2
    return geo.copy_geometry(lab, image)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


@pytest.mark.parametrize("perm,flips,tilt", [((0, 1, 2), (False, False, False), 0.0),
                                             ((2, 0, 1), (True, False, True), 0.0),
                                             ((1, 2, 0), (False, True, False), 20.0)])
def test_round_trip_input_to_canonical_and_back(base, perm, flips, tilt):
    img = reorient(base, perm, flips)
    if tilt:
        rot = sitk.VersorTransform((0.3, 1.0, 0.2), float(np.radians(tilt)))
        d = np.asarray(rot.GetMatrix()).reshape(3, 3) @ geo.direction_matrix(img)
        size = np.asarray(img.GetSize())
        centre = geo.index_to_lps(img, (size - 1) / 2.0)[0]
        origin = centre - d @ ((size - 1) / 2.0 * np.asarray(img.GetSpacing()))
        img = analytic_image(img.GetSize(), img.GetSpacing(), origin, d)
    labels = _labels(img)
    # label map: input -> canonical (nearest) -> input (nearest)
    lab_can = geo.to_canonical(labels, 1.0, interpolator="nearest")
    assert lab_can.GetPixelID() == labels.GetPixelID()
    back = sitk.GetArrayFromImage(geo.to_input_grid(lab_can, labels, "nearest"))
    orig = sitk.GetArrayFromImage(labels)
    for value in (1, 2):
        assert _dice(orig == value, back == value) > 0.95
    # the left ball is still label 1 on the patient's left after the trip
    ball_idx = np.argwhere(back == 1).mean(axis=0)[::-1]
    assert geo.index_to_lps(img, ball_idx)[0][0] > 8.0
    # intensities: linear both ways, small error away from the outer edge
    can = geo.to_canonical(img, 1.0)
    back_hu = sitk.GetArrayFromImage(geo.to_input_grid(can, img, "linear"))
    assert back_hu.shape == sitk.GetArrayFromImage(img).shape
    pts = grid_points(img)
    interior = np.max(np.abs(pts), axis=-1) < 18.0
    err = np.abs(back_hu - sitk.GetArrayFromImage(img))[interior]
    assert np.mean(err) < 15.0 and np.median(err) < 3.0


def test_to_input_grid_keeps_label_geometry(base):
    img = reorient(base, (2, 1, 0), (True, True, False))
    heat = geo.to_canonical(img, 1.0)
    back = geo.to_input_grid(heat, img)
    assert back.GetSize() == img.GetSize()
    np.testing.assert_allclose(back.GetOrigin(), img.GetOrigin())
    np.testing.assert_allclose(back.GetDirection(), img.GetDirection())
    np.testing.assert_allclose(back.GetSpacing(), img.GetSpacing())


@pytest.mark.parametrize("interpolator,dtype", [("linear", sitk.sitkFloat32),
                                                ("nearest", sitk.sitkUInt8)])
def test_to_input_grid_of_a_small_crop_equals_a_full_resample(base, interpolator, dtype):
    """Mapping a small canonical crop (a heat map, a label box) back onto an oblique, permuted
    input grid resamples only under the crop; the result must equal a whole-grid resample."""
    img = reorient(base, (1, 0, 2), (False, True, True))
    rng = np.random.default_rng(5)
    centre = np.asarray(img.TransformContinuousIndexToPhysicalPoint(
        [0.6 * s for s in img.GetSize()]))
    centre = centre + 0.3   # off the input's voxel lattice: no nearest-neighbour ties
    ref = geo.canonical_reference(img, 1.0, (centre - [6, 4, 5], centre + [5, 7, 4]))
    vals = rng.uniform(0, 3, size=ref.GetSize()[::-1])
    small = geo.copy_geometry(vals.astype(np.float32 if dtype == sitk.sitkFloat32 else np.uint8),
                              ref)
    fast = geo.to_input_grid(small, img, interpolator)
    full = geo.resample_like(small, img, interpolator, default_value=0.0)
    assert fast.GetSize() == img.GetSize() and fast.GetPixelID() == small.GetPixelID()
    np.testing.assert_allclose(fast.GetOrigin(), img.GetOrigin())
    np.testing.assert_allclose(fast.GetDirection(), img.GetDirection())
    a, b = sitk.GetArrayFromImage(fast), sitk.GetArrayFromImage(full)
    assert np.count_nonzero(a) > 0
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_index_lps_round_trip_and_agreement_with_simpleitk():
    rng = np.random.default_rng(3)
    rot = sitk.VersorTransform((0.2, -0.5, 1.0), 0.7)
    d = np.asarray(rot.GetMatrix()).reshape(3, 3)[:, [2, 0, 1]] * np.array([1, -1, 1])
    img = sitk.Image([30, 20, 10], sitk.sitkUInt8)
    img.SetSpacing((0.5, 1.25, 3.0))
    img.SetOrigin((12.0, -40.0, 7.5))
    img.SetDirection(d.ravel().tolist())
    ijk = rng.uniform(-5, 35, size=(50, 3))
    lps = geo.index_to_lps(img, ijk)
    np.testing.assert_allclose(geo.lps_to_index(img, lps), ijk, atol=1e-9)
    for idx in ([0, 0, 0], [29, 19, 9], [3, 7, 2]):
        expected = img.TransformIndexToPhysicalPoint(idx)
        np.testing.assert_allclose(geo.index_to_lps(img, idx)[0], expected, atol=1e-9)
        cont = img.TransformPhysicalPointToContinuousIndex(expected)
        np.testing.assert_allclose(geo.lps_to_index(img, expected)[0], cont, atol=1e-9)


def test_orientation_codes_match_itk_for_all_48(base):
    for perm, flips in ORIENTATIONS:
        img = reorient(base, perm, flips)
        itk_code = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(
            img.GetDirection())
        assert geo.orientation_code(img) == itk_code
    assert geo.orientation_code(base) == "LPS"
    flipped = sitk.Image([2, 2, 2], sitk.sitkUInt8)
    flipped.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    assert geo.orientation_code(flipped) == "RAS"
    sag = sitk.Image([2, 2, 2], sitk.sitkUInt8)
    sag.SetDirection(np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0]], float).ravel().tolist())
    assert geo.orientation_code(sag) == "PIR"


def test_obliquity():
    img = sitk.Image([2, 2, 2], sitk.sitkUInt8)
    assert geo.obliquity_deg(img) == pytest.approx(0.0)
    rot = sitk.VersorTransform((0.0, 0.0, 1.0), float(np.radians(12.0)))
    img.SetDirection(rot.GetMatrix())
    assert geo.obliquity_deg(img) == pytest.approx(12.0, abs=1e-6)


def test_physical_bounds(base):
    lo, hi = geo.physical_bounds(base)
    sp = np.asarray(BASE_SPACING)
    np.testing.assert_allclose(lo, np.asarray(BASE_ORIGIN) - sp / 2)
    np.testing.assert_allclose(hi, np.asarray(BASE_ORIGIN) + (np.asarray(BASE_SIZE) - 0.5) * sp)
    for perm, flips in ORIENTATIONS[::7]:
        lo2, hi2 = geo.physical_bounds(reorient(base, perm, flips))
        np.testing.assert_allclose(lo2, lo, atol=1e-9)
        np.testing.assert_allclose(hi2, hi, atol=1e-9)
    # oblique: the bounds are the box around the 8 rotated voxel-edge corners
    img = sitk.Image([10, 20, 30], sitk.sitkUInt8)
    img.SetSpacing((1.0, 0.5, 2.0))
    rot = sitk.VersorTransform((1.0, 0.0, 0.0), float(np.radians(30.0)))
    img.SetDirection(rot.GetMatrix())
    lo3, hi3 = geo.physical_bounds(img)
    corners = [img.TransformContinuousIndexToPhysicalPoint([a - 0.5, b - 0.5, c - 0.5])
               for a in (0, 10) for b in (0, 20) for c in (0, 30)]
    np.testing.assert_allclose(lo3, np.min(corners, axis=0), atol=1e-9)
    np.testing.assert_allclose(hi3, np.max(corners, axis=0), atol=1e-9)


def test_canonical_reference_covers_the_bounds(base):
    ref = geo.canonical_reference(base, 1.0)
    lo, hi = geo.physical_bounds(base)
    rlo, rhi = geo.physical_bounds(ref)
    assert np.all(rlo <= lo + 1e-6) and np.all(rhi >= hi - 1.0 - 1e-6)
    assert ref.GetSize() == tuple(int(np.ceil(v - 1e-6)) for v in (hi - lo))


def test_to_canonical_with_an_axis_coarser_than_1mm():
    img = analytic_image((50, 50, 12), (0.8, 0.8, 3.0), (-20.0, -20.0, -18.0))
    can = geo.to_canonical(img, 1.0)
    np.testing.assert_allclose(blob_centroid_lps(can, 300.0, 3000.0, LEFT_BALL), LEFT_BALL,
                               atol=1.0)


def _reference_crop(image: sitk.Image, centre, size_mm) -> np.ndarray:
    """canonical_crop computed another way: scipy's Gaussian (per axis, sigma from the
    spacing, edges repeated) on the voxel array, then linear interpolation at the canonical
    grid's points mapped into the image's continuous indices."""
    from scipy import ndimage

    c, half = np.asarray(centre, float), np.asarray(size_mm, float) / 2.0
    ref = geo.canonical_reference(image, 1.0, (c - half, c + half))
    arr = sitk.GetArrayFromImage(image).astype(np.float64)          # (k, j, i)
    sig = [0.4 * np.sqrt(max(1 - s * s, 0)) / s for s in image.GetSpacing()][::-1]
    sm = ndimage.gaussian_filter(arr, sig, mode="nearest", truncate=4.0)
    ijk = geo.lps_to_index(image, grid_points(ref).reshape(-1, 3))
    out = ndimage.map_coordinates(sm, ijk[:, ::-1].T, order=1, mode="nearest")
    inside = np.all((ijk >= -0.5) & (ijk < np.asarray(image.GetSize()) - 0.5), axis=1)
    out[~inside] = geo.AIR_HU
    return out.reshape(sitk.GetArrayViewFromImage(ref).shape)


@pytest.mark.parametrize("perm,flips", [((0, 1, 2), (False, False, False)),
                                        ((0, 1, 2), (True, True, False)),
                                        ((2, 0, 1), (False, True, True))])
def test_canonical_crop_smooths_and_samples_any_axis_order(base, perm, flips):
    """The one-pass separable crop of an axis-aligned grid (any axis order and flips) equals
    Gaussian smoothing then linear interpolation computed independently, inside the scan and
    where the crop hangs over its edge (air there), with patient left kept left."""
    img = reorient(base, perm, flips)
    assert geo._axis_permutation(img) is not None
    for centre in (LEFT_BALL, np.asarray(BASE_ORIGIN) + 4.0):     # inside; over the corner
        got = sitk.GetArrayFromImage(geo.canonical_crop(img, centre, (20, 18, 16)))
        want = _reference_crop(img, centre, (20, 18, 16))
        # the crop reads only the scan under it (+3 voxels): Gaussian tails near its faces
        # differ from the whole-volume reference by a fraction of a HU
        np.testing.assert_allclose(got, want, atol=2.0)
        assert np.mean(got <= geo.AIR_HU + 1e-3) == pytest.approx(
            np.mean(want <= geo.AIR_HU + 1e-3), abs=1e-9)


def test_canonical_crop_of_an_oblique_grid_still_smooths():
    """An oblique grid (no axis permutation) takes ITK's path: the ball stays in place."""
    rot = sitk.VersorTransform((0.0, 0.0, 1.0), float(np.radians(25.0))).GetMatrix()
    img = analytic_image(BASE_SIZE, BASE_SPACING, BASE_ORIGIN, np.asarray(rot).reshape(3, 3))
    assert geo._axis_permutation(img) is None
    crop = geo.canonical_crop(img, LEFT_BALL, (20, 20, 20))
    np.testing.assert_allclose(blob_centroid_lps(crop, 300.0, 3000.0, LEFT_BALL), LEFT_BALL,
                               atol=1.0)
