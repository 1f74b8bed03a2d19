"""The measurement's faster paths (issue #16) give the answers of the plain ones they replace:
the first significant peak found for all samples at once, the ray profiles sampled as one
contiguous coordinate block, several rings smoothed at once, the grid kernel built once per
distinct ray direction, the cortex fit reusing its edge-spread values."""

from __future__ import annotations

import numpy as np
import pytest
from c2net.measure import edges, widths
from c2net.measure.axis import section_basis
from c2net.measure.sampling import (
    DIRS2,
    RADII,
    SLAB_MM,
    SLAB_SAMPLES,
    LocalCT,
    ray_profiles,
    sample,
)
from scipy.special import ndtr


def _profiles(rng, n, S, ties=False):
    p = rng.normal(0.0, 1.0, (n, S)).cumsum(axis=1) * rng.uniform(20.0, 300.0)
    return np.round(p / 50.0) * 50.0 if ties else p


@pytest.mark.parametrize("trial", range(40))
def test_first_peak_for_all_samples_at_once_is_the_walks(trial):
    rng = np.random.default_rng(trial)
    p = _profiles(rng, int(rng.integers(1, 200)), int(rng.integers(2, 110)), ties=trial % 3 == 0)
    soft = rng.uniform(-100.0, 100.0) if trial % 2 else rng.uniform(-100.0, 300.0, p.shape[0])
    least = -np.inf if trial % 4 else rng.uniform(0.0, 400.0)
    peak, val = edges.find_peaks(p, soft, least)
    peak_w, val_w = edges._find_peaks_walk(p, soft, least)
    assert np.array_equal(peak, peak_w)
    assert np.array_equal(val, val_w, equal_nan=True)


def test_first_peak_of_a_plain_cortex():
    r = np.arange(60) * 0.1
    p = np.where((r > 2.0) & (r < 3.0), 1200.0, np.where(r <= 2.0, 250.0, 0.0))[None, :]
    peak, val = edges.find_peaks(p, 0.0)
    assert peak[0] == 21 and val[0] == 1200.0          # the first sample of the plateau
    nan = p.copy()
    nan[0, 50] = np.nan                                 # NaN profiles take the walk
    assert edges.find_peaks(nan, 0.0)[0][0] == 21


def test_ray_profiles_are_the_slab_mean_of_point_samples():
    import SimpleITK as sitk

    rng = np.random.default_rng(3)
    img = sitk.GetImageFromArray(rng.normal(300.0, 200.0, (40, 45, 50)).astype(np.float32))
    img.SetSpacing((0.5, 0.45, 0.7))
    img.SetOrigin((-12.0, -10.0, -14.0))
    img.SetDirection(tuple(np.linalg.qr(rng.normal(size=(3, 3)))[0].ravel()))
    crop = LocalCT(array=sitk.GetArrayFromImage(img), image=img)
    ax = rng.normal(size=3)
    ax /= np.linalg.norm(ax)
    u, v = section_basis(ax)
    centre = np.asarray(img.TransformContinuousIndexToPhysicalPoint((25.0, 22.0, 20.0)))
    centres = centre + np.outer(np.arange(-2.0, 2.01, 0.5), ax) + rng.normal(0.0, 0.2, (9, 3))
    got = ray_profiles(crop, centres, ax, u, v)
    dirs3 = DIRS2[:, 0:1] * u + DIRS2[:, 1:2] * v
    offs = (np.arange(SLAB_SAMPLES) - (SLAB_SAMPLES - 1) / 2.0) * (SLAB_MM / (SLAB_SAMPLES - 1))
    want = np.zeros_like(got)
    for o in offs:
        pts = centres[:, None, None, :] + o * ax + RADII[None, None, :, None] * dirs3[None, :, None, :]
        want += sample(img, crop.array, pts, -1000.0)
    want /= SLAB_SAMPLES
    assert got.shape == (9, len(DIRS2), len(RADII))
    assert np.allclose(got, want, atol=1e-3)           # the same trilinear samples (float32 CT)


def test_rings_smoothed_at_once_are_each_smoothed_on_its_own():
    rng = np.random.default_rng(5)
    rings = rng.uniform(1.0, 4.0, (5, 72))
    rings[1, 10:14] = np.nan
    rings[3, :] = np.nan
    rings[4, 70:] = np.nan
    for block in (rings, rings[[0, 2]]):               # with and without missing rays
        got = widths.smooth_circular(block)
        for row, g in zip(block, got):
            assert np.array_equal(g, widths.smooth_circular(row), equal_nan=True)


def test_grid_kernel_per_distinct_direction_is_each_rays_own():
    rng = np.random.default_rng(7)
    ax = rng.normal(size=3)
    ax /= np.linalg.norm(ax)
    u, v = section_basis(ax)
    d = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    w = edges.grid_widths(d, np.array([0.45, 0.45, 1.25]), DIRS2[:, 0:1] * u + DIRS2[:, 1:2] * v)
    which = rng.integers(0, len(DIRS2), 300)
    cos_a = rng.uniform(0.5, 1.0, 300)
    x = rng.uniform(-3.0, 3.0, (300, 40))
    cdf, pdf = edges.GridKernel(w, 0.3, which, cos_a)(x)
    for k in rng.choice(300, 12, replace=False):      # each ray against a kernel of its own
        c1, p1 = edges.GridKernel(w[which[k]][None], 0.3, np.zeros(1, int), cos_a[k:k + 1])(x[k:k + 1])
        assert np.allclose(cdf[k], c1[0], atol=1e-8) and np.allclose(pdf[k], p1[0], atol=1e-7)


def test_cortex_fit_recovers_a_blurred_step_cortex():
    rng = np.random.default_rng(11)
    n = 200
    r = np.arange(50) * 0.1 + rng.uniform(0.0, 1.0, (n, 1))
    ri = r[:, :1] + 1.5
    ro = ri + rng.uniform(0.8, 2.0, (n, 1))
    bg = rng.uniform(-50.0, 50.0, n)
    prof = bg[:, None] + (1200.0 - bg[:, None]) * ndtr((ro - r) / 0.5) + (200.0 - 1200.0) * ndtr((ri - r) / 0.5)
    init = np.stack([np.full(n, 150.0), ri[:, 0] + 0.2, ro[:, 0] - 0.2, np.full(n, 1000.0), np.full(n, 0.7)], 1)
    th, rms = edges.fit_cortex_model(prof, r, r[:, 0], r[:, -1], bg, init)
    assert np.median(np.abs(th[:, 3] - 1200.0)) < 5.0 and np.median(np.abs(th[:, 4] - 0.5)) < 0.01
    assert np.median(np.abs(th[:, 2] - ro[:, 0])) < 0.01 and np.median(rms) < 1.0


def test_edges_with_the_least_peak_found_equal_those_with_it_given():
    rng = np.random.default_rng(13)
    r = RADII[None, :]
    n = 72 * 6
    wall = rng.uniform(2.0, 4.0, (n, 1))
    k = rng.uniform(600.0, 1500.0, (n, 1))
    prof = np.where(r < wall, 250.0, np.where(r < wall + 0.8, k, 20.0)) + rng.normal(0.0, 40.0, (n, len(RADII)))
    prof[::7, :] -= np.where(r < wall, 200.0, 0.0)[::7]   # fatty canals with a dense bump:
    prof[::7, 5:9] += 350.0                                # first peaks too low for cortex
    e = edges.ray_edges(prof, RADII, 0.0, 72, np.inf)
    assert e.min_peak_hu is not None
    from scipy import ndimage
    first, val = edges.find_peaks(ndimage.uniform_filter1d(prof, 3, axis=1, mode="nearest"), 0.0)
    assert ((first >= 0) & (val < e.min_peak_hu)).sum() > 10   # rays that walk on
    g = edges.ray_edges(prof, RADII, 0.0, 72, np.inf, e.min_peak_hu)
    for name in ("found", "dip", "peak_hu", "r_out_half", "r_in_half", "r_out", "r_in"):
        assert np.array_equal(getattr(e, name), getattr(g, name), equal_nan=True), name


def test_a_ring_without_gaps_is_returned_as_it_is():
    rng = np.random.default_rng(17)
    r = rng.uniform(1.0, 4.0, 72)
    n = r.size
    idx = np.arange(n)
    plain = np.interp(np.arange(n, dtype=float), np.concatenate([idx - n, idx, idx + n]).astype(float),
                      np.concatenate([r] * 3))
    out, closed = widths.fill_gaps(r)
    assert closed and np.array_equal(out, plain) and out is not r
    r[[5, 6, 40]] = np.nan
    out, closed = widths.fill_gaps(r)
    assert closed and np.isfinite(out).all() and out[5] > 0


def test_edges_at_another_density_reuse_the_half_way_edges():
    rng = np.random.default_rng(19)
    r = RADII[None, :]
    n = 72 * 4
    wall = rng.uniform(2.0, 4.0, (n, 1))
    prof = np.where(r < wall, 250.0, np.where(r < wall + 0.6, 1100.0, 20.0)) + rng.normal(0.0, 30.0, (n, len(RADII)))
    e0 = edges.ray_edges(prof, RADII, 0.0, 72, np.inf)
    for k in (900.0, 1400.0):
        a = edges.ray_edges(prof, RADII, 0.0, 72, k, like=e0)
        b = edges.ray_edges(prof, RADII, 0.0, 72, k)
        assert np.isfinite(a.r_out).sum() > n // 2
        for name in ("found", "dip", "r_out_half", "r_in_half", "r_out", "r_in", "plateau_hu", "r_in_rise"):
            assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name


def test_a_sweeps_sections_are_those_made_one_at_a_time():
    from analytic_shapes import make_tube, tube_ct
    from c2net.measure import pedicle as ped
    from c2net.measure.axis import crop_to_mask, mask_points, pedicle_axis_from_mask
    from c2net.measure.sampling import local_ct

    tube = make_tube("left", mpd_mm=5.0, height_mm=7.0, cortex_mm=0.8)
    ct, mask = tube_ct(tube, spacing=(0.5, 0.5, 0.5), seed=3, blur_mm=0.4, noise_hu=20.0)
    pts = mask_points(crop_to_mask(mask), "left", ct)
    axis, centroid = pedicle_axis_from_mask(pts, "left")
    t = np.arange(-4.0, 4.01, 0.5)
    centres = centroid + np.outer(t, axis)
    crop = local_ct(ct, centres, margin_mm=RADII[-1] + 6.0)
    sw = ped._sweep(crop, axis, centres, t)
    assert sum(s.closed for s in sw.sections) >= 5 and np.isfinite(sw.blur_k) and np.isfinite(sw.cortex_hu)
    u, v = section_basis(axis)
    prof = ray_profiles(crop, centres, axis, u, v).reshape(-1, len(RADII))
    e = edges.ray_edges(prof, RADII, sw.soft_hu, len(DIRS2), sw.cortex_hu)
    canc = e.plateau_hu[e.dip]
    canc = float(np.median(canc[np.isfinite(canc)]))
    gv = edges.grid_variance(np.asarray(crop.image.GetDirection()), np.asarray(crop.image.GetSpacing()),
                             DIRS2[:, 0:1] * u + DIRS2[:, 1:2] * v)
    for n, s in enumerate(sw.sections):
        sl = slice(n * len(DIRS2), (n + 1) * len(DIRS2))
        one = ped._section(float(t[n]), centres[n], e, sl, prof[sl], sw.cortex_hu, 0.5 * (canc + sw.cortex_hu),
                           (gv + sw.blur_k ** 2, canc))
        assert one.closed == s.closed and one.solid == s.solid
        for name in ("r_out", "r_in", "r_out_half", "r_in_half", "r_in_canal"):
            assert np.array_equal(getattr(one, name), getattr(s, name), equal_nan=True), name
        assert np.array_equal(one.width, s.width, equal_nan=True)
