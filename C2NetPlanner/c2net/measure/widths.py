"""Widths of one cross-section from its edge radii r(theta).

* minimum caliper width (the MPD of a section) over all in-plane directions;
* the medullary canal as a region (the polygon of the inner edges, opened with a disk: the
  reader's rule that slit-like leaks narrower than a screw cannot hold one), and its
  transverse chords;
* transverse widths: along a given in-plane direction (the vertebra's left-right direction
  projected onto the section plane) through the canal centroid.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
from scipy import ndimage

from .sampling import nanmedian_rows

#: Raster pixel (mm) of the canal region and the radius (mm) of the opening disk.
CANAL_PIXEL_MM = 0.05
CANAL_OPENING_RADIUS_MM = 0.5
#: The reader's inner width is the mean of 5 transverse chords around the centroid height.
N_CHORDS = 5
CHORD_SPACING_MM = 0.25
#: Gaps in r(theta) up to this many degrees are interpolated; larger gaps leave the section
#: open (it is not a closed tube there).
MAX_GAP_DEG = 40.0

_PHI = np.radians(np.arange(0.0, 180.0, 1.0))
_NDIRS = np.stack([np.cos(_PHI), np.sin(_PHI)], axis=1)


def fill_gaps(r: np.ndarray) -> Tuple[np.ndarray, bool]:
    """Circular linear interpolation over NaN runs up to MAX_GAP_DEG; (r, closed)."""
    n = r.size
    ok = np.isfinite(r)
    if ok.all() and n >= 3:
        return r.astype(float), True     # nothing to fill (interpolation at the rays themselves)
    if ok.sum() < 3:
        return r.copy(), False
    step = 360.0 / n
    # longest circular NaN run (over the ring read twice, so a run may wrap around)
    bad = np.concatenate([~ok, ~ok]).astype(np.int8)
    edges = np.diff(np.concatenate([[0], bad, [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    best = min(int((ends - starts).max()) if starts.size else 0, n)
    closed = best * step <= MAX_GAP_DEG
    idx = np.nonzero(ok)[0]
    th = np.arange(n, dtype=float)
    xp = np.concatenate([idx - n, idx, idx + n]).astype(float)
    fp = np.concatenate([r[idx]] * 3)
    out = np.interp(th, xp, fp)
    return (out if closed else np.where(ok, r, np.nan)), bool(closed)


def smooth_circular(r: np.ndarray, half: int = 2) -> np.ndarray:
    """Median over 2*half+1 neighbouring rays, then a 3-ray mean (circular; NaN-aware).
    ``r`` (n,) or several rings at once (m, n): each row as on its own."""
    r = np.asarray(r)
    n = r.shape[-1]
    idx = (np.arange(n)[:, None] + np.arange(-half, half + 1)[None, :]) % n
    win = r[..., idx]
    fin_r = np.isfinite(r)
    if fin_r.all():
        # np.median where no ray is missing (the same value, ~10x faster than nanmedian)
        med = np.median(win, axis=-1)
    else:
        med = nanmedian_rows(win.reshape(-1, win.shape[-1])).reshape(r.shape)
    med = np.where(fin_r, med, np.nan)
    idx3 = (np.arange(n)[:, None] + np.arange(-1, 2)[None, :]) % n
    w3 = med[..., idx3]
    fin = np.isfinite(w3)
    cnt = fin.sum(axis=-1)
    mean3 = np.where(cnt > 0, np.where(fin, w3, 0.0).sum(axis=-1) / np.maximum(cnt, 1), np.nan)
    return np.where(np.isfinite(med), mean3, np.nan)


def min_caliper(pts2: np.ndarray):
    """(width, direction (2,), min proj, max proj, centroid) of the smallest caliper width."""
    if len(pts2) < 3:
        return np.nan, None, None, None, None
    proj = pts2 @ _NDIRS.T
    w = proj.max(axis=0) - proj.min(axis=0)
    k = int(np.argmin(w))
    return float(w[k]), _NDIRS[k], float(proj[:, k].min()), float(proj[:, k].max()), pts2.mean(axis=0)


def caliper_along(pts2: np.ndarray, n: np.ndarray) -> float:
    if len(pts2) < 3:
        return 0.0
    p = pts2 @ n
    return float(p.max() - p.min())


def star_inside(r: np.ndarray, dirs2: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Whether points (x, y) lie inside the star-shaped polygon with vertices r_k * dirs2_k
    (rays at equal angles from the origin, counter-clockwise): a point at angle phi between
    rays k and k+1 is inside when its distance from the origin is at most that of the edge
    from vertex k to vertex k+1 along the same direction."""
    n = r.size
    rr = np.maximum(r, 0.0)
    ang0 = float(np.arctan2(dirs2[0, 1], dirs2[0, 0]))
    step = 2 * np.pi / n
    phi = np.mod(np.arctan2(y, x) - ang0, 2 * np.pi)
    k = np.minimum((phi / step).astype(int), n - 1)
    k1 = (k + 1) % n
    ax_, ay_ = rr[k] * dirs2[k, 0], rr[k] * dirs2[k, 1]
    bx, by = rr[k1] * dirs2[k1, 0], rr[k1] * dirs2[k1, 1]
    ex, ey = bx - ax_, by - ay_
    c, s = np.cos(phi + ang0), np.sin(phi + ang0)
    num = ax_ * by - ay_ * bx                       # cross(a, b - a)
    den = c * ey - s * ex                           # cross(direction, b - a)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(np.abs(den) > 1e-12, num / den, np.minimum(rr[k], rr[k1]))
    return np.hypot(x, y) <= t


def polygon_centroid(r: np.ndarray, dirs2: np.ndarray) -> Optional[np.ndarray]:
    """Area centroid (2,) of the star-shaped polygon r_k * dirs2_k (NaN radii: None)."""
    if not np.all(np.isfinite(r)):
        return None
    p = dirs2 * np.maximum(r, 0.0)[:, None]
    q = np.roll(p, -1, axis=0)
    cr = p[:, 0] * q[:, 1] - q[:, 0] * p[:, 1]
    area = 0.5 * cr.sum()
    if area <= 1e-9:
        return None
    return np.array([((p[:, 0] + q[:, 0]) * cr).sum(), ((p[:, 1] + q[:, 1]) * cr).sum()]) / (6.0 * area)


def _open_disk(mask: np.ndarray, rad: int) -> np.ndarray:
    """Binary opening with the disk x^2 + y^2 <= rad^2 (outside the raster is background),
    from two exact Euclidean distance transforms instead of a structuring-element pass."""
    pad = rad + 1
    m = np.pad(mask, pad)
    # erosion: no background pixel within the disk
    d_bg = ndimage.distance_transform_edt(m)
    er = d_bg * d_bg > rad * rad + 0.5
    if not er.any():
        return np.zeros_like(mask)
    # dilation of the eroded set by the same disk
    d_er = ndimage.distance_transform_edt(~er)
    out = d_er * d_er <= rad * rad + 0.5
    return out[pad:-pad, pad:-pad]


def region(r: np.ndarray, dirs2: np.ndarray, extent_mm: float, opening_mm: float = 0.0,
           pixel_mm: float = CANAL_PIXEL_MM):
    """Boolean raster (pixels ``pixel_mm``, centred on the section centre) of the polygon
    r(theta) * dir(theta), optionally opened with a disk of radius ``opening_mm``."""
    n_px = int(np.ceil(2 * extent_mm / pixel_mm)) + 1
    ax = (np.arange(n_px) - (n_px - 1) / 2.0) * pixel_mm
    if not np.all(np.isfinite(r)) or np.all(r <= 0):
        return np.zeros((n_px, n_px), bool), ax
    poly = dirs2 * np.maximum(r, 0.0)[:, None]
    # only the pixels inside the polygon's box are tested
    lo, hi = poly.min(axis=0), poly.max(axis=0)
    ix = np.nonzero((ax >= lo[0] - pixel_mm) & (ax <= hi[0] + pixel_mm))[0]
    iy = np.nonzero((ax >= lo[1] - pixel_mm) & (ax <= hi[1] + pixel_mm))[0]
    out = np.zeros((n_px, n_px), bool)   # [y, x]
    if ix.size == 0 or iy.size == 0:
        return out, ax
    gx, gy = np.meshgrid(ax[ix], ax[iy])
    out[np.ix_(iy, ix)] = star_inside(r, dirs2, gx, gy)
    if opening_mm > 0:
        # opened within the polygon's box only (outside it the raster is background: the
        # same result on fewer pixels)
        rad = int(round(opening_mm / pixel_mm))
        box = (slice(iy[0], iy[-1] + 1), slice(ix[0], ix[-1] + 1))
        sub = _open_disk(out[box], rad)
        # keep the component nearest the centre (the canal, not a detached pocket)
        lab, nlab = ndimage.label(sub)
        if nlab > 1:
            c = (n_px - 1) // 2
            cy, cx = c - iy[0], c - ix[0]
            inside = 0 <= cy < sub.shape[0] and 0 <= cx < sub.shape[1]
            if inside and lab[cy, cx] > 0:
                keep = lab[cy, cx]
            else:
                sizes = ndimage.sum(sub, lab, range(1, nlab + 1))
                keep = int(np.argmax(sizes)) + 1
            sub = lab == keep
        out[box] = sub
    return out, ax


def chord_widths(mask: np.ndarray, ax: np.ndarray, direction2: np.ndarray,
                 centre2: Optional[np.ndarray] = None, n_chords: int = N_CHORDS,
                 spacing_mm: float = CHORD_SPACING_MM) -> float:
    """Mean length (mm) of ``n_chords`` chords of the region along ``direction2`` through
    (offsets across it of) ``centre2`` (default: the region's centroid); 0 for an empty
    region. Each chord is the run of region pixels that contains the chord's middle point
    (or the longest run when the middle is outside). The raster's pixel is ``ax``'s step."""
    if not mask.any():
        return 0.0
    px = round(float(ax[1] - ax[0]), 9) if len(ax) > 1 else CANAL_PIXEL_MM
    d = np.asarray(direction2, float) / np.linalg.norm(direction2)
    perp = np.array([-d[1], d[0]])
    if centre2 is None:
        yy, xx = np.nonzero(mask)
        centre2 = np.array([ax[xx].mean(), ax[yy].mean()])
    s = np.arange(-ax[-1], ax[-1] + 1e-9, px / 2)
    offs = (np.arange(n_chords) - (n_chords - 1) / 2.0) * spacing_mm
    pts = (centre2[None, None, :] + offs[:, None, None] * perp[None, None, :]
           + s[None, :, None] * d[None, None, :])                      # (chords, samples, 2)
    ix = np.round((pts[..., 0] - ax[0]) / px).astype(int)
    iy = np.round((pts[..., 1] - ax[0]) / px).astype(int)
    ok = (ix >= 0) & (ix < len(ax)) & (iy >= 0) & (iy < len(ax))
    inside = np.zeros(ix.shape, bool)
    inside[ok] = mask[iy[ok], ix[ok]]
    return float(np.mean([_run_through_middle(row) * px / 2 for row in inside]))


def _run_through_middle(inside: np.ndarray) -> int:
    """Length (samples) of the run of True that contains the middle sample, or of the longest
    run (the first of equal ones) when the middle is outside; 0 when there is none."""
    edges = np.diff(np.concatenate([[False], inside, [False]]).astype(np.int8))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if starts.size == 0:
        return 0
    mid = len(inside) // 2
    hit = np.flatnonzero((starts <= mid) & (ends > mid))
    k = int(hit[0]) if hit.size else int(np.argmax(ends - starts))
    return int(ends[k] - starts[k])
