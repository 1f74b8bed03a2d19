"""Signed-distance primitives for the synthetic cervical CT phantom.

Every function takes coordinate arrays ``x, y, z`` in millimetres (any broadcastable shapes,
in the frame the shape is defined in: x -> patient left, y -> posterior, z -> superior) and
returns the signed distance in mm to the surface: negative inside, positive outside.

Some are exact Euclidean distances (capsule, rounded box, extruded shapes outside the round),
others are first-order approximations (ellipsoids, ellipses: ``k0 (k0 - 1) / k1``) whose zero
level set is exact and whose magnitude is accurate near the surface, which is all the
rasteriser's partial-volume ramp needs.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

_EPS = 1e-9


def ellipse2d(u: np.ndarray, v: np.ndarray, a, b) -> np.ndarray:
    """Approximate signed distance to the ellipse ``(u/a)^2 + (v/b)^2 = 1`` (mm).

    ``a`` and ``b`` (semi-axes, mm, > 0) may be arrays broadcastable with ``u``/``v``.
    The zero level set is exact; the magnitude is exact on the axes' ends and first-order
    accurate elsewhere near the boundary.
    """
    k0 = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    k1 = np.sqrt((u / (a * a)) ** 2 + (v / (b * b)) ** 2)
    centre = -np.minimum(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = k0 * (k0 - 1.0) / k1
    return np.where(k1 > _EPS, d, centre)


def ellipsoid(x, y, z, centre: Sequence[float], radii: Sequence[float]) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipsoid (mm)."""
    cx, cy, cz = centre
    rx, ry, rz = radii
    px, py, pz = x - cx, y - cy, z - cz
    k0 = np.sqrt((px / rx) ** 2 + (py / ry) ** 2 + (pz / rz) ** 2)
    k1 = np.sqrt((px / rx**2) ** 2 + (py / ry**2) ** 2 + (pz / rz**2) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = k0 * (k0 - 1.0) / k1
    return np.where(k1 > _EPS, d, -min(radii))


def capsule(x, y, z, a: Sequence[float], b: Sequence[float], r: float) -> np.ndarray:
    """Exact signed distance to a capsule (segment ``a``-``b`` swept by a ball of radius ``r``)."""
    ax, ay, az = a
    bx, by, bz = b
    dx, dy, dz = bx - ax, by - ay, bz - az
    px, py, pz = x - ax, y - ay, z - az
    h = np.clip((px * dx + py * dy + pz * dz) / max(dx * dx + dy * dy + dz * dz, _EPS), 0.0, 1.0)
    return np.sqrt((px - h * dx) ** 2 + (py - h * dy) ** 2 + (pz - h * dz) ** 2) - r


def rounded_box(x, y, z, centre: Sequence[float], half: Sequence[float], r: float) -> np.ndarray:
    """Exact signed distance to a box of half-sizes ``half`` whose edges are rounded by ``r``."""
    qx = np.abs(x - centre[0]) - (half[0] - r)
    qy = np.abs(y - centre[1]) - (half[1] - r)
    qz = np.abs(z - centre[2]) - (half[2] - r)
    outside = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2 + np.maximum(qz, 0) ** 2)
    inside = np.minimum(np.maximum(qx, np.maximum(qy, qz)), 0)
    return outside + inside - r


def extrude(d2: np.ndarray, dz: np.ndarray) -> np.ndarray:
    """Combine a 2D section distance ``d2`` and an axial slab distance ``dz`` (exact outside)."""
    return np.minimum(np.maximum(d2, dz), 0) + np.sqrt(
        np.maximum(d2, 0) ** 2 + np.maximum(dz, 0) ** 2)


def elliptic_cylinder(x, y, z, centre: Sequence[float], semi_xy: Sequence[float],
                      half_height: float, round_mm: float = 0.0) -> np.ndarray:
    """Vertical elliptic cylinder (axis along z) with edges rounded by ``round_mm``."""
    a = semi_xy[0] - round_mm
    b = semi_xy[1] - round_mm
    d2 = ellipse2d(x - centre[0], y - centre[1], a, b)
    dz = np.abs(z - centre[2]) - (half_height - round_mm)
    return extrude(d2, dz) - round_mm


def elliptic_ring(x, y, z, centre: Sequence[float], semi_xy: Sequence[float],
                  section: Sequence[float]) -> np.ndarray:
    """Ring around a horizontal ellipse (the C1 arch): ``section`` = (radial, vertical) semi-axes.

    The nearest point of the centre line is approximated by the point at the same elliptic
    angle, which is accurate for the near-circular atlas ring.
    """
    px = x - centre[0]
    py = y - centre[1]
    pz = z - centre[2]
    ang = np.arctan2(py / semi_xy[1], px / semi_xy[0])
    cx = semi_xy[0] * np.cos(ang)
    cy = semi_xy[1] * np.sin(ang)
    radial = np.sqrt(px * px + py * py) - np.sqrt(cx * cx + cy * cy)
    return ellipse2d(radial, pz, section[0], section[1])


def union(*ds: np.ndarray) -> np.ndarray:
    """Union of shapes (pointwise minimum of their distances)."""
    out = ds[0]
    for d in ds[1:]:
        out = np.minimum(out, d)
    return out


def smooth_union(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum: union with a fillet of size ~``k`` mm where shapes meet."""
    if k <= 0:
        return np.minimum(a, b)
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1 - h) + a * h - k * h * (1 - h)
