"""Find the spinal canal as a chain of bone-enclosed soft-tissue holes along the body axis.

Works on the localiser's coarse canonical array ``hu[S, P, L]`` (see
:mod:`c2net.locate.volume`). A voxel is *canal-like* when its density is that of CSF, cord or
epidural fat and bone blocks every one of the eight in-plane directions within
``ENCLOSURE_RADIUS_MM`` (the vertebral foramen is at most ~30 mm across, C1 included). Brain,
the airway, the mouth and muscle fail one of the two tests; the remaining distractors (dental
metal streaks, sinuses, skull-base foramina) form short chains, while the canal forms a long
one, so the longest coherent chain of per-slice components wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: HU above which a (2 mm averaged) voxel counts as bone for the enclosure test.
BONE_HU = 200.0
#: Density window of canal contents (epidural fat .. cord/CSF with partial volume), HU.
CANAL_HU = (-200.0, 120.0)
#: Bone must be met within this distance (mm) in all eight in-plane directions.
ENCLOSURE_RADIUS_MM = 24.0
#: Directions (of 8) that must meet bone: one may be open (gaps between laminae, C1-C2).
MIN_BLOCKED_DIRECTIONS = 7
#: Accepted cross-section of one per-slice canal component (mm^2).
AREA_RANGE_MM2 = (12.0, 900.0)
#: Largest slice gap (mm) the chain may jump (disc levels are not enclosed by bone).
MAX_GAP_MM = 30.0
_DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1))


@dataclass
class CanalTrack:
    """The spinal canal found on the working grid (array indices, ``[S, P, L]`` order).

    ``k`` are the slices from the lowest to the highest found (gaps filled by interpolation,
    ``observed`` False there); ``p``/``lr`` the centroid (L index), ``front_p`` the anterior wall
    (smallest P index), ``area_mm2`` the cross-section (0 in gaps).
    """

    k: np.ndarray
    p: np.ndarray
    lr: np.ndarray
    front_p: np.ndarray
    area_mm2: np.ndarray
    observed: np.ndarray

    @property
    def length_mm(self) -> float:
        return float(self.k[-1] - self.k[0]) if len(self.k) else 0.0

    def at(self, k: float) -> tuple[float, float, float]:
        """(p, l, front_p) interpolated at slice ``k`` (clamped to the track's ends)."""
        return (float(np.interp(k, self.k, self.p)), float(np.interp(k, self.k, self.lr)),
                float(np.interp(k, self.k, self.front_p)))


def enclosure_count(bone: np.ndarray, radius_mm: float, spacing_mm: float) -> np.ndarray:
    """For every voxel, in how many of 8 in-plane directions bone lies within ``radius_mm``.

    ``bone`` is a boolean ``[S, P, L]`` array; returns uint8 0..8 of the same shape.
    """
    s, p, lw = bone.shape
    count = np.zeros(bone.shape, np.uint8)
    for dp, dl in _DIRECTIONS:
        steps = int(radius_mm / (spacing_mm * np.hypot(dp, dl)))
        hit = np.zeros_like(bone)
        for n in range(1, steps + 1):
            a, b = dp * n, dl * n
            if abs(a) >= p or abs(b) >= lw:
                break
            hit[:, max(0, -a):p + min(0, -a), max(0, -b):lw + min(0, -b)] |= \
                bone[:, max(0, a):p + min(0, a), max(0, b):lw + min(0, b)]
        count += hit
    return count


def canal_like(hu: np.ndarray, spacing_mm: float) -> np.ndarray:
    """Boolean ``[S, P, L]``: soft-tissue voxels enclosed by bone in all 8 in-plane directions."""
    soft = (hu > CANAL_HU[0]) & (hu < CANAL_HU[1])
    count = enclosure_count(hu > BONE_HU, ENCLOSURE_RADIUS_MM, spacing_mm)
    return soft & (count >= MIN_BLOCKED_DIRECTIONS)


@dataclass
class _Components:
    k: np.ndarray
    p: np.ndarray
    lr: np.ndarray
    front_p: np.ndarray
    area_mm2: np.ndarray


def slice_components(mask: np.ndarray, spacing_mm: float) -> _Components:
    """Per-slice (2D, 8-connected) components of ``mask`` within the accepted area range."""
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = True
    lab, n = ndimage.label(mask, structure=structure)
    if n == 0:
        e = np.zeros(0)
        return _Components(e, e, e, e, e)
    idx = np.nonzero(lab.ravel())[0]
    labels = lab.ravel()[idx]
    kk, pp, ll = np.unravel_index(idx, mask.shape)
    cnt = np.bincount(labels, minlength=n + 1)[1:].astype(float)
    k = np.bincount(labels, kk, n + 1)[1:] / np.maximum(cnt, 1)
    p = np.bincount(labels, pp, n + 1)[1:] / np.maximum(cnt, 1)
    lc = np.bincount(labels, ll, n + 1)[1:] / np.maximum(cnt, 1)
    front = np.full(n + 1, np.inf)
    np.minimum.at(front, labels, pp.astype(float))
    area = cnt * spacing_mm**2
    keep = (area >= AREA_RANGE_MM2[0]) & (area <= AREA_RANGE_MM2[1])
    return _Components(np.round(k[keep]).astype(int), p[keep], lc[keep], front[1:][keep], area[keep])


def track_canal(mask: np.ndarray, spacing_mm: float, midline_l: np.ndarray | None = None
                ) -> CanalTrack | None:
    """The longest coherent chain of canal-like components along S (None when nothing found).

    ``midline_l`` (per slice, the patient's left-right centre as an L index) penalises chains
    far from the midline. Chains link a component to one on a slice at most ``MAX_GAP_MM``
    lower whose centroid is within 8 mm (+0.4 mm per skipped mm: the canal slopes at most ~20 degrees).
    """
    comp = slice_components(mask, spacing_mm)
    n = len(comp.k)
    if n == 0:
        return None
    order = np.lexsort((comp.lr, comp.k))
    k, p, lc = comp.k[order], comp.p[order], comp.lr[order]
    front, area = comp.front_p[order], comp.area_mm2[order]
    weight = np.ones(n)
    if midline_l is not None:
        off_mm = np.abs(lc - midline_l[k]) * spacing_mm
        weight -= np.clip((off_mm - 20.0) / 20.0, 0.0, 1.5)
    # the canal is wide (C1-C3: 150-450 mm^2); small enclosed pockets (pharynx between the
    # mandible and C1, foramina) count for less, so a chain of them loses to the canal
    weight += 0.3 * ((area >= 60.0) & (area <= 600.0)) - 0.6 * np.clip(1.0 - area / 100.0, 0, 1)
    best = weight.copy()
    prev = np.full(n, -1)
    max_gap = max(1, int(round(MAX_GAP_MM / spacing_mm)))
    starts = np.searchsorted(k, np.arange(k.max() + 2))
    for s in range(k.min(), k.max() + 1):
        j0, j1 = starts[s], starts[s + 1]
        if j0 == j1:
            continue
        for gap in range(1, max_gap + 1):
            t = s - gap
            if t < k.min():
                break
            i0, i1 = starts[t], starts[t + 1]
            if i0 == i1:
                continue
            d = np.hypot(p[j0:j1, None] - p[None, i0:i1], lc[j0:j1, None] - lc[None, i0:i1])
            tol = (8.0 + 0.4 * spacing_mm * (gap - 1)) / spacing_mm
            cand = np.where(d <= tol, best[None, i0:i1] - 0.15 * (gap - 1), -np.inf)
            arg = np.argmax(cand, axis=1)
            val = cand[np.arange(j1 - j0), arg] + weight[j0:j1]
            better = val > best[j0:j1]
            best[j0:j1] = np.where(better, val, best[j0:j1])
            prev[j0:j1] = np.where(better, i0 + arg, prev[j0:j1])
    j = int(np.argmax(best))
    chain = []
    while j >= 0:
        chain.append(j)
        j = int(prev[j])
    chain = np.asarray(chain[::-1])
    ks = np.arange(k[chain[0]], k[chain[-1]] + 1)
    observed = np.isin(ks, k[chain])
    area_full = np.zeros(len(ks))
    area_full[k[chain] - ks[0]] = area[chain]
    return CanalTrack(
        k=ks.astype(float), p=np.interp(ks, k[chain], p[chain]),
        lr=np.interp(ks, k[chain], lc[chain]), front_p=np.interp(ks, k[chain], front[chain]),
        area_mm2=area_full, observed=observed)


def body_midline(hu: np.ndarray) -> np.ndarray:
    """Per slice, the L index of the body's centre of mass (patient midline estimate)."""
    body = hu > -300.0
    count = body.sum(axis=1)  # [S, L]
    l_idx = np.arange(hu.shape[2])
    total = count.sum(axis=1)
    mid = (count * l_idx).sum(axis=1) / np.maximum(total, 1)
    mid[total == 0] = 0.5 * hu.shape[2]
    return mid
