"""Cortical edges along rays, from the image alone.

Per ray (from the section centre outward), as a careful reader does on an oblique MPR:

1. **The first significant cortical peak**: walking outward, the running maximum is a
   candidate until the profile falls at least half-way from it towards the soft-tissue level
   of the scan (``soft_hu``); a trabecular bump that only dips a little is passed over.
2. **Levels**: the outside minimum within ``OUTSIDE_MM`` beyond the peak, and the medullary
   plateau of the section (median of the inner half of the canal rays).
3. **Half-way edges** (the reader's definition): outer edge = crossing of
   (peak + outside minimum) / 2 beyond the peak; inner edge = crossing of
   (peak + plateau) / 2 walking back towards the centre. A ray with no dip before its peak
   (the centre is as dense as the peak) has no medullary canal along it.
4. **Blur-corrected edges**: the half-way rule is exact for a thick cortex but a cortex
   thinner than the scanner blur spreads: its half-way crossings lie outside the true
   surfaces. Blurring keeps the zeroth and first moments of a profile, so with the profile
   modelled as plateau C, cortex K and outside B (step edges), both edge radii follow in
   closed form from the moments over a window that starts in the canal and ends outside
   (:func:`edges_from_moments`) whatever the blur. K is the scan's cortical density,
   estimated from the peaks of the same scan (:func:`cortical_density`), never a fixed prior.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Tuple

import numpy as np
from scipy import ndimage
from scipy.special import ndtr

from .sampling import nanmedian_rows

#: The profile must fall this share of the way from a candidate peak to the soft-tissue level
#: before the peak counts (the reader's "significant" peak).
PEAK_DROP_FRACTION = 0.5
#: Bone reads at least this far above soft tissue (the lowest cancellous bone of 80 HU over
#: fat; noise in soft tissue never makes a peak) and a drop is at least this large (HU).
MIN_BONE_CONTRAST_HU = 150.0
MIN_DROP_HU = 100.0
#: A cortical peak rises above soft tissue by at least this share of the typical (upper-half
#: median) peak of the same sweep.
PEAK_LEVEL_FRACTION = 0.4
#: A ray has a medullary dip when the peak rises above the lowest point inside it by this share
#: of the peak-to-outside contrast.
DIP_FRACTION = 0.1
OUTSIDE_MM = 3.0
#: Moment window: from this far inside the inner half-way edge to the outside level.
MOMENT_INSIDE_MM = 1.5
MOMENT_OUTSIDE_MIN_MM = 0.6
MOMENT_OUTSIDE_MAX_MM = 2.5


@dataclass
class RayEdges:
    """Per ray (flattened): radii in mm, NaN where not found."""

    found: np.ndarray       # bool: an outer cortical edge was found
    dip: np.ndarray         # bool: a medullary dip precedes the peak
    peak_hu: np.ndarray
    outside_hu: np.ndarray
    r_peak: np.ndarray
    r_out_half: np.ndarray
    r_in_half: np.ndarray   # NaN on rays without a dip
    r_out: np.ndarray       # blur-corrected (moments) where possible, else the half-way edge
    r_in: np.ndarray
    plateau_hu: np.ndarray = None   # the medullary plateau of the ray's section (NaN: none)
    #: on rays without an outer edge (the wall runs on into a neighbouring bone): the canal's
    #: half-way edge before the first rise out of the canal (NaN: none)
    r_in_rise: np.ndarray = None
    #: the least cortical peak (HU) these edges were found with (None: no level)
    min_peak_hu: float = None
    #: the density-free part (``_half_way_edges``), for edges of the same profiles at another density
    _half: dict = field(default=None, repr=False)


def soft_tissue_level(profiles: np.ndarray) -> float:
    """Soft-tissue level around the pedicle (HU): a low percentile of the sampled profiles,
    never below fat (air in the crop must not pull it down)."""
    vals = profiles[np.isfinite(profiles) & (profiles > -300.0)]
    if vals.size == 0:
        return 0.0
    return float(np.clip(np.percentile(vals, 10), -150.0, 150.0))


def _first_crossing_after(p: np.ndarray, start: np.ndarray, thr: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Radius where p first falls below thr after index start (linear interpolation)."""
    n, S = p.shape
    j = np.arange(S)[None, :]
    below = (p < thr[:, None]) & (j > start[:, None])
    has = below.any(axis=1)
    k = np.argmax(below, axis=1)
    k0 = np.clip(k - 1, 0, S - 1)
    rows = np.arange(n)
    y0, y1 = p[rows, k0], p[rows, k]
    f = np.clip((y0 - thr) / np.where(np.abs(y0 - y1) > 1e-9, y0 - y1, 1.0), 0.0, 1.0)
    r = radii[k0] + f * (radii[k] - radii[k0])
    return np.where(has, r, np.nan)


def _last_crossing_before(p: np.ndarray, stop: np.ndarray, thr: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Walking back from index stop: radius where p first falls below thr (NaN if never)."""
    n, S = p.shape
    j = np.arange(S)[None, :]
    below = (p < thr[:, None]) & (j < stop[:, None])
    has = below.any(axis=1)
    k = S - 1 - np.argmax(below[:, ::-1], axis=1)          # last index below
    k1 = np.clip(k + 1, 0, S - 1)
    rows = np.arange(n)
    y0, y1 = p[rows, k], p[rows, k1]
    f = np.clip((thr - y0) / np.where(np.abs(y1 - y0) > 1e-9, y1 - y0, 1.0), 0.0, 1.0)
    r = radii[k] + f * (radii[k1] - radii[k])
    return np.where(has, r, np.nan)


def find_peaks(p: np.ndarray, soft_hu: float, min_peak_hu: float = -np.inf) -> Tuple[np.ndarray, np.ndarray]:
    """(index of the first significant peak or -1, its value) per ray of smoothed profiles;
    a peak must reach ``min_peak_hu``. ``soft_hu``: one level, or one per ray.

    Walking outward, the running maximum is the candidate (its first index); the first peak
    is the candidate at the first step that falls at least ``need`` below it. Within a run of
    steps under one candidate the least value so far falls below ``cand - need`` first at a
    step whose own value does, so the walk is a running maximum and one comparison per
    sample, all rays and samples at once (the same answer as the step-by-step walk,
    :func:`_find_peaks_walk`, which NaN profiles still take)."""
    n, S = p.shape
    if n == 0 or S < 2 or np.isnan(p).any():
        return _find_peaks_walk(p, soft_hu, min_peak_hu)
    # samples along the first axis (contiguous rows of all rays: one vector op per step)
    q = np.ascontiguousarray(p.T)
    soft = np.asarray(soft_hu, float)
    cand = np.empty_like(q)                                  # the candidate's value at each step
    cand[0] = q[0]
    for j in range(1, S):
        np.maximum(cand[j - 1], q[j], out=cand[j])
    # (in place: temporaries of this size cost more in fresh pages than in arithmetic)
    rise = np.subtract(cand, soft)
    hit = rise >= MIN_BONE_CONTRAST_HU
    hit &= cand >= min_peak_hu
    need = np.multiply(rise, PEAK_DROP_FRACTION, out=rise)
    np.maximum(need, MIN_DROP_HU, out=need)
    drop = np.subtract(cand, q)
    hit &= drop >= need
    hit[1:] &= q[1:] <= cand[:-1]                            # not a step up to a new candidate
    hit[0] = False
    has = hit.any(axis=0)
    first = np.argmax(hit, axis=0)
    cols = np.arange(n)
    top = cand[first, cols]
    # the candidate is the first sample that reached the running maximum
    peak = np.where(has, np.argmax(q == top[None, :], axis=0), -1)
    val = np.where(peak >= 0, p[cols, np.maximum(peak, 0)], np.nan)
    return peak, val


def _find_peaks_walk(p: np.ndarray, soft_hu: float, min_peak_hu: float = -np.inf) -> Tuple[np.ndarray, np.ndarray]:
    """:func:`find_peaks` step by step along the rays (the reference walk)."""
    n, S = p.shape
    cand_val = p[:, 0].copy()
    cand_idx = np.zeros(n, dtype=int)
    min_since = cand_val.copy()
    done = np.zeros(n, dtype=bool)
    peak = np.full(n, -1, dtype=int)
    for j in range(1, S):
        v = p[:, j]
        act = ~done
        up = act & (v > cand_val)
        cand_val[up] = v[up]
        cand_idx[up] = j
        min_since[up] = v[up]
        dn = act & ~up
        min_since[dn] = np.minimum(min_since[dn], v[dn])
        need = np.maximum(PEAK_DROP_FRACTION * (cand_val - soft_hu), MIN_DROP_HU)
        hit = dn & (cand_val - min_since >= need) & (cand_val - soft_hu >= MIN_BONE_CONTRAST_HU) & \
            (cand_val >= min_peak_hu)
        peak[hit] = cand_idx[hit]
        done |= hit
    val = np.where(peak >= 0, p[np.arange(n), np.maximum(peak, 0)], np.nan)
    return peak, val


def ray_edges(prof: np.ndarray, radii: np.ndarray, soft_hu: float, n_rays: int,
              cortex_hu: float = None, min_peak_hu: float = None, like: RayEdges = None) -> RayEdges:
    """Edges of flattened profiles ``prof`` ((n_sections * n_rays, S); rays of one section
    consecutive). ``cortex_hu``: the scan's cortical density (estimated when None).
    ``min_peak_hu``: the least cortical peak (default: ``PEAK_LEVEL_FRACTION`` of the way
    from soft tissue to the typical peak of these profiles). ``like``: the edges of the same
    profiles with the same ``soft_hu`` and ``min_peak_hu`` for another density: the peaks,
    levels and half-way edges (which do not depend on the density) are taken from them."""
    n, S = prof.shape
    step = float(radii[1] - radii[0])
    if like is not None and like._half is not None:
        h = like._half
    else:
        h = _half_way_edges(prof, radii, soft_hu, n_rays, min_peak_hu)
    ps, found, dip, pval, bmin, bmin_idx = h["ps"], h["found"], h["dip"], h["pval"], h["bmin"], h["bmin_idx"]
    r_out_half, r_in_half, sec_plateau = h["r_out_half"], h["r_in_half"], h["sec_plateau"]
    r_peak, min_peak_hu = h["r_peak"], h["min_peak_hu"]

    if cortex_hu is None:
        prov = RayEdges(found=found, dip=dip, peak_hu=pval, outside_hu=bmin, r_peak=r_peak,
                        r_out_half=r_out_half, r_in_half=r_in_half, r_out=r_out_half, r_in=r_in_half)
        cortex_hu = scan_blur_and_density(prof, radii, prov)[1]
        if not np.isfinite(cortex_hu):
            cortex_hu = cortical_density(pval[found])
    # blur-corrected edges from the profile moments (rays with a canal)
    r_out = r_out_half.copy()
    r_in = r_in_half.copy()
    idx = np.nonzero(dip)[0]
    if idx.size and np.isfinite(cortex_hu):
        a = np.maximum(0.0, r_in_half[idx] - MOMENT_INSIDE_MM)
        rb = radii[bmin_idx[idx]]
        b = np.clip(rb, r_out_half[idx] + MOMENT_OUTSIDE_MIN_MM, r_out_half[idx] + MOMENT_OUTSIDE_MAX_MM)
        ia = np.clip(np.round(a / step).astype(int), 0, S - 1)
        ib = np.clip(np.round(b / step).astype(int), 0, S - 1)
        P = prof[idx].astype(np.float64)
        sm = ps[idx]
        sub = np.arange(len(idx))
        bg = sm[sub, ib]
        inner_level = sm[sub, ia]
        k = np.maximum(cortex_hu, pval[idx])
        A, B = inner_level - bg, k - bg
        m0 = _trap_moment(P, bg, ia, ib, np.ones_like(radii), step)
        m1 = _trap_moment(P, bg, ia, ib, radii, step)
        ro, ri = edges_from_moments_v(m0, m1, radii[ia], A, B)
        # accept only a solution consistent with the image: inside the window, and within
        # the blur-scale neighbourhood of the half-way edges
        with np.errstate(invalid="ignore"):
            acc = (np.isfinite(ro) & np.isfinite(ri) & (radii[ia] < ri) & (ri < ro) & (ro < radii[ib])
                   & (np.abs(ro - r_out_half[idx]) < 1.5) & (np.abs(ri - r_in_half[idx]) < 1.5))
        r_out[idx[acc]] = ro[acc]
        r_in[idx[acc]] = ri[acc]
    # rays with no outer edge: the canal still ends where the ray first rises out of it -
    # the first peak that stands above the section's medullary plateau as a significant peak
    # stands above soft tissue (the same drop rule, measured from the plateau); its half-way
    # crossing back towards the plateau is the canal's edge, as on every other ray
    r_in_rise = h["r_in_rise"]
    return RayEdges(found=found, dip=dip, peak_hu=pval, outside_hu=bmin, r_peak=r_peak,
                    r_out_half=np.where(found, r_out_half, np.nan),
                    r_in_half=np.where(dip, r_in_half, np.nan),
                    r_out=np.where(found, r_out, np.nan), r_in=np.where(dip, r_in, np.nan),
                    plateau_hu=np.repeat(sec_plateau, n_rays), r_in_rise=r_in_rise, min_peak_hu=min_peak_hu,
                    _half=h)


def _half_way_edges(prof, radii, soft_hu, n_rays, min_peak_hu) -> dict:
    """The part of :func:`ray_edges` that does not depend on the cortical density: peaks,
    levels, half-way edges, the sections' plateaus and the canal's rise on rays without an
    outer edge."""
    n, S = prof.shape
    step = float(radii[1] - radii[0])
    rows = np.arange(n)
    ps = ndimage.uniform_filter1d(prof, 3, axis=1, mode="nearest")
    given = min_peak_hu is not None
    peak, pval = (np.full(n, -1), np.full(n, np.nan)) if given else find_peaks(ps, soft_hu)
    # a cortical peak reaches a good share of the cortical peaks this scan shows: a bump of
    # dense trabeculae in a fatty canal drops far towards soft tissue too, but is no cortex
    if not given and (peak >= 0).sum() >= 10:
        top = np.sort(pval[peak >= 0])
        typical = float(np.median(top[top.size // 2:]))
        min_peak_hu = soft_hu + PEAK_LEVEL_FRACTION * (typical - soft_hu)
        # with a least peak the walk ends at the same peak where that peak reaches it, and
        # finds none where it found none without one: only the rays whose first peak is
        # too low walk on
        redo = np.nonzero((peak >= 0) & ~(pval >= min_peak_hu))[0]
        if redo.size:
            soft_r = soft_hu[redo] if np.ndim(soft_hu) else soft_hu
            peak[redo], pval[redo] = find_peaks(ps[redo], soft_r, min_peak_hu)
    elif given:
        peak, pval = find_peaks(ps, soft_hu, min_peak_hu)
    found = peak >= 0
    pk = np.maximum(peak, 0)
    j = np.arange(S)[None, :]
    n_out = int(round(OUTSIDE_MM / step))
    after = (j >= pk[:, None]) & (j <= pk[:, None] + n_out)
    bmin_idx = np.argmin(np.where(after, ps, np.inf), axis=1)
    bmin = ps[rows, bmin_idx]
    r_out_half = _first_crossing_after(ps, pk, 0.5 * (pval + bmin), radii)
    found &= np.isfinite(r_out_half)
    before = j <= pk[:, None]
    mn_before = np.min(np.where(before, ps, np.inf), axis=1)
    contrast = pval - bmin
    dip = found & (pval - mn_before >= DIP_FRACTION * contrast)
    # medullary plateau per section: the inner half of its canal rays
    n_sec = n // n_rays
    inner_half = j <= (0.5 * pk)[:, None]
    vals = np.where(inner_half & dip[:, None], ps, np.nan).reshape(n_sec, -1)
    sec_plateau = nanmedian_rows(vals)
    plateau = np.repeat(sec_plateau, n_rays)
    plateau = np.where(np.isfinite(plateau), np.maximum(plateau, mn_before), mn_before)
    thr_in = 0.5 * (pval + plateau)
    r_in_half = np.where(dip, _last_crossing_before(ps, pk, thr_in, radii), np.nan)
    dip &= np.isfinite(r_in_half)
    r_peak = radii[pk]
    r_in_rise = np.full(n, np.nan)
    lost = np.nonzero(~found & np.isfinite(plateau))[0]
    if lost.size:
        pk2, pv2 = find_peaks(ps[lost], plateau[lost])
        ok2 = pk2 > 0
        if ok2.any():
            sub = lost[ok2]
            thr2 = 0.5 * (pv2[ok2] + plateau[sub])
            r_in_rise[sub] = _last_crossing_before(ps[sub], pk2[ok2], thr2, radii)
    return dict(ps=ps, found=found, dip=dip, pval=pval, bmin=bmin, bmin_idx=bmin_idx,
                r_out_half=r_out_half, r_in_half=r_in_half, plateau=plateau, sec_plateau=sec_plateau,
                r_peak=r_peak, min_peak_hu=min_peak_hu, r_in_rise=r_in_rise)


#: Passes that re-read the canal's plateau from the inner half of its own rays' canal.
CANAL_PLATEAU_PASSES = 1


def canal_edges(prof: np.ndarray, radii: np.ndarray, soft_hu: float, n_rays: int,
                min_peak_hu: float = None) -> Tuple[np.ndarray, np.ndarray]:
    """The canal's half-way edge per ray of flattened profiles cast from the canal's own
    centre (``n_rays`` consecutive rays per section), as the reader reads the canal:

    * the medullary plateau is the canal's core level: the median of the inner half of the
      section's canal rays (:func:`ray_edges`, here from the canal's centre);
    * a ray's wall is its first peak that is significant either as the outer cortex is (it
      falls at least half-way towards soft tissue beyond it, :func:`ray_edges`) or against
      the canal (it stands above the plateau as a significant peak stands above soft
      tissue: at least ``MIN_BONE_CONTRAST_HU`` above it, falling back at least half-way to
      it) - the canal ends at its wall whether the bone beyond ends in soft tissue or runs
      on into a neighbouring bone - or a faint wall of any height beyond which the profile
      falls at least ``MIN_DROP_HU`` below the plateau (the outside, darker than the canal);
      a ray has canal only where its profile dips before the wall (``DIP_FRACTION``);
    * the edge is the crossing of (peak + plateau) / 2 walking back towards the centre.

    ``min_peak_hu``: the least cortical peak of the scan (:func:`ray_edges`; the sweep's, so
    that a section's canal does not depend on which other sections are read with it).
    Returns (inner edge, the wall's outer half-way edge) per ray; NaN where a ray has no
    such wall."""
    n, S = prof.shape
    e = ray_edges(prof, radii, soft_hu, n_rays, np.inf, min_peak_hu)
    plateau = e.plateau_hu
    r = np.full(n, np.nan)
    if plateau is None or not np.isfinite(plateau).any():
        return r, r.copy()
    step = float(radii[1] - radii[0])
    ps = ndimage.uniform_filter1d(prof, 3, axis=1, mode="nearest")
    rows = np.arange(n)
    pk = np.where(e.found, np.round(e.r_peak / step).astype(int), S)
    ok = np.isfinite(plateau)
    sub = np.nonzero(ok)[0]
    pk2, _ = find_peaks(ps[sub], plateau[sub])
    pk2 = np.where(pk2 > 0, pk2, S)
    pk[sub] = np.minimum(pk[sub], pk2)
    # a faint wall with the outside behind it: a significant peak of any height beyond which
    # the profile falls well below the canal's own level (soft tissue, not marrow)
    pk3, _ = find_peaks(ps[sub], soft_hu)
    j = np.arange(S)[None, :]
    n_out = int(round(OUTSIDE_MM / step))
    beyond = (j >= np.maximum(pk3, 0)[:, None]) & (j <= np.maximum(pk3, 0)[:, None] + n_out)
    low = np.min(np.where(beyond, ps[sub], np.inf), axis=1)
    pk3 = np.where((pk3 > 0) & (low <= plateau[sub] - MIN_DROP_HU), pk3, S)
    pk[sub] = np.minimum(pk[sub], pk3)
    hit = ok & (pk < S) & (pk > 0)
    if not hit.any():
        return r, r.copy()
    h = np.nonzero(hit)[0]
    mn = np.min(np.where(j <= pk[h][:, None], ps[h], np.inf), axis=1)
    pv = ps[rows[h], pk[h]]
    # a ray has canal only where the profile dips before its wall (as in ray_edges)
    beyond = (j >= pk[h][:, None]) & (j <= pk[h][:, None] + n_out)
    low = np.min(np.where(beyond, ps[h], np.inf), axis=1)
    keep = pv - mn >= DIP_FRACTION * (pv - low)
    h, mn, pv, low = h[keep], mn[keep], pv[keep], low[keep]
    if h.size == 0:
        return r, r.copy()
    for _ in range(CANAL_PLATEAU_PASSES):
        base = np.maximum(plateau[h], mn)
        r[:] = np.nan
        r[h] = _last_crossing_before(ps[h], pk[h], 0.5 * (pv + base), radii)
        # the plateau re-read from the canal's core: the inner half of each ray's canal
        core = np.full((n, S), np.nan)
        inside = np.isfinite(r)[:, None] & (radii[None, :] <= 0.5 * np.nan_to_num(r)[:, None])
        core[inside] = ps[inside]
        sec = nanmedian_rows(core.reshape(n // n_rays, -1))
        plateau = np.where(np.isfinite(np.repeat(sec, n_rays)), np.repeat(sec, n_rays), plateau)
    base = np.maximum(plateau[h], mn)
    r[:] = np.nan
    r[h] = _last_crossing_before(ps[h], pk[h], 0.5 * (pv + base), radii)
    # the wall's outer edge: the crossing of (peak + outside minimum) / 2 beyond the peak,
    # the minimum within OUTSIDE_MM (soft tissue, or the dip before a neighbouring bone)
    r_out = np.full(n, np.nan)
    r_out[h] = _first_crossing_after(ps[h], pk[h], 0.5 * (pv + low), radii)
    return r, r_out


def _trap_moment(P: np.ndarray, bg: np.ndarray, ia: np.ndarray, ib: np.ndarray, weight: np.ndarray,
                 step: float) -> np.ndarray:
    """Trapezoid integral of (P - bg) * weight(r) from index ia to ib per row."""
    n = P.shape[0]
    sub = np.arange(n)
    cw = np.concatenate([np.zeros((n, 1)), np.cumsum(P * weight[None, :], axis=1)], axis=1)
    cwr = np.concatenate([[0.0], np.cumsum(weight)])
    s_ = (cw[sub, ib + 1] - cw[sub, ia]) - bg * (cwr[ib + 1] - cwr[ia])
    e_ = (P[sub, ia] - bg) * weight[ia] + (P[sub, ib] - bg) * weight[ib]
    return (s_ - 0.5 * e_) * step


def edges_from_moments_v(m0, m1, a, inner, cortex) -> Tuple[np.ndarray, np.ndarray]:
    """:func:`edges_from_moments` for arrays (one solution per element; NaN where none)."""
    m0, m1, a, A, B = (np.asarray(x, float) for x in np.broadcast_arrays(m0, m1, a, inner, cortex))
    with np.errstate(all="ignore"):
        good = (B > 0) & ((B - A) / np.where(B > 0, B, 1.0) >= 0.1)
        Bs = np.where(B > 0, B, 1.0)
        p = (m0 + A * a) / Bs
        alpha = A * (A - B) / Bs
        beta = 2.0 * p * (B - A)
        gamma = -A * a * a + B * p * p - 2.0 * m1
        lin = np.abs(alpha) < 1e-9
        # linear case
        xl = np.where(np.abs(beta) >= 1e-12, -gamma / np.where(np.abs(beta) >= 1e-12, beta, 1.0), np.nan)
        disc = beta * beta - 4 * alpha * gamma
        sq = np.sqrt(np.where(disc >= 0, disc, np.nan))
        den = np.where(lin, 1.0, 2 * alpha)
        x1, x2 = (-beta + sq) / den, (-beta - sq) / den
        ro = np.full(m0.shape, np.nan)
        ri = np.full(m0.shape, np.nan)
        # the scalar version keeps the last valid root: x2 over x1
        for x in (x1, x2):
            d = p - (A / Bs) * x
            ok = ~lin & np.isfinite(x) & (x >= a - 1e-6) & (d >= 0)
            ro = np.where(ok, x + d, ro)
            ri = np.where(ok, x, ri)
        dl = p - (A / Bs) * xl
        okl = lin & np.isfinite(xl) & (xl >= a - 1e-6) & (dl >= 0)
        ro = np.where(okl, xl + dl, ro)
        ri = np.where(okl, xl, ri)
    return np.where(good, ro, np.nan), np.where(good, ri, np.nan)


def cortical_density(peaks_hu: np.ndarray) -> float:
    """The scan's cortical density (HU) from the cortical peaks it shows: the median of the
    highest fifth. A blurred cortex thinner than the blur peaks below its density, so the
    highest peaks (the thickest cortex) approach it; this is a lower bound when every cortex
    is thin."""
    p = np.sort(peaks_hu[np.isfinite(peaks_hu)])
    if p.size == 0:
        return float("nan")
    return float(np.median(p[int(0.8 * p.size):]))


def edges_from_moments(m0: float, m1: float, a: float, inner: float, cortex: float) -> Tuple[float, float]:
    """Solve the two moment equations of a step-cortex profile for (outer, inner) radii.

    With levels relative to the outside (``inner`` = C - B, ``cortex`` = K - B) and the
    window starting at ``a`` in the canal:
        m0 = inner (r_i - a) + cortex (r_o - r_i)
        2 m1 = inner (r_i^2 - a^2) + cortex (r_o^2 - r_i^2)
    a quadratic in r_i. Returns (NaN, NaN) when there is no consistent solution.
    """
    A, B = inner, cortex
    if B <= 0 or (B - A) / B < 0.1:
        return np.nan, np.nan
    p = (m0 + A * a) / B
    alpha = A * (A - B) / B
    beta = 2.0 * p * (B - A)
    gamma = -A * a * a + B * p * p - 2.0 * m1
    if abs(alpha) < 1e-9:
        if abs(beta) < 1e-12:
            return np.nan, np.nan
        x = -gamma / beta
        d = p - (A / B) * x
        return (x + d, x) if (x >= a - 1e-6 and d >= 0) else (np.nan, np.nan)
    disc = beta * beta - 4 * alpha * gamma
    if disc < 0:
        return np.nan, np.nan
    best = (np.nan, np.nan)
    for x in ((-beta + np.sqrt(disc)) / (2 * alpha), (-beta - np.sqrt(disc)) / (2 * alpha)):
        d = p - (A / B) * x
        if x >= a - 1e-6 and d >= 0:
            best = (x + d, x)
    return best


# --------------------------------------------------------------------------------------
# blurred step-cortex model fitted to the profiles (scan blur and cortical density)

_SQRT2 = np.sqrt(2.0)


def _phi(x):
    return np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)


def _Phi(x):
    return ndtr(x)


def grid_variance(direction: np.ndarray, spacing: np.ndarray, dirs3: np.ndarray) -> np.ndarray:
    """Variance (mm^2) that the voxel grid adds to the blur along each direction of ``dirs3``.

    A voxel holds the object averaged over its box (variance s^2 / 12 along each grid axis)
    and is read back with (tri)linear interpolation (a triangle, variance s^2 / 6): s^2 / 4
    per grid axis. ``direction`` (3x3, columns = the index axes in LPS) and ``spacing`` (3,)
    are the scan's; a 2 mm slice therefore blurs a ray along it by 1 mm (sigma) more than
    the in-plane rays, whatever the reconstruction kernel adds on top."""
    d = np.asarray(direction, float).reshape(3, 3)
    s2 = np.asarray(spacing, float) ** 2 / 4.0
    proj = np.asarray(dirs3, float) @ d          # components along the index axes
    return (proj * proj) @ s2


def grid_widths(direction: np.ndarray, spacing: np.ndarray, dirs3: np.ndarray) -> np.ndarray:
    """(n, 3): the width (mm) that each voxel-grid axis spans along each direction of
    ``dirs3`` (spacing x |component along the index axis|); :func:`grid_variance` is
    ``(widths ** 2).sum(1) / 4``."""
    d = np.asarray(direction, float).reshape(3, 3)
    return np.abs(np.asarray(dirs3, float) @ d) * np.asarray(spacing, float)[None, :]


#: The grid kernel's tables: step (mm) and length (points; +-10 mm).
KERNEL_STEP_MM = 0.01
KERNEL_POINTS = 2048


class GridKernel:
    """The scan's point-spread function along rays, with the voxel grid's part in its true
    shape: per index axis a box (the voxel's extent, s/12 variance) and the triangle of the
    (tri)linear interpolation that reads it back (= box * box), i.e. three boxes of width
    s |n_a| along a ray of direction n, convolved with the isotropic reconstruction blur
    (a Gaussian, ``sigma_k``). Same variance as ``sigma_k^2 + grid_variance``, but flat-topped:
    a Gaussian of that variance, fitted to a cortex thinner than the voxel, takes the flat top
    for cortical thickness (a 0.8 mm cortex on a 1 mm grid: 0.97 mm at 86 % of its density).

    ``widths`` (m, 3): :func:`grid_widths` of the distinct ray directions; ``which`` (n,)
    the direction of each ray; ``cos_a`` (n,) each ray's obliquity (the kernel is stretched
    by 1 / cos a along it). Call with offsets x (n, S) from an edge to get the edge-spread
    function (the kernel's CDF) and the kernel itself, per ray."""

    def __init__(self, widths: np.ndarray, sigma_k: float, which: np.ndarray, cos_a: np.ndarray = None):
        w = np.asarray(widths, float).reshape(-1, 3)
        # opposite rays span the same widths (but for the last bits of their directions'
        # cosines): each distinct direction's kernel once (widths to 1e-9 mm)
        w, inv = np.unique(np.round(w, 9), axis=0, return_inverse=True)
        N, dx = KERNEL_POINTS, KERNEL_STEP_MM
        k = 2 * np.pi * np.fft.fftfreq(N, dx)
        cf = np.exp(-0.5 * (float(sigma_k) * k) ** 2)[None, :] * \
            np.prod(np.sinc(w[:, :, None] * k[None, None, :] / (2 * np.pi)) ** 3, axis=1)
        pdf = np.fft.fftshift(np.real(np.fft.ifft(cf, axis=1)), axes=1) / dx
        pdf = np.maximum(pdf, 0.0)
        pdf /= pdf.sum(axis=1, keepdims=True) * dx
        cdf = np.cumsum(pdf, axis=1) * dx - 0.5 * pdf * dx    # CDF at the grid points
        self.x0 = -(N // 2) * dx
        self.pdf, self.cdf = pdf.reshape(-1), np.clip(cdf, 0.0, 1.0).reshape(-1)
        self.base = inv.reshape(-1)[np.asarray(which, int)] * N
        self.cos = np.ones(len(self.base)) if cos_a is None else np.asarray(cos_a, float)

    def __call__(self, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        c = self.cos[:, None]
        u = (x * c - self.x0) / KERNEL_STEP_MM
        u = np.clip(u, 0.0, KERNEL_POINTS - 1.001)
        i = np.floor(u).astype(np.int64)
        f = u - i
        j = self.base[:, None] + i
        cdf = self.cdf[j] * (1 - f) + self.cdf[j + 1] * f
        pdf = (self.pdf[j] * (1 - f) + self.pdf[j + 1] * f) * c
        return cdf, pdf


def fit_cortex_model(prof: np.ndarray, radii: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                     bg: np.ndarray, init: np.ndarray, free=(True, True, True, True, True),
                     n_iter: int = 25, kernel: GridKernel = None) -> Tuple[np.ndarray, np.ndarray]:
    """Least-squares fit, per ray, of the blurred step-cortex profile

        f(r) = B + (K - B) Phi((r_o - r) / s) + (C - K) Phi((r_i - r) / s)

    over ``lo <= r <= hi`` with the outside level B = ``bg`` fixed. ``init`` (n, 5) holds
    (C, r_i, r_o, K, s); ``free`` says which are fitted (Levenberg-Marquardt, all rays at
    once). ``radii`` is one grid (S,) or one per ray (n, S). With ``kernel`` (a
    :class:`GridKernel` per ray) the edges are blurred by that kernel instead of a Gaussian of
    sigma s, and s is not fitted. Returns (params (n, 5), rms residual (n,))."""
    n, S = prof.shape
    th = init.astype(np.float64).copy()
    r = radii[None, :] if radii.ndim == 1 else radii
    w = ((r >= lo[:, None]) & (r <= hi[:, None])).astype(np.float64)
    fixed = ~np.asarray(free, bool)
    if kernel is not None:
        fixed[4] = True
    lam = np.full(n, 1e-2)

    def model(t):
        """The model's profile and its parts: (xo, xi) and the edge-spread values there
        (Phi, or the kernel's CDF and PDF), which the Jacobian at ``t`` reuses."""
        C, ri, ro, K, sg = (t[:, q:q + 1] for q in range(5))
        if kernel is not None:
            xo, xi = ro - r, ri - r
            (Po, po), (Pi, pi) = kernel(xo), kernel(xi)
            return bg[:, None] + (K - bg[:, None]) * Po + (C - K) * Pi, [xo, xi, Po, Pi, po, pi]
        xo, xi = (ro - r) / sg, (ri - r) / sg
        Po, Pi = _Phi(xo), _Phi(xi)
        return bg[:, None] + (K - bg[:, None]) * Po + (C - K) * Pi, [xo, xi, Po, Pi]

    f, parts = model(th)
    cost = np.sum(w * (prof - f) ** 2, axis=1)
    for _ in range(n_iter):
        C, ri, ro, K, sg = (th[:, q:q + 1] for q in range(5))
        if kernel is not None:
            xo, xi, Po, Pi, po, pi = parts
            J = np.stack([Pi, (C - K) * pi, (K - bg[:, None]) * po, Po - Pi, np.zeros_like(po)], axis=2)
        else:
            xo, xi, Po, Pi = parts
            po, pi = _phi(xo), _phi(xi)
            J = np.stack([Pi, (C - K) * pi / sg, (K - bg[:, None]) * po / sg, Po - Pi,
                          -((K - bg[:, None]) * po * xo + (C - K) * pi * xi) / sg], axis=2)   # (n, S, 5)
        J[:, :, fixed] = 0.0
        res = (prof - f) * w
        JtJ = np.matmul((J * w[:, :, None]).transpose(0, 2, 1), J)
        Jtr = np.matmul(J.transpose(0, 2, 1), res[:, :, None])[:, :, 0]
        diag = np.einsum("npp->np", JtJ)
        A = JtJ + (lam[:, None] * (diag + 1e-6))[:, :, None] * np.eye(5)[None]
        A[:, fixed, fixed] += 1e12
        step = np.linalg.solve(A, Jtr[:, :, None])[:, :, 0]
        new = th + step
        new[:, 4] = np.clip(new[:, 4], 0.05, 3.0)
        f2, parts2 = model(new)
        c2 = np.sum(w * (prof - f2) ** 2, axis=1)
        better = c2 < cost
        th[better] = new[better]
        cost[better] = c2[better]
        f[better] = f2[better]
        for a, b in zip(parts, parts2):
            a[better] = b[better]
        lam = np.where(better, lam * 0.3, lam * 10.0)
    rms = np.sqrt(cost / np.maximum(w.sum(axis=1), 1))
    return th, rms


#: The density is read on the rays blurred least: within this factor of the smallest blur.
SHARP_RAY_FACTOR = 1.15
#: Rays are taken to cross their wall at most this obliquely (cos of the angle to its normal).
MIN_RAY_COS = 0.5
#: Least rays for a fitted scan property.
MIN_FIT_RAYS = 10


def obliquity(r_out: np.ndarray, n_rays: int) -> np.ndarray:
    """cos of the angle between each ray and the normal of its section's outline r(theta)
    (flattened, ``n_rays`` consecutive rays per section; NaN where the outline is not known).
    A ray crossing a wall at angle a sees its blur and its thickness stretched by 1 / cos a."""
    r = np.asarray(r_out, float).reshape(-1, n_rays)
    dth = 2 * np.pi / n_rays
    dr = (np.roll(r, -1, axis=1) - np.roll(r, 1, axis=1)) / (2 * dth)
    return (r / np.sqrt(r * r + dr * dr)).reshape(-1)


def scan_blur_and_density(prof: np.ndarray, radii: np.ndarray, e: RayEdges, max_rays: int = 600,
                          grid_var: np.ndarray = None, n_rays: int = None,
                          grid_w: np.ndarray = None) -> Tuple[float, float]:
    """(blur sigma mm, cortical density HU) of the scan, from the blurred step-cortex model
    fitted to the canal rays' profiles (both are properties of the scan, shared by all its
    rays; medians over many rays are robust to the ones the model fits poorly).

    With ``grid_var`` (per ray of ``prof``: the variance the voxel grid adds along the ray,
    :func:`grid_variance`) the blur is modelled as the scan's point-spread function: an
    isotropic reconstruction blur sigma_k plus the grid's anisotropic part, so each ray's
    blur is sqrt(sigma_k^2 + grid_var). sigma_k is the median of the freely fitted blurs less
    their grid part over the rays the grid blurs least; the model is then refitted with each
    ray's blur fixed, and the density is read on the rays blurred least (across thick slices,
    not along them): a cortex seen through more blur spreads into a low, wide bump whose
    height no longer tells its density, and a fit with a free blur there trades density for
    thickness and reads low. With ``grid_w`` (``n_rays`` rows: :func:`grid_widths` of the
    sweep's ray directions) that refit blurs with :class:`GridKernel` - the grid's part in its
    true shape (voxel box, interpolation triangle) rather than as a Gaussian of its variance.
    The returned sigma is sigma_k."""
    idx = np.nonzero(e.dip)[0]
    if idx.size < 2 * MIN_FIT_RAYS:
        return float("nan"), float("nan")
    if idx.size > max_rays:
        idx = idx[np.linspace(0, idx.size - 1, max_rays).astype(int)]
    ri, ro = e.r_in_half[idx], e.r_out_half[idx]
    lo = np.maximum(0.0, ri - MOMENT_INSIDE_MM)
    hi = ro + MOMENT_OUTSIDE_MAX_MM
    bg = e.outside_hu[idx]
    # each ray's fit window only: a fixed-length slice of its profile
    step = float(radii[1] - radii[0])
    i0 = np.clip(np.floor(lo / step).astype(int), 0, radii.size - 1)
    n_win = int(min(radii.size, np.ceil((hi - lo).max() / step) + 2))
    i0 = np.minimum(i0, radii.size - n_win)
    cols = i0[:, None] + np.arange(n_win)[None, :]
    ps = prof[idx[:, None], cols]
    rr = radii[cols]
    inner = (rr >= lo[:, None]) & (rr <= np.maximum(lo, ri - 0.3)[:, None])
    C0 = nanmedian_rows(np.where(inner, ps, np.nan))
    C0 = np.where((ri - 0.3 > lo) & np.isfinite(C0), C0, ps[:, 0])
    init = np.stack([C0, ri, ro, e.peak_hu[idx], np.full(len(idx), 0.5)], axis=1)
    th, rms = fit_cortex_model(ps, rr, lo, hi, bg, init)

    def valid(t):
        return (t[:, 1] < t[:, 2]) & (t[:, 3] > t[:, 0]) & (t[:, 4] > 0.06) & (t[:, 4] < 2.9) & \
            (t[:, 2] - t[:, 1] < 4.0) & (t[:, 1] > lo)

    ok = valid(th)
    if ok.sum() < MIN_FIT_RAYS:
        return float("nan"), float("nan")
    if grid_var is None:
        return float(np.median(th[ok, 4])), float(np.median(th[ok, 3]))
    g = np.asarray(grid_var, float)[idx]
    # a ray crossing its wall obliquely sees the blur stretched by 1 / cos a
    cos_a = np.ones(len(idx))
    if n_rays:
        cos_a = obliquity(e.r_out_half, n_rays)[idx]
        cos_a = np.where(np.isfinite(cos_a), np.clip(cos_a, MIN_RAY_COS, 1.0), MIN_RAY_COS)
    # the blur normal to the wall is sigma_k^2 + grid_var; sigma_k from the freely fitted
    # blurs of the rays the grid blurs least (across the slices): along thick slices the free
    # fit trades blur for cortical thickness and reads the blur low
    sg, s2 = g[ok], (th[ok, 4] * cos_a[ok]) ** 2
    least = sg <= SHARP_RAY_FACTOR ** 2 * float(np.min(sg)) + 1e-9
    sig_k = float(np.sqrt(max(np.median(s2[least] - sg[least]), 0.0)))
    s_ray = np.sqrt(sig_k ** 2 + g) / cos_a
    init2 = th.copy()
    init2[:, 4] = s_ray
    init2[~ok] = init[~ok]
    init2[~ok, 4] = s_ray[~ok]
    # the fixed-blur refit with the grid's part of the blur in its own (flat-topped) shape
    kernel = GridKernel(grid_w, sig_k, idx % n_rays, cos_a) if grid_w is not None and n_rays else None
    th2, _ = fit_cortex_model(ps, rr, lo, hi, bg, init2, free=(True, True, True, True, False), n_iter=12,
                              kernel=kernel)
    ok2 = valid(th2)
    if ok2.sum() < MIN_FIT_RAYS:
        return sig_k, float(np.median(th[ok, 3]))
    # the sharpest-seen rays (across the slices, not along them) resolve the cortex best; the
    # choice is made on the blur alone, never on a fitted thickness (which errs with the density)
    sharp = ok2 & (s_ray <= SHARP_RAY_FACTOR * float(np.min(s_ray[ok2])))
    if sharp.sum() >= MIN_FIT_RAYS:
        return sig_k, float(np.median(th2[sharp, 3]))
    return sig_k, float(np.median(th2[ok2, 3]))
