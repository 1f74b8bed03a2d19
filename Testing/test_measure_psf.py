"""The scanner model behind the measurement (issue #13): an anisotropic point-spread function
(reconstruction blur + the voxel grid, thick slices blurring more along them), the cortical
density read where the cortex is seen sharpest, and the numpy geometry of the canal region
(no plotting library in the measure path). Analytic tubes with exact answers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from analytic_shapes import make_tube, tube_ct
from c2net.measure import edges, measure_pedicle, widths
from c2net.measure.sampling import DIRS2

REPO = Path(__file__).resolve().parents[1]


def test_grid_variance_follows_the_slices():
    sp = np.array([0.8, 0.8, 2.0])
    d = np.eye(3)
    rays = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [np.sqrt(0.5), 0, np.sqrt(0.5)]])
    g = edges.grid_variance(d, sp, rays)
    # box (s^2/12) + linear interpolation (s^2/6) per grid axis
    assert np.allclose(g, [0.16, 0.16, 1.0, 0.58])
    # a scan stored with permuted / flipped axes: the slice axis is where the direction says
    perm = np.array([[0, 0, 1.0], [0, -1.0, 0], [1.0, 0, 0]])   # columns: index axes in LPS
    g2 = edges.grid_variance(perm, np.array([2.0, 0.8, 0.8]), rays)
    assert np.allclose(g2, g)


@pytest.mark.parametrize("mpd,cortex,hu,fwhm,spacing,tol", [
    # a 0.6 mm cortex on 1.8 mm slices read 4.91 (K 961 HU) with one isotropic blur
    (4.6, 0.6, (0.0, 1350.0, 330.0), 0.6, (0.8, 0.8, 1.8), 0.15),
    # the project phantom's acquisition (1 x 1 x 2 mm, 1 mm FWHM, cortex 1500 HU, 0.7 mm)
    (6.0, 0.7, (40.0, 1500.0, 350.0), 1.0, (1.0, 1.0, 2.0), 0.3),
])
def test_thick_slices_do_not_widen_the_mpd(mpd, cortex, hu, fwhm, spacing, tol):
    tube = make_tube("left", mpd_mm=mpd, height_mm=mpd + 2.5, cortex_mm=cortex)
    ct, mask = tube_ct(tube, spacing=spacing, supersample=2, seed=3, hu=hu, blur_mm=fwhm / 2.3548,
                       noise_hu=20.0)
    m = measure_pedicle(ct, mask, "left")
    assert abs(m.mpd_mm - mpd) <= tol
    # the density is read across the slices, where the cortex is sharpest
    assert m.cortical_density_hu >= 0.8 * hu[1]


def test_grid_kernel_is_the_voxel_box_and_the_interpolation_triangle():
    # along a grid axis: three boxes of the spacing (the voxel, and the linear interpolation's
    # triangle = box * box); along a diagonal the two axes' parts; variance sigma_k^2 + s^2/4
    w = edges.grid_widths(np.eye(3), np.array([1.0, 1.0, 2.0]),
                          np.array([[1.0, 0, 0], [np.sqrt(0.5), 0, np.sqrt(0.5)]]))
    assert np.allclose(w, [[1.0, 0, 0], [np.sqrt(0.5), 0, np.sqrt(2.0)]])
    k = edges.GridKernel(w, 0.2, np.array([0, 1]))
    x = np.tile(np.arange(-4.0, 4.0, 0.005), (2, 1))
    cdf, pdf = k(x)
    var = (pdf * x * x).sum(axis=1) * 0.005
    assert np.allclose(var, 0.04 + (w ** 2).sum(axis=1) / 4, atol=2e-3)
    assert np.allclose(cdf[:, 0], 0.0, atol=1e-6) and np.allclose(cdf[:, -1], 1.0, atol=1e-6)
    # flat-topped: along the grid axis the kernel is wider at half height than the Gaussian
    # of the same variance (2.355 sigma)
    half = (pdf[0] >= 0.5 * pdf[0].max()).sum() * 0.005
    assert half > 1.05 * 2.3548 * np.sqrt(var[0])
    # an oblique ray (cos a = 0.5) sees the kernel stretched twice
    k2 = edges.GridKernel(w[:1], 0.2, np.array([0]), np.array([0.5]))
    c2, _ = k2(2.0 * x[:1])
    assert np.allclose(c2, cdf[:1], atol=1e-3)


def test_thin_cortex_on_a_1mm_grid_reads_its_density():
    # a 0.6 mm cortex on a 1 mm grid: the grid's blur (voxel box and interpolation triangle) is
    # flat-topped, and fitted as a Gaussian of the same variance its flat top read as cortical
    # thickness: 1358 HU for 1600 and MPD +0.11 mm; with the grid's own kernel 1556 HU, +0.02
    mpd, hu = 4.6, (0.0, 1600.0, 330.0)
    tube = make_tube("left", mpd_mm=mpd, height_mm=mpd + 2.5, cortex_mm=0.6)
    ct, mask = tube_ct(tube, spacing=(1.0, 1.0, 1.0), supersample=3, seed=3, hu=hu, blur_mm=0.3 / 2.3548,
                       noise_hu=15.0)
    m = measure_pedicle(ct, mask, "left")
    assert m.cortical_density_hu >= 0.93 * hu[1]
    assert abs(m.mpd_mm - mpd) <= 0.07


def test_narrow_canal_is_measured_from_its_diameters_moments():
    # a 3.2 mm pedicle with a 1.2 mm canal on a 1 mm grid: each ray's moment window started at
    # the centre, on the opposite wall's blur (no canal plateau), and the walls read thick:
    # MPD 3.41 mm; from the diameters' zeroth and second moments (the blur's variance
    # subtracted) 3.22 mm
    mpd = 3.2
    tube = make_tube("left", mpd_mm=mpd, height_mm=mpd + 3.0, cortex_mm=1.0)
    ct, mask = tube_ct(tube, spacing=(1.0, 1.0, 1.0), supersample=3, seed=5, hu=(20.0, 1500.0, 300.0),
                       blur_mm=0.6 / 2.3548, noise_hu=15.0)
    m = measure_pedicle(ct, mask, "left")
    assert not m.no_medullary_canal
    assert abs(m.mpd_mm - mpd) <= 0.1


def test_star_polygon_region_is_exact_and_its_opening_drops_slits():
    r = np.full(72, 2.0)
    reg, ax = widths.region(r, DIRS2, 4.5)
    area = reg.sum() * widths.CANAL_PIXEL_MM ** 2
    inscribed = 0.5 * 72 * 4.0 * np.sin(2 * np.pi / 72)     # the 72-gon's area
    assert abs(area - inscribed) <= 0.01 * inscribed
    # an off-centre square-ish polygon: point tests agree with the half-planes
    th = np.arange(72) * 2 * np.pi / 72
    sq = 1.5 / np.maximum(np.abs(np.cos(th)), np.abs(np.sin(th)))
    x, y = np.meshgrid(np.linspace(-2, 2, 81), np.linspace(-2, 2, 81))
    inside = widths.star_inside(sq, DIRS2, x, y)
    clear = (np.abs(x) < 1.45) & (np.abs(y) < 1.45)
    outside = (np.abs(x) > 1.55) | (np.abs(y) > 1.55)
    assert inside[clear].all() and not inside[outside].any()
    # a 0.4 mm slit (two rays out to 4 mm) cannot hold the reader's 1 mm disk: opened away
    rs = r.copy()
    rs[[0, 1]] = 4.0
    raw, ax = widths.region(rs, DIRS2, 4.5)
    opened, _ = widths.region(rs, DIRS2, 4.5, widths.CANAL_OPENING_RADIUS_MM)
    xs = ax[np.nonzero(raw.any(axis=0))[0]]
    xo = ax[np.nonzero(opened.any(axis=0))[0]]
    assert xs.max() > 3.5 and xo.max() < 2.1


def test_polygon_centroid_of_an_offset_circle():
    # a circle of radius 2 centred at (0.7, -0.4), seen from the origin
    c = np.array([0.7, -0.4])
    b = DIRS2 @ c
    r = b + np.sqrt(b * b - (c @ c - 4.0))
    assert np.allclose(widths.polygon_centroid(r, DIRS2), c, atol=0.02)
    assert widths.polygon_centroid(np.full(72, np.nan), DIRS2) is None


def test_measure_path_imports_no_plotting_library():
    code = (
        "import sys; sys.path.insert(0, 'Testing');"
        "from analytic_shapes import make_tube, tube_ct;"
        "from c2net.measure import measure_pedicle;"
        "t = make_tube('left', mpd_mm=5.0, height_mm=7.5, cortex_mm=1.0);"
        "ct, m = tube_ct(t, spacing=(0.7, 0.7, 0.7), supersample=1, seed=1);"
        "measure_pedicle(ct, m, 'left');"
        "print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"
