"""The spine's own frame at C1-C3: its axis from the canal, its front from bilateral symmetry.

The localiser reads the dens, the C1 ring and the C2/C3 disc slice by slice *along the spine*
and "in front of the canal". Necks are flexed, extended, tilted and turned, so those words
must refer to the spine, not to the scanner:

* **axis** (up): a least-squares line through the upper part of the canal track (the canal
  runs along the spine; over C1-C3 it is straight to a few degrees);
* **front** (anterior): a vertebra is mirror-symmetric about its mid-sagittal plane. On a slab
  of bone perpendicular to the axis around the canal, the mirror line through the canal
  centre that best superimposes the bone on its mirror image is the anterior-posterior
  direction (a turned head turns it). Of its two senses the one nearer the image's anterior
  is taken: the header's patient orientation is right to within the poses considered
  (< 90 degrees).

``SpineFrame.rotation`` has columns (L, P, S) in LPS; canonical when the spine is upright.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .canal import MAX_GAP_MM

#: Length (mm) of the top of the canal track through which the spine axis is fitted (C1-C3).
AXIS_FIT_MM = 60.0
#: A window of the track is straight when its points lie within this rms distance (mm) of
#: its line.
MAX_RMS_MM = 3.0
#: The windows lie in the top of the track (mm of its length): C1-C4, not the lordotic lower neck.
UPPER_CANAL_MM = 110.0
#: The slab (mm below the canal's top) and radius (mm) whose bone gives the mirror plane.
SYMMETRY_SLAB_MM = (8.0, 60.0)
SYMMETRY_RADIUS_MM = 40.0
#: Bone threshold (HU, 2 mm averaged) for the symmetry image.
SYMMETRY_BONE_HU = 200.0
#: Turns searched (degrees either way); beyond them the header's orientation is doubtful.
MAX_TURN_DEG = 50.0


@dataclass
class SpineFrame:
    """``rotation`` columns: LPS directions of the spine's left, posterior and up axes;
    ``tilt_deg``: angle of the axis from the image's superior; ``turn_deg``: rotation of the
    front about the axis (positive towards the patient's left); ``symmetry``: the mirror
    correlation that chose it (0..1); ``source``: which axes the cues are read along."""

    rotation: np.ndarray
    tilt_deg: float
    turn_deg: float
    symmetry: float
    source: str = "spine"

    def evidence(self) -> dict:
        return {"axis_lps": [round(float(v), 3) for v in self.rotation[:, 2]],
                "anterior_lps": [round(float(v), 3) for v in -self.rotation[:, 1]],
                "tilt_deg": round(self.tilt_deg, 1), "turn_deg": round(self.turn_deg, 1),
                "symmetry": round(self.symmetry, 3), "read_along": self.source}


def rotation_from(up: np.ndarray, back: np.ndarray) -> np.ndarray:
    """Right-handed (L, P, S) columns from an up and a roughly posterior LPS direction."""
    s = np.asarray(up, float) / np.linalg.norm(up)
    p = np.asarray(back, float) - np.dot(back, s) * s
    p /= np.linalg.norm(p)
    left = np.cross(p, s)
    return np.stack([left, p, s], axis=1)


def _fit_line(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(unit direction pointing up, mean, rms distance) of a least-squares line."""
    mean = pts.mean(0)
    _, _, vt = np.linalg.svd(pts - mean, full_matrices=False)
    axis = vt[0] if vt[0][2] >= 0 else -vt[0]
    d = pts - mean
    off = np.linalg.norm(d - np.outer(d @ axis, axis), axis=1)
    return axis, mean, float(np.sqrt(np.mean(off ** 2)))


def canal_axis(track_lps: np.ndarray, observed: np.ndarray, area_mm2: np.ndarray,
               spacing_mm: float) -> np.ndarray:
    """Unit LPS axis (pointing up) of the upper canal, from the track (ordered upwards); see
    :func:`canal_line`."""
    return canal_line(track_lps, observed, area_mm2, spacing_mm)[0]


def canal_line(track_lps: np.ndarray, observed: np.ndarray, area_mm2: np.ndarray,
               spacing_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(unit LPS axis pointing up, LPS point on it) of the upper canal's line, from the track
    (ordered upwards).

    Only slices where the canal was seen with a canal-sized cross-section (>= 60 mm^2) count:
    small enclosed pockets (a foramen, the gap between laminae) are off the canal's centre
    line. Above C1 the track can run on into enclosed pockets of the skull base (a tilted head
    puts mastoid and petrous bone around soft tissue on one slice); such stretches are short.
    Windows of ``AXIS_FIT_MM`` within the top ``UPPER_CANAL_MM`` of the track (C1-C4; the lower
    neck curves) are fitted with a line; the axis is that of the straight window (points
    within ``MAX_RMS_MM`` of its line) on whose line most of the track lies, the highest of
    equals."""
    n = len(track_lps)
    keep = observed & (area_mm2 >= 60.0)
    pts = track_lps[keep] if keep.sum() >= 4 else track_lps
    if n < 4 or len(pts) < 4 or np.ptp(pts[:, 2]) < 3 * spacing_mm:
        return np.array([0.0, 0.0, 1.0]), pts.mean(0)
    arc = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))]
    best = None
    first = max(0.0, arc[-1] - UPPER_CANAL_MM)
    for start in np.arange(first, max(arc[-1] - AXIS_FIT_MM, first) + 1e-6, 2.0 * spacing_mm):
        window = (arc >= start) & (arc <= start + AXIS_FIT_MM)
        if window.sum() < 4:
            continue
        axis, mean, rms = _fit_line(pts[window])
        # one refit without the points more than 4 mm off
        d = pts[window] - mean
        off = np.linalg.norm(d - np.outer(d @ axis, axis), axis=1)
        if (off <= 4.0).sum() >= 4:
            axis, mean, rms = _fit_line(pts[window][off <= 4.0])
        d_all = pts - mean
        off_all = np.linalg.norm(d_all - np.outer(d_all @ axis, axis), axis=1)
        support = int((off_all <= MAX_RMS_MM + 1.0).sum())
        cand = (rms <= MAX_RMS_MM, support, start, axis, mean)
        if best is None or cand[:3] > best[:3]:
            best = cand
    axis, mean = best[3:] if best is not None else _fit_line(pts)[:2]
    return axis / np.linalg.norm(axis), mean


#: The canal proper, followed up from its line's window, ends at the last canal-sized
#: (>= 60 mm^2) piece within ``TOP_OFF_LINE_MM`` of the line before a stretch of
#: ``TOP_GAP_MM`` without one. Above C1 the track can chain on through small enclosed pockets
#: of the skull base (12-50 mm^2, the foramina, the mastoid cells; gaps of up to 30 mm bridged)
#: that wander 15-45 mm off the canal's line: they are no canal, and a "canal top" among them
#: puts the C1-C2 search 30-100 mm too high (the real-scan variants' "no dens" refusals). Within
#: the canal a whole vertebra's height may go unseen where its ring does not enclose the canal
#: on the coarse grid (thin laminae; 24-28 mm of C2 on the phantoms), so the gap allowed is
#: the one the track itself may jump (:data:`c2net.locate.canal.MAX_GAP_MM`).
TOP_OFF_LINE_MM = 10.0
TOP_GAP_MM = MAX_GAP_MM


def canal_top_index(track_lps: np.ndarray, observed: np.ndarray, area_mm2: np.ndarray,
                    axis: np.ndarray, point: np.ndarray) -> int:
    """Index of the canal proper's highest point in the track (ordered upwards) whose line is
    ``axis`` through ``point`` (:func:`canal_line`): see ``TOP_OFF_LINE_MM``."""
    d = np.asarray(track_lps, float) - point
    h = d @ axis
    off = np.linalg.norm(d - np.outer(h, axis), axis=1)
    good = np.nonzero(observed & (area_mm2 >= 60.0) & (off <= TOP_OFF_LINE_MM))[0]
    if len(good) == 0:
        return len(track_lps) - 1
    last = int(good[np.argmin(np.abs(h[good]))])   # the canal at the line's own window
    for i in good[good > last]:
        if h[i] - h[last] > TOP_GAP_MM:
            break
        last = int(i)
    return max(last, int(np.argmin(np.abs(h))))


def mirror_turn(bone2d: np.ndarray, centre_pl: tuple, spacing_mm: float
                ) -> tuple[float, float]:
    """(angle deg, correlation): the mirror line that best superimposes ``bone2d`` (a 2D
    ``[P, L]`` image) on its mirror image. The line passes through the centroid of the bone
    within ``SYMMETRY_RADIUS_MM`` of ``centre_pl`` (the canal; P, L indices): a symmetric
    shape's mirror line holds its centroid. Angle 0 is the P axis; positive turns the front
    towards +L."""
    img = bone2d.astype(float)
    if img.sum() <= 0:
        return 0.0, 0.0
    pp, ll = np.mgrid[:img.shape[0], :img.shape[1]].astype(float)
    pc, lc = centre_pl
    raw = img
    for _ in range(2):  # the mirror line passes through the bone's centroid near the canal
        weight = np.hypot(pp - pc, ll - lc) <= SYMMETRY_RADIUS_MM / spacing_mm
        img = raw * weight
        if img.sum() <= 0:
            return 0.0, 0.0
        pc, lc = float((img * pp).sum() / img.sum()), float((img * ll).sum() / img.sum())
    dp, dl = pp - pc, ll - lc

    def score(deg: float) -> float:
        t = np.radians(deg)
        # unit vector of the mirror line (anterior-posterior) in (P, L)
        up_, ul_ = np.cos(t), -np.sin(t)
        along = dp * up_ + dl * ul_
        # mirror: keep the component along the line, flip the perpendicular one
        mp = pc + 2 * along * up_ - dp
        ml = lc + 2 * along * ul_ - dl
        mirrored = ndimage.map_coordinates(img, [mp, ml], order=1, mode="constant", cval=0.0)
        den = np.sqrt((img ** 2).sum() * (mirrored ** 2).sum())
        return float((img * mirrored).sum() / den) if den > 0 else 0.0

    angles = np.arange(-MAX_TURN_DEG, MAX_TURN_DEG + 0.1, 5.0)
    scores = np.array([score(a) for a in angles])
    i = int(np.argmax(scores))
    fine = np.arange(angles[i] - 4.0, angles[i] + 4.1, 1.0)
    fs = np.array([score(a) for a in fine])
    j = int(np.argmax(fs))
    return float(fine[j]), float(fs[j])


def estimate_frame(work_hu: np.ndarray, lps_to_work, spacing_mm: float, track_lps: np.ndarray,
                   observed: np.ndarray, area_mm2: np.ndarray) -> SpineFrame:
    """The spine frame from the canal track (LPS points, ordered upwards) and the coarse
    canonical work volume (``lps_to_work`` maps LPS mm to its [S, P, L] indices)."""
    axis = canal_axis(track_lps, observed, area_mm2, spacing_mm)
    rot0 = rotation_from(axis, np.array([0.0, 1.0, 0.0]))
    top = track_lps[np.argmax(track_lps[:, 2])]
    # a slab perpendicular to the axis, sampled on a 2 mm grid of the tilted frame
    r = SYMMETRY_RADIUS_MM
    us = np.arange(-SYMMETRY_SLAB_MM[1], -SYMMETRY_SLAB_MM[0] + 0.1, spacing_mm)
    ua = np.arange(-r, r + 0.1, spacing_mm)
    gs, gp, gl = np.meshgrid(us, ua, ua, indexing="ij")
    # centre the slab on the canal where the track passes through it
    u_track = (track_lps - top) @ rot0
    pts = top + np.stack([gl, gp, gs], axis=-1) @ rot0.T
    order = np.argsort(u_track[:, 2])
    mid = -0.5 * sum(SYMMETRY_SLAB_MM)
    centre_lp = [float(np.interp(mid, u_track[order, 2], u_track[order, i])) for i in (0, 1)]
    pts = pts + rot0[:, 0] * centre_lp[0] + rot0[:, 1] * centre_lp[1]
    idx = lps_to_work(pts.reshape(-1, 3))
    vals = ndimage.map_coordinates(work_hu, idx.T, order=1, mode="constant", cval=-1000.0)
    bone = (vals.reshape(gs.shape) > SYMMETRY_BONE_HU).mean(axis=0)   # [P, L] bone fraction
    c = (len(ua) - 1) / 2.0
    turn, corr = mirror_turn(bone, (c, c), spacing_mm)
    t = np.radians(turn)
    anterior = -(np.cos(t) * rot0[:, 1] - np.sin(t) * rot0[:, 0])
    rot = rotation_from(axis, -anterior)
    tilt = float(np.degrees(np.arccos(np.clip(axis[2], -1.0, 1.0))))
    return SpineFrame(rotation=rot, tilt_deg=tilt, turn_deg=turn, symmetry=corr)
