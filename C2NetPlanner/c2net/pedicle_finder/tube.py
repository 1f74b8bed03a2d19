"""The cortical tube of the pedicle: the straight corridor of bone from the articular pillar to
the body, between the canal (medial) and the foramen transversarium (lateral).

A screw through the isthmus is a straight line that stays inside bone from the pillar to the
body; the isthmus is the constriction along it, the waist between the wider pillar behind and
the wider body in front. So, per side, the tube is found as the line segment through a waist of
maximum clearance: over candidate centres ``p`` next to the canal wall and axis directions
``d`` within the range C2 pedicles take (medial 10-40 deg, cranial 5-45 deg, the vertebra's own
frame being close to the scan's after localisation), the clearance along ``p + s d``,
``|s| <= SEGMENT_HALF_MM``, is read from the Euclidean distance transform of the inside-bone
mask (distance to canal, foramen, soft tissue), and a segment scores its least clearance when
it widens by ``WAIST_RISE_MM`` at both ends (:func:`waist_score`). Scored by least clearance
alone, a segment lying in the body next to a narrow isthmus beats the isthmus itself and puts
the "constriction" at its own end (5 mm median from the true isthmus on phantoms). The best
segment's constriction is the isthmus; its clearance is the radius of the largest screw that
fits.

Candidate centres: inside bone, 1-8 mm from the canal (the pedicle forms the canal's
anterolateral wall), on the side's half lateral of the canal centre, no further back than
the canal centre, medial of the foramen where one is closed on that slice, and on the slices
where the canal is closed (+-2 slices).

The mask handed to measurement is the inside-bone voxels within the corridor's clearance +
``MASK_MARGIN_MM`` (at most ``TUBE_RADIUS_MM``) of the axis over ``MASK_HALF_LENGTH_MM``
either side of the constriction, connected to it: its boundary lies on the bone surface where
the tube is free (at the isthmus), which is where measurement looks for the cortex, and it is
short, so that measurement's narrowest section is this isthmus and not a thin plate of the
pillar or the body's rim further along.

Research use only - not a medical device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

import numpy as np
from scipy import ndimage

from .canal import Canal
from .foramen import Foramen

SEGMENT_HALF_MM = 6.0
#: Axis directions searched (deg): coarse grid, then a finer one around the best segments.
MEDIAL_RANGE_DEG = (10.0, 40.0)
CRANIAL_RANGE_DEG = (5.0, 45.0)
COARSE_STEP_DEG = 10.0
FINE_STEP_DEG = 2.5
N_REFINED = 16
#: At the constriction the medial wall is the canal's: the canal lies at most this much (mm)
#: further from the axis than the nearest non-bone does (a corridor whose constriction is
#: bounded by soft tissue alone, far from the canal, is not the pedicle).
CANAL_WALL_MM = 2.5
#: Candidate centres: distance (mm) from the canal, lateral offset from its centre (mm).
CANAL_DISTANCE_MM = (1.0, 8.0)
MIN_LATERAL_MM = 3.0
#: The isthmus lies at the canal's anterolateral corner: lateral of the canal centre by at
#: least this share of the canal's half-width (the canal's own size sets the scale).
MIN_LATERAL_SHARE = 0.6
MAX_BEHIND_CANAL_CENTRE_MM = 3.0
#: The least clearance (mm) of a tube: a 1 mm-radius corridor is no pedicle but a crack.
MIN_CLEARANCE_MM = 0.75
#: The mask reaches this far (mm) beyond the corridor's clearance from the axis (the outer
#: cortex of a tube taller than wide lies within it), and at most TUBE_RADIUS_MM.
MASK_MARGIN_MM = 2.0
TUBE_RADIUS_MM = 4.5
MASK_HALF_LENGTH_MM = 6.5
#: A corridor through the isthmus widens by at least this much (mm) at both ends of its segment.
WAIST_RISE_MM = 0.5
WAIST_RISE_WEIGHT = 0.25
WAIST_RISE_CAP_MM = 2.0
#: C2's pedicle isthmus lies below its superior articular facets, which sit at the base of the
#: dens: 24-33 mm below the dens tip along the spine on the three shared real scans (24.4-30.5)
#: and the project's phantoms (24.1-33.3). C1's lateral masses - a corridor of bone between C1's
#: ring around the dens and C1's foramen transversarium, which looks like a pedicle to the
#: corridor search - lie 8-15 mm below the tip; just above C2's isthmi, 18-20 mm below the
#: tip, the bone under C2's superior facets beside the canal is a wide waist too (a thin
#: pedicle re-posed loses to it: CThead's left on the shared scans turned 10-20 degrees). No
#: isthmus higher than this (mm below the tip) is answered. C2's side of the margin:
#: a frame still rolled sideways (:mod:`.symmetry` corrects rolls over 10 degrees; its
#: estimate errs by up to ~3 degrees more on real necks: a pedicle 16 mm off the midline then
#: sits up to 3.3 mm higher) and a tip read low (by at most 0.5 mm on 24 held-out phantoms;
#: 1 mm allowed): 24.4 - 3.3 - 1 = 20 mm.
MIN_ISTHMUS_BELOW_TIP_MM = 20.0
#: ... and the middle of C2's 24-33 mm: where its isthmi are expected below the tip.
TYPICAL_ISTHMUS_BELOW_TIP_MM = 28.5
#: Ranks of a segment, best last: its constriction off the canal wall (not the pedicle), on the
#: wall without a waist (kept for a pedicle whose clearance nowhere narrows), on the wall
#: through a waist. Segments are compared by rank first, then by score.
OFF_THE_CANAL_WALL, NO_WAIST, WAIST = 0, 1, 2


@dataclass
class Tube:
    side: str
    isthmus_kji: np.ndarray        # continuous (S, P, L) index of the constriction
    axis_kji: np.ndarray           # unit direction, posterior -> anterior, in (S, P, L)
    clearance_mm: float            # least distance to non-bone along the segment
    mask: np.ndarray               # [S, P, L] bool
    medial_deg: float
    cranial_deg: float
    evidence: dict = field(default_factory=dict)


def directions(side: str, medial_deg: np.ndarray, cranial_deg: np.ndarray) -> np.ndarray:
    """Unit (S, P, L) axis directions (posterior -> anterior) for angle pairs (deg)."""
    sgn = 1.0 if side == "left" else -1.0
    m, c = np.radians(medial_deg), np.radians(cranial_deg)
    return np.stack([np.sin(c), -np.cos(c) * np.cos(m), -sgn * np.cos(c) * np.sin(m)], axis=-1)


def _grid(lo_hi: tuple, step: float) -> np.ndarray:
    return np.arange(lo_hi[0], lo_hi[1] + 1e-9, step)


def _segment_clearance(clear: np.ndarray, centres: np.ndarray, dirs: np.ndarray,
                       s: np.ndarray, order: int) -> np.ndarray:
    """(N, S) clearance along ``centres[n] + s * dirs[n]`` (nearest voxel or trilinear)."""
    pts = centres[:, None, :] + s[None, :, None] * dirs[:, None, :]
    if order == 0:
        idx = np.rint(pts).astype(np.intp)
        shape = np.asarray(clear.shape)
        inside = np.all((idx >= 0) & (idx < shape), axis=-1)
        idx = np.clip(idx, 0, shape - 1)
        return np.where(inside, clear[idx[..., 0], idx[..., 1], idx[..., 2]], 0.0)
    return ndimage.map_coordinates(clear, pts.reshape(-1, 3).T, order=1, mode="constant",
                                   cval=0.0).reshape(pts.shape[:2])


def waist_score(line: np.ndarray) -> tuple:
    """Per segment (rows of ``line``: clearance along it) ``(score, rank)``: the score is the
    least clearance, plus, when the segment runs through a waist, a little for how clearly it
    widens both ways; the rank is :data:`WAIST` or :data:`NO_WAIST` (a segment without a waist
    ranks after every waist, kept for a pedicle whose clearance nowhere narrows).

    A waist: the clearance at both ends of the segment exceeds its least value by at least
    ``WAIST_RISE_MM``. The pedicle joins the wider pillar to the wider body, so a segment across
    the isthmus widens both ways; a segment lying in the body or the pillar alone, whose least
    clearance sits at the end that approaches the isthmus, is not the pedicle's corridor (and
    scored by its least clearance alone it would win over the real, narrower one). Where two
    waists are about as wide (a thin ring has several), the more pronounced constriction -
    wide bone on both sides - is the isthmus: ``WAIST_RISE_WEIGHT`` mm of score per mm of
    widening, up to ``WAIST_RISE_CAP_MM``.
    """
    least = line.min(axis=1)
    rise = np.minimum(line[:, 0], line[:, -1]) - least
    waist = rise >= WAIST_RISE_MM
    bonus = WAIST_RISE_WEIGHT * np.minimum(rise, WAIST_RISE_CAP_MM)
    return np.where(waist, least + bonus, least), np.where(waist, WAIST, NO_WAIST)


def _best_first(score: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Indices ordered by rank, then score, best first."""
    return np.lexsort((score, rank))[::-1]


def isthmus_height_bounds(tip_slice: Optional[float] = None,
                          slices: Optional[tuple] = None) -> Tuple[float, float]:
    """(lo, hi) continuous slices between which an isthmus may lie: none higher than
    :data:`MIN_ISTHMUS_BELOW_TIP_MM` below the dens tip (``tip_slice``, when known; C1's
    lateral masses lie above) and within ``slices`` (lo, hi) when given (the other side's
    height)."""
    lo, hi = -np.inf, np.inf
    if tip_slice is not None:
        hi = float(tip_slice) - MIN_ISTHMUS_BELOW_TIP_MM
    if slices is not None:
        lo, hi = max(lo, float(slices[0])), min(hi, float(slices[1]))
    return lo, hi


def isthmus_slice_range(canal: Canal, n_slices: int, tip_slice: Optional[float] = None,
                        slices: Optional[tuple] = None) -> Tuple[int, int]:
    """(lo, hi): the slices lo <= k < hi a candidate isthmus centre may lie on - where the
    canal is closed (+-2 slices), within :func:`isthmus_height_bounds`."""
    ks = canal.slices
    k_lo, k_hi = max(int(ks.min()) - 2, 0), min(int(ks.max()) + 3, n_slices)
    lo, hi = isthmus_height_bounds(tip_slice, slices)
    if np.isfinite(lo):
        k_lo = max(k_lo, int(np.ceil(lo)))
    if np.isfinite(hi):
        k_hi = min(k_hi, int(np.floor(hi)) + 1)
    return k_lo, k_hi


def candidate_centres(solid: np.ndarray, clear: np.ndarray, canal: Canal, foramen: Foramen,
                      canal_dist: np.ndarray, side: str, tip_slice: Optional[float] = None,
                      slices: Optional[tuple] = None,
                      near: Optional[tuple] = None) -> np.ndarray:
    """(N, 3) integer (S, P, L) indices where the isthmus centre may lie; with ``tip_slice``
    (the dens tip's continuous slice) none higher than :data:`MIN_ISTHMUS_BELOW_TIP_MM` below
    it (C1's lateral masses); with ``slices`` (lo, hi) only on slices lo <= k <= hi; with
    ``near`` ((S, P, L) index, radius mm) only within that radius of the point."""
    sgn = 1.0 if side == "left" else -1.0
    zone = np.zeros_like(solid, dtype=bool)
    k_lo, k_hi = isthmus_slice_range(canal, solid.shape[0], tip_slice, slices)
    geo = canal.per_slice()
    rows, cols = np.indices(solid.shape[1:])
    for k in range(k_lo, k_hi):
        cr, cc, half = geo[k]
        z = (solid[k] & (clear[k] >= 1.0)
             & (canal_dist[k] >= CANAL_DISTANCE_MM[0]) & (canal_dist[k] <= CANAL_DISTANCE_MM[1])
             & (sgn * (cols - cc) >= max(MIN_LATERAL_MM, MIN_LATERAL_SHARE * half))
             & (rows - cr <= MAX_BEHIND_CANAL_CENTRE_MM))
        if np.isfinite(foramen.center_pl[k, 0]):
            z &= sgn * (cols - foramen.center_pl[k, 1]) < 0
        zone[k] = z
    cand = np.argwhere(zone)
    if near is not None:
        point, radius = near
        cand = cand[np.linalg.norm(cand - np.asarray(point, float), axis=1) <= radius]
    return cand


def find_tube(solid: np.ndarray, clear: np.ndarray, canal: Canal, foramen: Foramen,
              canal_dist: np.ndarray, side: str, tip_slice: Optional[float] = None,
              slices: Optional[tuple] = None, near: Optional[tuple] = None) -> Optional[Tube]:
    """The maximum-clearance corridor of ``side``; None when no corridor of bone is there.
    ``tip_slice``: the dens tip's continuous slice, when known; ``slices``: (lo, hi), the
    slices the isthmus centre is searched on; ``near``: (point, radius), the sphere it is
    searched in (:func:`candidate_centres`)."""
    cand = candidate_centres(solid, clear, canal, foramen, canal_dist, side, tip_slice, slices,
                             near)
    if len(cand) == 0:
        return None
    s = np.arange(-SEGMENT_HALF_MM, SEGMENT_HALF_MM + 1e-9, 1.0)
    # coarse: every candidate centre x a 10 deg direction grid, nearest-voxel clearance
    mg, cg = np.meshgrid(_grid(MEDIAL_RANGE_DEG, COARSE_STEP_DEG),
                         _grid(CRANIAL_RANGE_DEG, COARSE_STEP_DEG), indexing="ij")
    angles = np.stack([mg.ravel(), cg.ravel()], axis=1)
    dirs = directions(side, angles[:, 0], angles[:, 1])
    n, m = len(cand), len(dirs)
    coarse, coarse_rank = waist_score(_segment_clearance(
        clear, np.repeat(cand, m, 0).astype(float), np.tile(dirs, (n, 1)), s, order=1))
    top = _best_first(coarse, coarse_rank)[:N_REFINED]
    # fine: around the best segments, 2.5 deg and the 6 neighbouring voxels, trilinear clearance
    fine = np.arange(-COARSE_STEP_DEG, COARSE_STEP_DEG + 1e-9, FINE_STEP_DEG)
    shifts = np.vstack([np.zeros((1, 3), int), np.eye(3, dtype=int), -np.eye(3, dtype=int)])
    geo = canal.per_slice()
    h_lo, h_hi = isthmus_height_bounds(tip_slice, slices)
    sgn = 1.0 if side == "left" else -1.0
    best = (-1, -np.inf, None, None, None, None)     # rank, score, centre, axis, line, angles
    for t in top:
        p0, a0 = cand[t // m].astype(float), angles[t % m]
        fm, fc = np.meshgrid(a0[0] + fine, a0[1] + fine, indexing="ij")
        fa = np.stack([fm.ravel(), fc.ravel()], axis=1)
        fa = fa[(fa[:, 0] >= MEDIAL_RANGE_DEG[0]) & (fa[:, 0] <= MEDIAL_RANGE_DEG[1])
                & (fa[:, 1] >= CRANIAL_RANGE_DEG[0]) & (fa[:, 1] <= CRANIAL_RANGE_DEG[1])]
        if len(fa) == 0:
            continue
        fd = directions(side, fa[:, 0], fa[:, 1])
        cs = p0 + shifts
        cc = np.repeat(cs, len(fd), 0)
        dd = np.tile(fd, (len(cs), 1))
        line = _segment_clearance(clear, cc, dd, s, order=1)
        sc, rank = waist_score(line)
        jm = np.argmin(line, axis=1)
        qs = cc + s[jm][:, None] * dd
        cd = ndimage.map_coordinates(canal_dist, qs.T, order=1, mode="nearest")
        g = geo[np.clip(np.rint(qs[:, 0]).astype(int), 0, len(geo) - 1)]
        lateral = sgn * (qs[:, 2] - g[:, 2 - 1]) >= np.maximum(MIN_LATERAL_MM,
                                                               MIN_LATERAL_SHARE * g[:, 2])
        # the constriction itself, not only the segment's centre, lies within the height
        # bounds (a cranially tilted segment reaches a few mm above or below its centre)
        inside = (qs[:, 0] >= np.floor(h_lo) - 0.5) & (qs[:, 0] <= np.floor(h_hi) + 0.5)
        rank = np.where((cd - sc <= CANAL_WALL_MM) & lateral & inside, rank, OFF_THE_CANAL_WALL)
        i = int(_best_first(sc, rank)[0])
        if (int(rank[i]), float(sc[i])) > best[:2]:
            best = (int(rank[i]), float(sc[i]), cc[i], dd[i], line[i], fa[i % len(fd)])
    rank, _, p, d, line, ang = best
    waist = rank == WAIST
    if rank == OFF_THE_CANAL_WALL:
        p = None                       # only corridors away from the canal wall: none
    score = float(line.min()) if p is not None else 0.0   # the corridor's clearance
    if p is None or score < MIN_CLEARANCE_MM:
        return None
    # the constriction along the best segment (sub-mm: parabola through the least sample)
    j = int(np.argmin(line))
    off = 0.0
    if 0 < j < len(s) - 1:
        den = line[j - 1] - 2 * line[j] + line[j + 1]
        if den > 1e-6:
            off = float(np.clip(0.5 * (line[j - 1] - line[j + 1]) / den, -0.5, 0.5))
    q = p + (s[j] + off) * d
    radius = min(score + MASK_MARGIN_MM, TUBE_RADIUS_MM)
    mask = tube_mask(solid, q, d, radius)
    return Tube(side=side, isthmus_kji=q, axis_kji=d, clearance_mm=score, mask=mask,
                medial_deg=float(ang[0]), cranial_deg=float(ang[1]),
                evidence={"candidates": int(len(cand)), "clearance_mm": round(score, 2),
                          "waist": bool(waist), "rank": int(rank),
                          "score": round(float(best[1]), 3),
                          "foramen_slices": foramen.n_slices})


def tube_mask(solid: np.ndarray, q: np.ndarray, d: np.ndarray,
              radius: float = TUBE_RADIUS_MM) -> np.ndarray:
    """Inside-bone voxels within the tube radius of the axis ``q + t d``, connected to ``q``."""
    lo = np.maximum(np.floor(q - MASK_HALF_LENGTH_MM - TUBE_RADIUS_MM).astype(int), 0)
    hi = np.minimum(np.ceil(q + MASK_HALF_LENGTH_MM + TUBE_RADIUS_MM).astype(int) + 1,
                    solid.shape)
    sub = tuple(slice(a, b) for a, b in zip(lo, hi))
    g = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), -1)
    rel = g - q
    t = rel @ d
    r = np.linalg.norm(rel - t[..., None] * d, axis=-1)
    keep = solid[sub] & (np.abs(t) <= MASK_HALF_LENGTH_MM) & (r <= radius)
    lab, n = ndimage.label(keep)
    out = np.zeros_like(solid, dtype=bool)
    if n == 0:
        return out
    qi = tuple(np.clip(np.round(q - lo).astype(int), 0, np.asarray(keep.shape) - 1))
    target = lab[qi]
    if target == 0:     # the axis point fell on a marrow hole: keep the largest piece
        target = 1 + int(np.argmax(np.bincount(lab.ravel())[1:]))
    out[sub] = lab == target
    return out
