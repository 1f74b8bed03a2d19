"""Synthetic cervical CT phantoms with exact C2 pedicle ground truth.

``make_phantom(seed, ...)`` draws a random cervical spine (:mod:`c2net.phantom_anatomy`:
C1-C7, skull base, mandible, hyoid, neck soft tissue, airway) whose C2 pedicles are analytic
hourglass tubes (:mod:`c2net.phantom_pedicle`) with a known minimum pedicle diameter (MPD),
places it in scanner space with a small head rotation, and rasterises it onto the requested
grid (any spacing and direction matrix) directly from the signed distances, with a
partial-volume ramp, a scanner point-spread blur and noise.

Frames: everything in ``truth.json`` is LPS millimetres (SimpleITK physical points).
Labels (``labels.nii.gz``, uint8, same grid as the CT): see
:data:`c2net.phantom_anatomy.LABELS` (1 C2, 2 left C2 pedicle, 3 right C2 pedicle, 4 C1,
5 C3, 6-9 C4-C7, 10 skull, 11 mandible, 12 hyoid). A label voxel is set when its centre lies
inside the shape (no partial volume in the labels).

Research use only — not a medical device.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from . import DISCLAIMER, __version__
from . import phantom_shapes as sh
from .errors import InputError, OutputError
from .phantom_anatomy import LABELS, Anatomy, Part, build_anatomy, rot_x, rot_y, rot_z
from .phantom_pedicle import in_label_segment, pedicle_outer_width_mm  # noqa: F401 (re-export)

TRUTH_SCHEMA = "c2net-phantom-truth"
TRUTH_SCHEMA_VERSION = 1
FOV_MODES = ("random", "c1_c4", "c1_c7", "skull_c5", "full_neck", "c2_edge", "c2_crop", "c2_cut")
MAX_VOXELS_DEFAULT = 16_000_000
_BIG = 1.0e3

__all__ = [
    "Phantom", "make_phantom", "write_phantom", "read_phantom", "parse_direction",
    "pedicle_outer_width_mm", "in_label_segment", "LABELS", "FOV_MODES",
]


@dataclass
class Phantom:
    """A synthetic CT (float32 HU, integer-valued), its label map and its ground truth."""

    ct: sitk.Image
    labels: sitk.Image
    truth: dict


# ----------------------------------------------------------------------------- directions
_LETTERS = {"L": (0, 1.0), "R": (0, -1.0), "P": (1, 1.0), "A": (1, -1.0), "S": (2, 1.0),
            "I": (2, -1.0)}


def parse_direction(direction) -> np.ndarray:
    """A 3x3 direction matrix (columns = LPS directions of the index axes i, j, k).

    Accepts None (axial LPS: identity), 9 numbers (row-major, as ``sitk.Image.GetDirection``),
    a 3x3 array, or a 3-letter orientation code such as ``"LPS"``, ``"RAI"`` or ``"ASL"``
    (letter c = the patient direction index axis c points towards).
    """
    if direction is None:
        return np.eye(3)
    if isinstance(direction, str):
        code = direction.strip().upper()
        if len(code) != 3 or any(c not in _LETTERS for c in code):
            raise InputError(f"orientation code {direction!r} is not valid",
                             "use three letters from L/R, P/A, S/I, one per axis, e.g. LPS or RAI")
        m = np.zeros((3, 3))
        axes = set()
        for col, c in enumerate(code):
            axis, sign = _LETTERS[c]
            m[axis, col] = sign
            axes.add(axis)
        if len(axes) != 3:
            raise InputError(f"orientation code {direction!r} repeats an axis",
                             "each of L/R, P/A and S/I must appear exactly once, e.g. LPS")
        return m
    m = np.asarray(direction, dtype=float)
    if m.size != 9:
        raise InputError(f"a direction matrix needs 9 numbers, got {m.size}",
                         "give 9 numbers (row-major) or a 3-letter code such as LPS")
    m = m.reshape(3, 3)
    if not np.allclose(m.T @ m, np.eye(3), atol=1e-4):
        raise InputError("the direction matrix is not orthonormal",
                         "give unit, mutually perpendicular column vectors")
    return m


def _random_direction(rng: np.random.Generator) -> np.ndarray:
    r = rng.random()
    if r < 0.55:
        m = np.eye(3)
    else:
        codes = ["RAI", "LPI", "RAS", "LAS", "RPS", "ASL", "PSR", "LSA", "RSP", "PIL"]
        m = parse_direction(codes[int(rng.integers(len(codes)))])
    if rng.random() < 0.35:  # gantry tilt / small obliquity
        m = rot_x(rng.uniform(-8, 8)) @ rot_z(rng.uniform(-4, 4)) @ m
    return m


# ----------------------------------------------------------------------------- rasteriser
def _occ(d: np.ndarray, ramp: float) -> np.ndarray:
    """Partial-volume fraction of a voxel centred at signed distance ``d`` (linear ramp)."""
    return np.clip(0.5 - d / ramp, 0.0, 1.0)


class _Grid:
    """Affine map from voxel indices (i, j, k) to C2-frame coordinates: q = b + A @ ijk."""

    def __init__(self, A: np.ndarray, b: np.ndarray, shape_kji: Tuple[int, int, int]):
        self.A = np.asarray(A, dtype=float)
        self.b = np.asarray(b, dtype=float)
        self.shape = tuple(int(n) for n in shape_kji)
        self.Ainv = np.linalg.inv(self.A)

    def block(self, lo_q: np.ndarray, hi_q: np.ndarray, frame, margin_mm: float):
        """Index slices covering a part's bounding box (given in the part frame)."""
        corners = np.array([[x, y, z] for x in (lo_q[0], hi_q[0]) for y in (lo_q[1], hi_q[1])
                            for z in (lo_q[2], hi_q[2])])
        if frame is not None:
            corners = corners @ frame[1].T + frame[0]
        ijk = (corners - self.b) @ self.Ainv.T
        pad = margin_mm * np.abs(self.Ainv).sum(axis=1)  # conservative margin in voxels
        lo = np.floor(ijk.min(0) - pad).astype(int)
        hi = np.ceil(ijk.max(0) + pad).astype(int) + 1
        nk, nj, ni = self.shape
        lo = np.maximum(lo, 0)
        hi = np.minimum(hi, [ni, nj, nk])
        if np.any(hi <= lo):
            return None
        return (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0]))

    def coords(self, sl, frame=None, dtype=np.float32):
        """Coordinates (x, y, z) of the voxels of block ``sl`` in the part frame (mm)."""
        A, b = self.A, self.b
        if frame is not None:
            Rt = frame[1].T
            A = Rt @ A
            b = Rt @ (b - frame[0])
        # offsets relative to the block's first voxel keep float32 accurate (~1e-5 mm)
        k = np.arange(sl[0].stop - sl[0].start, dtype=dtype)[:, None, None]
        j = np.arange(sl[1].stop - sl[1].start, dtype=dtype)[None, :, None]
        i = np.arange(sl[2].stop - sl[2].start, dtype=dtype)[None, None, :]
        b = b + A @ np.array([sl[2].start, sl[1].start, sl[0].start], dtype=float)
        out = []
        for r in range(3):
            c = dtype(b[r]) + dtype(A[r, 0]) * i
            c = c + dtype(A[r, 1]) * j
            out.append(c + dtype(A[r, 2]) * k)
        return tuple(out)


def _bone_fields(parts: Sequence[Part], grid: _Grid, cortical: float, margin: float,
                 only_labels: Optional[set] = None):
    """Union of bone parts minus holes: outer and inner (medullary) distances and labels."""
    d_out = np.full(grid.shape, _BIG, dtype=np.float32)
    d_in = np.full(grid.shape, _BIG, dtype=np.float32)
    lab = np.zeros(grid.shape, dtype=np.uint8)

    def blocks(kind):
        """(part, slice, x, y, z, distance) of each part of ``kind`` touching the grid."""
        for p in parts:
            if p.kind != kind or (only_labels is not None and p.label not in only_labels):
                continue
            sl = grid.block(p.lo, p.hi, p.frame, margin + cortical)
            if sl is None:
                continue
            x, y, z = grid.coords(sl, p.frame)
            yield p, sl, x, y, z, p.fn(x, y, z).astype(np.float32)

    for p, sl, x, y, z, d in blocks("bone"):
        di = (p.inner_fn(x, y, z) if p.inner_fn is not None else d + cortical).astype(np.float32)
        cur = d_out[sl]
        better = d < cur
        lab[sl] = np.where(better, np.uint8(p.label), lab[sl])
        d_out[sl] = np.where(better, d, cur)
        d_in[sl] = np.minimum(d_in[sl], di)
    for _p, sl, _x, _y, _z, d in blocks("hole"):
        d_out[sl] = np.maximum(d_out[sl], -d)
        d_in[sl] = np.maximum(d_in[sl], cortical - d)
    lab[d_out >= 0] = 0
    return d_out, d_in, lab


def _soft_tissue(anat: Anatomy, grid: _Grid, ramp: float) -> np.ndarray:
    """HU of air, skin fat, muscle, brain, airway, CSF and discs (no bone) on the grid."""
    prm, hu = anat.params, anat.hu
    full = (slice(0, grid.shape[0]), slice(0, grid.shape[1]), slice(0, grid.shape[2]))
    x, y, z = grid.coords(full)
    d_neck = sh.ellipse2d(x, y - prm["neck_cy"], prm["neck_ax"], prm["neck_ay"])
    d_neck = np.array(np.broadcast_to(d_neck, grid.shape), dtype=np.float32)
    del x, y, z
    for key in ("head", "jaw"):
        c = np.array([prm[f"{key}_cx"], prm[f"{key}_cy"], prm[f"{key}_cz"]])
        r = np.array([prm[f"{key}_rx"], prm[f"{key}_ry"], prm[f"{key}_rz"]])
        sl = grid.block(c - r, c + r, None, 2.0)
        if sl is not None:
            xs, ys, zs = grid.coords(sl)
            d_neck[sl] = np.minimum(d_neck[sl], sh.ellipsoid(xs, ys, zs, c, r))
    s = np.full(grid.shape, hu["air"], dtype=np.float32)
    s += _occ(d_neck, ramp) * (hu["fat"] - hu["air"])
    s += _occ(d_neck + prm["neck_fat"], ramp) * (hu["muscle"] - hu["fat"])
    for p in anat.parts:
        if p.kind != "soft":
            continue
        sl = grid.block(p.lo, p.hi, p.frame, ramp)
        if sl is None:
            continue
        xs, ys, zs = grid.coords(sl, p.frame)
        occ = _occ(p.fn(xs, ys, zs), ramp).astype(np.float32)
        s[sl] += occ * (np.float32(p.hu) - s[sl])
    return s


# ----------------------------------------------------------------------------- geometry
def _fov_z_range(anat: Anatomy, fov: str, rng: np.random.Generator) -> Tuple[float, float, str]:
    """(bottom, top) of the field of view along the C2 frame's z axis (mm), and which edge
    ("top", "bottom", "side" or "") must then be placed relative to C2's bounding box."""
    lz = anat.levels_z
    c1_top = lz["c1"][1]
    fm = float(anat.landmarks["foramen_magnum"][2])
    if fov == "c1_c4":
        return lz["c4"][0] - rng.uniform(2, 8), c1_top + rng.uniform(4, 12), ""
    if fov == "c1_c7":
        return lz["c7"][0] - rng.uniform(2, 10), c1_top + rng.uniform(4, 12), ""
    if fov == "skull_c5":
        return lz["c5"][0] - rng.uniform(2, 8), fm + rng.uniform(25, 40), ""
    if fov == "full_neck":
        return lz["c7"][0] - rng.uniform(15, 25), fm + rng.uniform(40, 60), ""
    if fov == "c2_crop":
        return lz["c3"][0] - rng.uniform(2, 6), c1_top + rng.uniform(2, 6), ""
    if fov in ("c2_edge", "c2_cut"):
        edge = str(rng.choice(["top", "bottom", "side"] if fov == "c2_edge" else ["top", "bottom"]))
        return lz["c5"][0] - rng.uniform(2, 8), c1_top + rng.uniform(8, 25), edge
    raise InputError(f"unknown field of view {fov!r}", "choose one of " + ", ".join(FOV_MODES))


def _grid_for_box(lo: np.ndarray, hi: np.ndarray, direction: np.ndarray,
                  spacing: np.ndarray) -> Tuple[np.ndarray, List[int]]:
    """Origin and size of a grid with ``direction``/``spacing`` covering the LPS box."""
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                        for z in (lo[2], hi[2])])
    proj = corners @ direction  # coordinate along each index axis
    pmin, pmax = proj.min(0), proj.max(0)
    size = np.maximum(np.ceil((pmax - pmin) / spacing - 1e-6).astype(int), 1)
    origin = direction @ (pmin + 0.5 * spacing)
    return origin, [int(n) for n in size]


def _points_in_grid(points: np.ndarray, origin: np.ndarray, size: Sequence[int],
                    direction: np.ndarray, spacing: np.ndarray) -> bool:
    """True when every LPS point lies inside the grid's voxels (edges included)."""
    ijk = ((points - origin) @ direction) / spacing
    return bool(np.all(ijk >= -0.5) and np.all(ijk <= np.asarray(size) - 0.5))


def _spacing(spacing_mm, rng: np.random.Generator) -> np.ndarray:
    if spacing_mm is None:
        inplane = rng.choice([rng.uniform(0.3, 0.5), rng.uniform(0.5, 0.8), rng.uniform(0.8, 1.0)],
                             p=[0.2, 0.5, 0.3])
        return np.array([inplane, inplane, rng.uniform(0.5, 2.0)])
    sp = np.atleast_1d(np.asarray(spacing_mm, dtype=float))
    if sp.size == 1:
        sp = np.repeat(sp, 3)
    if sp.size != 3 or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise InputError(f"spacing {spacing_mm!r} is not valid",
                         "give one positive number or three (i, j, k) in mm, e.g. 0.5 0.5 1.0")
    if np.any(sp < 0.1) or np.any(sp > 5.0):
        raise InputError(f"spacing {sp.tolist()} mm is outside 0.1-5 mm",
                         "phantoms are meant for CT-like spacings (0.3-2 mm)")
    return sp


def _angles(axis: np.ndarray, side: str) -> Tuple[float, float]:
    """(medial, cranial) angles in degrees of an axis in a (left, posterior, superior) frame."""
    sx = 1.0 if side == "left" else -1.0
    medial = np.degrees(np.arctan2(-sx * axis[0], -axis[1]))
    cranial = np.degrees(np.arctan2(axis[2], np.hypot(axis[0], axis[1])))
    return float(medial), float(cranial)


def _c2_extent(anat: Anatomy, step: float = 0.6) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inside points of C2 (labels 1-3) on a fine C2-frame grid: (points, lo, hi)."""
    c2_parts = [p for p in anat.parts if p.label == LABELS["c2"]]
    lo = np.min([p.lo if p.frame is None else p.lo + p.frame[0] for p in c2_parts if p.kind == "bone"], 0)
    hi = np.max([p.hi if p.frame is None else p.hi + p.frame[0] for p in c2_parts if p.kind == "bone"], 0)
    shape = tuple(int(n) for n in np.ceil((hi - lo) / step).astype(int)[::-1] + 1)
    grid = _Grid(np.eye(3) * step, lo, shape)
    d_out, _, _ = _bone_fields(c2_parts, grid, 0.0, 0.0)
    kji = np.argwhere(d_out < 0)
    pts = lo + kji[:, ::-1] * step
    return pts, pts.min(0) - 0.5 * step, pts.max(0) + 0.5 * step


def isthmus_clearance_mm(anat: Anatomy, side: str, margin_mm: float = 2.0, n: int = 48) -> float:
    """Smallest distance (mm) from the isthmus cross-section to any other bone part.

    The section is the ellipse of the pedicle at t = 0 enlarged by ``margin_mm``. A positive
    value means the narrowest section is purely the analytic tube (no union artefact).
    """
    shp = anat.pedicles[side]
    a = 0.5 * shp.mpd_mm + margin_mm
    b = 0.5 * shp.height_mm + margin_mm
    rr, th = np.meshgrid(np.linspace(0, 1, 8), np.linspace(0, 2 * np.pi, n, endpoint=False))
    su = (rr * a * np.cos(th)).ravel()
    sv = (rr * b * np.sin(th)).ravel()
    pts = shp.centre + su[:, None] * shp.u + sv[:, None] * shp.v
    best = np.inf
    for p in anat.parts:
        if p.kind != "bone" or p.name.startswith("pedicle_"):
            continue
        q = pts if p.frame is None else (pts - p.frame[0]) @ p.frame[1]
        best = min(best, float(np.min(p.fn(q[:, 0], q[:, 1], q[:, 2]))))
    return best


# ----------------------------------------------------------------------------- main entry
def make_phantom(seed: int = 0, spacing_mm=None, mpd_left_mm: Optional[float] = None,
                 mpd_right_mm: Optional[float] = None, direction=None, fov: str = "random",
                 patient_id: Optional[str] = None, noise: bool = True, **overrides) -> Phantom:
    """Build one synthetic cervical CT with exact C2 pedicle ground truth.

    Parameters
    ----------
    seed : the whole phantom is a deterministic function of the seed and the arguments.
        Anatomy, acquisition and noise use separate random streams, so giving a spacing or a
        direction does not change the anatomy of a seed, and giving one side's MPD does not
        change the other side.
    spacing_mm : one number or (i, j, k) spacing in mm; None: random (in-plane 0.3-1.0 mm,
        slices 0.5-2 mm).
    mpd_left_mm, mpd_right_mm : outer minimum pedicle diameter (2-9 mm typical, 1-12 allowed)
        of the patient-left (+x LPS) and right pedicles; None: random in 2-9 mm.
    direction : None (axial LPS), ``"random"``, a 3-letter code (``"RAI"``), or 9 numbers.
    fov : one of :data:`FOV_MODES`; ``"random"`` draws one (and, with ``direction=None``,
        also a random orientation).
    noise : add the scanner blur's noise (sigma 10-40 HU); False for a noise-free image
        (the blur is kept).
    overrides : expert knobs, e.g. ``cortical_thickness_mm``, ``scale``, ``yaw_deg``,
        ``roll_deg``, ``pitch_deg``, ``noise_sigma_hu``, ``psf_fwhm_mm``, ``fov_xy_mm``,
        ``c2_center_lps_mm``, ``max_voxels``, ``medial_angle_left_deg``, ...

    Returns
    -------
    Phantom(ct float32 HU, labels uint8 on the same grid, truth dict (see ``truth.json``)).
    """
    try:
        seed = int(seed)
    except (TypeError, ValueError):
        raise InputError(f"seed {seed!r} is not an integer", "give a whole number, e.g. 7") from None
    if seed < 0:
        raise InputError(f"seed {seed} is negative", "give a non-negative whole number")
    if fov not in FOV_MODES:
        raise InputError(f"unknown field of view {fov!r}", "choose one of " + ", ".join(FOV_MODES))
    rng_mpd = np.random.default_rng([seed, 0])
    rng_anat = np.random.default_rng([seed, 1])
    rng_acq = np.random.default_rng([seed, 2])
    rng_noise = np.random.default_rng([seed, 3])
    draws = rng_mpd.uniform(2.0, 9.0, size=2)
    mpd = {}
    for side, given, drawn in (("left", mpd_left_mm, draws[0]), ("right", mpd_right_mm, draws[1])):
        value = float(round(drawn, 2) if given is None else given)
        if not np.isfinite(value) or not (1.0 <= value <= 12.0):
            raise InputError(f"{side} MPD {given!r} mm is outside 1-12 mm",
                             "C2 pedicle widths are 2-9 mm in the paper's cohort")
        mpd[side] = value

    anat = build_anatomy(rng_anat, mpd["left"], mpd["right"], overrides)

    # --- acquisition: pose, field of view, grid
    fov_mode = fov
    if fov == "random":
        fov_mode = str(rng_acq.choice(["c1_c4", "c1_c7", "skull_c5", "full_neck", "c2_edge"],
                                      p=[0.3, 0.25, 0.2, 0.1, 0.15]))
    yaw = float(overrides.get("yaw_deg", rng_acq.uniform(-10, 10)))
    roll = float(overrides.get("roll_deg", rng_acq.uniform(-10, 10)))
    pitch = float(overrides.get("pitch_deg", rng_acq.uniform(-6, 6)))
    R = rot_z(yaw) @ rot_y(roll) @ rot_x(pitch)
    p0 = np.asarray(overrides.get("c2_center_lps_mm",
                                  [rng_acq.uniform(-15, 15), rng_acq.uniform(-40, 10),
                                   rng_acq.uniform(-180, 60)]), dtype=float)
    if isinstance(direction, str) and direction.lower() == "random":
        dmat = _random_direction(rng_acq)
    elif direction is None and fov == "random":
        dmat = _random_direction(rng_acq)
    else:
        dmat = parse_direction(direction)
    spacing = _spacing(spacing_mm, rng_acq)

    z_lo, z_hi, z_edge = _fov_z_range(anat, fov_mode, rng_acq)
    c2_pts, c2_lo, c2_hi = _c2_extent(anat)
    fov_xy = float(overrides.get("fov_xy_mm", rng_acq.uniform(60, 75) if fov_mode == "c2_crop"
                                 else rng_acq.uniform(90, 140)))
    centre_local = np.array([rng_acq.uniform(-6, 6), rng_acq.uniform(0, 14), 0.0])
    if fov_mode == "c2_crop":
        centre_local[:2] = [rng_acq.uniform(-3, 3), rng_acq.uniform(6, 12)]
    centre_lps = p0 + R @ centre_local
    lo = np.array([centre_lps[0] - fov_xy / 2, centre_lps[1] - fov_xy / 2, p0[2] + z_lo])
    hi = np.array([centre_lps[0] + fov_xy / 2, centre_lps[1] + fov_xy / 2, p0[2] + z_hi])
    c2_lps = p0 + c2_pts @ R.T
    c2_bb_lo, c2_bb_hi = c2_lps.min(0) - 0.3, c2_lps.max(0) + 0.3
    if fov_mode != "c2_cut":  # keep the whole of C2 in plane (>= 4 mm from the edges)
        for ax in (0, 1):
            need = (c2_bb_hi[ax] - c2_bb_lo[ax]) + 8.0
            if hi[ax] - lo[ax] < need:
                grow = 0.5 * (need - (hi[ax] - lo[ax]))
                lo[ax] -= grow
                hi[ax] += grow
            shift = max(0.0, c2_bb_hi[ax] + 4.0 - hi[ax]) - max(0.0, lo[ax] - (c2_bb_lo[ax] - 4.0))
            lo[ax] += shift
            hi[ax] += shift
    # z edges that must sit relative to the C2 extent are set from its LPS bounding box
    if fov_mode == "c2_edge" and z_edge == "top":
        hi[2] = c2_bb_hi[2] + rng_acq.uniform(1.0, 3.0)
    elif fov_mode == "c2_edge" and z_edge == "bottom":
        lo[2] = c2_bb_lo[2] - rng_acq.uniform(1.0, 3.0)
    elif fov_mode == "c2_cut" and z_edge == "top":
        hi[2] = c2_bb_hi[2] - rng_acq.uniform(6.0, 12.0)
    elif fov_mode == "c2_cut":
        lo[2] = c2_bb_lo[2] + rng_acq.uniform(5.0, 10.0)
    if fov_mode == "c2_edge" and z_edge == "side":   # C2 close to a lateral edge instead
        gap = rng_acq.uniform(1.0, 3.0)
        if rng_acq.random() < 0.5:
            shift = (c2_bb_hi[0] + gap) - hi[0]
        else:
            shift = (c2_bb_lo[0] - gap) - lo[0]
        lo[0] += shift
        hi[0] += shift
    max_vox = float(overrides.get("max_voxels", MAX_VOXELS_DEFAULT))
    origin, size = _grid_for_box(lo, hi, dmat, spacing)
    for _ in range(20):  # an oblique grid covers more than the box: make sure the cut happens
        if fov_mode != "c2_cut" or not _points_in_grid(c2_lps, origin, size, dmat, spacing):
            break
        if z_edge == "top":
            hi[2] -= 3.0
        else:
            lo[2] += 3.0
        origin, size = _grid_for_box(lo, hi, dmat, spacing)
    while float(np.prod(size)) > max_vox:
        if spacing_mm is not None:
            raise InputError(f"the phantom grid would have {int(np.prod(size)):,} voxels",
                             "use a coarser spacing, a smaller --fov (c1_c4, c2_crop) or max_voxels")
        spacing = spacing * 1.1
        origin, size = _grid_for_box(lo, hi, dmat, spacing)

    # --- rasterise in the C2 frame: q = R^T (origin + D S ijk - p0)
    M = dmat @ np.diag(spacing)
    grid = _Grid(R.T @ M, R.T @ (origin - p0), (size[2], size[1], size[0]))
    ramp = float(spacing.min())
    soft = _soft_tissue(anat, grid, ramp)
    d_out, d_in, lab = _bone_fields(anat.parts, grid, anat.cortical_mm, ramp)
    for side, label in (("left", LABELS["pedicle_left"]), ("right", LABELS["pedicle_right"])):
        shp = anat.pedicles[side]
        prm = shp.params()
        part = next(p for p in anat.parts if p.name == f"pedicle_{side}")
        sl = grid.block(part.lo, part.hi, None, 1.0)
        if sl is None:
            continue
        x, y, z = grid.coords(sl, dtype=np.float64)  # labels decided in double precision
        dx, dy, dz = x - shp.centre[0], y - shp.centre[1], z - shp.centre[2]
        t = dx * shp.axis[0] + dy * shp.axis[1] + dz * shp.axis[2]
        inside = (part.fn(x, y, z) < 0) & (t <= prm["label_anterior_mm"]) & \
                 (t >= -prm["label_posterior_mm"]) & (d_out[sl] < 0)
        lab[sl] = np.where(inside, np.uint8(label), lab[sl])
    hu = anat.hu
    o_out = _occ(d_out, ramp)
    o_in = _occ(d_in, ramp)
    # trabecular texture: smooth +-10 % mottling of the cancellous intensity
    texture = np.float32(0.0)
    if noise:
        grain = np.random.default_rng([seed, 4]).standard_normal(d_out.shape, dtype=np.float32)
        grain = ndimage.gaussian_filter(grain, sigma=(0.8 / spacing)[::-1], truncate=2.0)
        grain *= np.float32(0.12 * hu["cancellous"] / max(float(grain[::3, ::3, ::3].std()), 1e-6))
        texture = grain
    img = soft + o_out * (np.float32(hu["cortical"]) - soft) + \
        o_in * (np.float32(hu["cancellous"] - hu["cortical"]) + texture)
    img = img.astype(np.float32)

    # scanner point-spread function: FWHM 0.5-1.0 mm (a bone-kernel-like sharpness)
    psf_fwhm = float(overrides.get("psf_fwhm_mm", rng_acq.uniform(0.5, 1.0)))
    psf = psf_fwhm / 2.3548
    sig_mm = np.sqrt(psf**2 + np.maximum(spacing**2 - ramp**2, 0) / 12.0)
    img = ndimage.gaussian_filter(img, sigma=(sig_mm / spacing)[::-1], truncate=3.0)
    sigma_hu = float(overrides.get("noise_sigma_hu", rng_acq.uniform(10, 40))) if noise else 0.0
    if sigma_hu > 0:
        white = rng_noise.standard_normal(img.shape, dtype=np.float32)
        corr = ndimage.gaussian_filter(white, sigma=0.6, truncate=2.5)
        corr *= np.float32(sigma_hu / max(float(corr[::3, ::3, ::3].std()), 1e-6))
        img += corr
    img = np.clip(np.rint(img), -1024, 3071).astype(np.float32)

    ct = sitk.GetImageFromArray(img)
    ct.SetSpacing([float(v) for v in spacing])
    ct.SetOrigin([float(v) for v in origin])
    ct.SetDirection([float(v) for v in dmat.ravel()])
    labels = sitk.GetImageFromArray(lab)
    labels.CopyInformation(ct)

    pid = patient_id if patient_id is not None else f"PH{seed:05d}"
    truth = _truth(anat, seed, pid, fov_mode, ct, R, p0, (yaw, roll, pitch), c2_lps,
                   (c2_bb_lo, c2_bb_hi), psf, sigma_hu)
    return Phantom(ct=ct, labels=labels, truth=truth)


def _vec(v, nd: int = 6) -> List[float]:
    return [round(float(c), nd) for c in v]


def _truth(anat: Anatomy, seed: int, pid: str, fov_mode: str, ct: sitk.Image, R: np.ndarray,
           p0: np.ndarray, pose, c2_lps: np.ndarray, c2_bb, psf: float, sigma_hu: float) -> dict:
    to_lps = lambda q: p0 + R @ np.asarray(q, dtype=float)  # noqa: E731
    sides = {}
    for side, shp in anat.pedicles.items():
        axis_lps = R @ shp.axis
        med, cra = _angles(shp.axis, side)
        med_lps, cra_lps = _angles(axis_lps, side)
        c = shp.cortical_mm
        inner_w = max(shp.mpd_mm - 2 * c, 0.0)
        inner_h = max(shp.height_mm - 2 * c, 0.0) if inner_w > 0 else 0.0
        centre = to_lps(shp.centre)
        u = R @ shp.u
        sides[side] = {
            "label": LABELS[f"pedicle_{side}"],
            "mpd_mm": float(shp.mpd_mm),
            "inner_width_mm": float(inner_w),
            "outer_height_mm": float(shp.height_mm),
            "inner_height_mm": float(inner_h),
            "cortical_thickness_mm": float(c),
            "isthmus_center_lps_mm": _vec(centre),
            "axis_lps": _vec(axis_lps),
            "mpd_direction_lps": _vec(u),
            "height_direction_lps": _vec(R @ shp.v),
            "mpd_endpoints_lps_mm": [_vec(centre - 0.5 * shp.mpd_mm * u),
                                     _vec(centre + 0.5 * shp.mpd_mm * u)],
            "medial_angle_deg": round(med, 4),
            "cranial_angle_deg": round(cra, 4),
            "medial_angle_lps_deg": round(med_lps, 4),
            "cranial_angle_lps_deg": round(cra_lps, 4),
            "isthmus_clearance_mm": round(isthmus_clearance_mm(anat, side), 4),
            "shape": shp.params(),
        }
    c2_complete = _points_in_grid(c2_lps, np.asarray(ct.GetOrigin()), ct.GetSize(),
                                  np.asarray(ct.GetDirection()).reshape(3, 3),
                                  np.asarray(ct.GetSpacing()))
    return {
        "schema": TRUTH_SCHEMA, "schema_version": TRUTH_SCHEMA_VERSION,
        "generator": f"c2net {__version__} phantom", "disclaimer": DISCLAIMER,
        "seed": int(seed), "patient_id": pid, "labels": dict(LABELS),
        "c2_center_lps_mm": _vec(c2_lps.mean(0), 4),
        "c2_body_center_lps_mm": _vec(to_lps(anat.landmarks["c2_body_center"]), 4),
        "dens_tip_lps_mm": _vec(to_lps(anat.landmarks["dens_tip"]), 4),
        "c2_bbox_lps_mm": [_vec(c2_bb[0], 4), _vec(c2_bb[1], 4)],
        "c2_complete_in_fov": c2_complete,
        "c2_frame_lps": {"left": _vec(R[:, 0]), "posterior": _vec(R[:, 1]),
                         "superior": _vec(R[:, 2])},
        "head_rotation_deg": {"yaw": round(pose[0], 4), "roll": round(pose[1], 4),
                              "pitch": round(pose[2], 4)},
        "landmarks_lps_mm": {k: _vec(to_lps(v), 4) for k, v in anat.landmarks.items()},
        "fov": fov_mode,
        "geometry": {"size": list(ct.GetSize()), "spacing": _vec(ct.GetSpacing()),
                     "origin": _vec(ct.GetOrigin()), "direction": _vec(ct.GetDirection())},
        "acquisition": {"psf_fwhm_mm": round(psf * 2.3548, 4), "psf_sigma_mm": round(psf, 4),
                        "noise_sigma_hu": round(sigma_hu, 4)},
        "tissue_hu": {k: round(float(v), 2) for k, v in anat.hu.items()},
        "cortical_thickness_mm": round(anat.cortical_mm, 6),
        "sides": sides,
    }


# ----------------------------------------------------------------------------- I/O
def write_phantom(phantom: Phantom, out_dir: Union[str, Path], overwrite: bool = False) -> Dict[str, str]:
    """Write ``ct.nii.gz`` (int16 HU), ``labels.nii.gz`` (uint8) and ``truth.json``.

    The one output-folder rule (:mod:`c2net.output_folder`): a non-empty ``out_dir`` is refused
    unless ``overwrite``, and then only these three files are replaced. Written all or nothing,
    so a failure never leaves a half-written case. Returns the paths.
    """
    from .output_folder import output_folder

    out = Path(out_dir).expanduser().absolute()
    names = {"ct": "ct.nii.gz", "labels": "labels.nii.gz", "truth": "truth.json"}
    try:
        with output_folder(out, names.values(), overwrite) as tmp:
            sitk.WriteImage(sitk.Cast(phantom.ct, sitk.sitkInt16), str(tmp / names["ct"]), True)
            sitk.WriteImage(sitk.Cast(phantom.labels, sitk.sitkUInt8), str(tmp / names["labels"]), True)
            (tmp / names["truth"]).write_text(json.dumps(phantom.truth, indent=1) + "\n", encoding="utf-8")
    except (OSError, RuntimeError) as exc:
        raise OutputError(f"cannot write the phantom to {out}: {exc}",
                          "check free disk space and permissions") from None
    return {k: str(out / n) for k, n in names.items()}


def read_phantom(case_dir: Union[str, Path]) -> Phantom:
    """Read a case written by :func:`write_phantom` (CT as float32 HU)."""
    d = Path(case_dir)
    try:
        ct = sitk.Cast(sitk.ReadImage(str(d / "ct.nii.gz")), sitk.sitkFloat32)
        labels = sitk.ReadImage(str(d / "labels.nii.gz"))
        truth = json.loads((d / "truth.json").read_text(encoding="utf-8"))
    except (OSError, RuntimeError, ValueError) as exc:
        raise InputError(f"cannot read the phantom in {d}: {exc}",
                         "give a folder written by 'c2net phantom'") from None
    return Phantom(ct=ct, labels=labels, truth=truth)
