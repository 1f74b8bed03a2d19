"""The canal is read with rays from its own centre (issue #13, the reader's ray origin).

An eccentric canal: the tube's lateral half has a dense cortex around the canal, its medial
half is grey trabecular bone up to a faint wall, so the outline's centre lies in grey bone
beside the canal (as on VHM). Rays from the outline's centre read the section's medullary
plateau in that grey bone, and the half-way level between it and the faint wall lies out at
the wall: the canal took in the grey bone (inner transverse width 6.80 mm for 3.45 before).
From the canal's own centre the plateau is the canal's level (3.45 mm after).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from analytic_shapes import make_tube
from c2net import geometry
from c2net.measure import measure_pedicle, measure_trajectory

WIDTH, HEIGHT, WALL = 10.0, 8.5, 1.2
CANAL_SHIFT, CANAL_HALF_WIDTH, CANAL_HALF_HEIGHT = 2.05, 1.75, 2.2


def _eccentric_canal_ct(spacing=0.5, blur_mm=0.4, noise_hu=15.0, seed=5, soft=0.0, grey=460.0,
                        faint=600.0, cortex=950.0, canal=250.0):
    """(tube, ct, mask): an elliptic tube (WIDTH along ``width_dir``, HEIGHT across) whose
    wall is ``cortex`` on the lateral half (x > 0) and a faint ``faint`` wall on the medial
    half; inside it grey bone, and the canal (``canal`` HU, an ellipse of half-axes
    CANAL_HALF_WIDTH x CANAL_HALF_HEIGHT centred CANAL_SHIFT mm lateral of the axis, touching
    the lateral cortex). Exact partial volumes (2^3 supersampling), Gaussian blur, noise."""
    tube = make_tube("left", mpd_mm=HEIGHT, height_mm=WIDTH, cortex_mm=WALL)
    ax, wd = tube.axis, tube.width_dir
    hd = np.cross(ax, wd)
    n = int(np.ceil(30.0 / spacing))
    ref = sitk.Image([n] * 3, sitk.sitkFloat32)
    ref.SetSpacing([spacing] * 3)
    ref.SetOrigin((tube.center - spacing * (n - 1) / 2.0).tolist())
    offs = (np.arange(2) + 0.5) / 2 - 0.5
    sub = np.array([[a, b, c] for a in offs for b in offs for c in offs])
    jj, ii = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    vol = np.zeros((n, n, n), np.float32)
    msk = np.zeros((n, n, n), np.uint8)
    a, b = 0.5 * WIDTH, 0.5 * HEIGHT
    for k in range(n):
        ijk = np.stack([ii.ravel(), jj.ravel(), np.full(ii.size, k)], 1).astype(float)
        acc = np.zeros(len(ijk))
        macc = np.zeros(len(ijk))
        for o in sub:
            d = geometry.index_to_lps(ref, ijk + o) - tube.center
            t, x, y = d @ ax, d @ wd, d @ hd
            along = np.abs(t) <= 12.0
            outer = ((x / a) ** 2 + (y / b) ** 2 <= 1) & along
            inner = ((x / (a - WALL)) ** 2 + (y / (b - WALL)) ** 2 <= 1) & along
            can = (((x - CANAL_SHIFT) / CANAL_HALF_WIDTH) ** 2 + (y / CANAL_HALF_HEIGHT) ** 2 <= 1) & inner
            acc += np.where(can, canal, np.where(inner, grey, np.where(outer, np.where(x > 0, cortex, faint), soft)))
            macc += outer & (np.abs(t) <= 7.0)
        vol[k] = (acc / len(sub)).reshape(n, n)
        msk[k] = (macc / len(sub) >= 0.5).reshape(n, n)
    img = sitk.GetImageFromArray(vol)
    img.CopyInformation(ref)
    img = sitk.SmoothingRecursiveGaussian(img, [blur_mm] * 3)
    arr = sitk.GetArrayFromImage(img) + np.random.default_rng(seed).normal(0, noise_hu, vol.shape).astype(np.float32)
    ct = sitk.GetImageFromArray(arr)
    ct.CopyInformation(ref)
    mask = sitk.GetImageFromArray(msk)
    mask.CopyInformation(ref)
    return tube, ct, mask


def test_eccentric_canal_is_read_from_its_own_centre():
    tube, ct, mask = _eccentric_canal_ct()
    # five chords 0.25 mm apart across the elliptic canal: 0.987 x its width
    truth = 0.987 * 2 * CANAL_HALF_WIDTH
    for m in (measure_pedicle(ct, mask, "left", lr_direction_lps=tube.width_dir),
              measure_trajectory(ct, tube.center - 7 * tube.axis, tube.center + 7 * tube.axis, "left",
                                 lr_direction_lps=tube.width_dir)):
        assert abs(m.inner_width_transverse_mm - truth) <= 0.3
        # the outer outline keeps its own rays: the MPD (the tube's height) does not move
        assert abs(m.mpd_mm - HEIGHT) <= 0.3
        # the transverse chord through the canal's centre crosses the whole tube
        assert abs(m.outer_width_transverse_mm - WIDTH) <= 0.4
        assert not m.no_medullary_canal
