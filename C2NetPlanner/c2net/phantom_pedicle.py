"""Analytic C2 pedicle (pediculoisthmic component) of the synthetic phantom.

The pedicle is a straight tube along a unit axis ``a`` (posterior -> anterior) through the
isthmus centre ``c``. At axial position ``t`` (mm along ``a`` from ``c``) its outer
cross-section, in the plane perpendicular to ``a``, is the ellipse

    (s_u / (w(t)/2))^2 + (s_v / (h(t)/2))^2 <= 1,    s_u = (p - c).u,  s_v = (p - c).v

with ``u`` (the width direction, roughly medio-lateral) and ``v = a x u`` (the height
direction, roughly cranio-caudal). Width and height follow a saturating hourglass profile

    w(t) = mpd + g_w(t) * t^2 / (1 + t^2 / T^2),   g_w = g_ant for t > 0, g_post for t < 0
    h(t) = h0  + g_h    * t^2 / (1 + t^2 / T^2)

so ``w`` and ``h`` are smallest at ``t = 0`` (the isthmus) and ``h0 > mpd``: the narrowest
cross-section is the one at ``t = 0`` and its minimum outer diameter is exactly ``mpd`` (along
``u``). The medullary (cancellous) canal has semi-axes ``w/2 - c_t`` and ``h/2 - c_t``
(``c_t`` = cortical thickness), so the inner width at the isthmus is ``max(mpd - 2 c_t, 0)``.
The tube runs from ``t = -t_post`` to ``t = +t_ant`` and is capped with flat ends buried in
the lateral mass and the body.

All functions here work in one consistent frame: the anatomy builder uses the C2 frame,
the truth-based helpers (``*_lps``) use LPS mm with the vectors stored in ``truth.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import numpy as np

from .phantom_shapes import ellipse2d, extrude


@dataclass
class PedicleShape:
    """Parameters of one analytic pedicle (lengths in mm, growth rates in 1/mm)."""

    side: str                 # "left" (patient left, +x) or "right"
    centre: np.ndarray        # isthmus centre (3,)
    axis: np.ndarray          # unit axis, posterior -> anterior (3,)
    u: np.ndarray             # unit width (MPD) direction, perpendicular to axis (3,)
    v: np.ndarray             # unit height direction = axis x u (3,)
    mpd_mm: float             # outer width at the isthmus (= minimum outer diameter)
    height_mm: float          # outer height at the isthmus (> mpd_mm)
    growth_anterior: float    # g_ant (1/mm): width growth towards the body
    growth_posterior: float   # g_post (1/mm): width growth towards the lateral mass
    growth_height: float      # g_h (1/mm)
    saturation_mm: float      # T (mm): the profile flattens beyond |t| ~ T
    t_anterior_mm: float      # tube ends (mm from the isthmus along the axis)
    t_posterior_mm: float
    cortical_mm: float        # cortical thickness of the tube wall
    label_anterior_mm: float  # the pedicle label covers -label_posterior <= t <= label_anterior
    label_posterior_mm: float

    def params(self) -> Dict[str, float]:
        """The scalar profile parameters as stored in ``truth.json["sides"][side]["shape"]``."""
        return {
            "model": "hourglass_elliptic_tube_v1",
            "mpd_mm": float(self.mpd_mm),
            "height_mm": float(self.height_mm),
            "growth_anterior_per_mm": float(self.growth_anterior),
            "growth_posterior_per_mm": float(self.growth_posterior),
            "growth_height_per_mm": float(self.growth_height),
            "saturation_mm": float(self.saturation_mm),
            "t_anterior_mm": float(self.t_anterior_mm),
            "t_posterior_mm": float(self.t_posterior_mm),
            "cortical_thickness_mm": float(self.cortical_mm),
            "label_anterior_mm": float(self.label_anterior_mm),
            "label_posterior_mm": float(self.label_posterior_mm),
        }


def _profile(t, base: float, g_ant: float, g_post: float, sat: float):
    t = np.asarray(t, dtype=float)
    g = np.where(t > 0, g_ant, g_post)
    return base + g * t * t / (1.0 + (t / sat) ** 2)


def pedicle_outer_width_mm(shape: dict, t_mm) -> np.ndarray:
    """Outer width w(t) (mm) of the pedicle section at ``t_mm`` along the axis from the isthmus.

    ``shape`` is ``truth["sides"][side]["shape"]`` (or :meth:`PedicleShape.params`).
    """
    return _profile(t_mm, shape["mpd_mm"], shape["growth_anterior_per_mm"],
                    shape["growth_posterior_per_mm"], shape["saturation_mm"])


def pedicle_outer_height_mm(shape: dict, t_mm) -> np.ndarray:
    """Outer height h(t) (mm) of the pedicle section at ``t_mm`` from the isthmus."""
    g = shape["growth_height_per_mm"]
    return _profile(t_mm, shape["height_mm"], g, g, shape["saturation_mm"])


def _local_coords(p: np.ndarray, centre, axis, u, v):
    d = p - np.asarray(centre, dtype=float)
    return d @ np.asarray(axis, float), d @ np.asarray(u, float), d @ np.asarray(v, float)


def tube_distance(t, su, sv, shape: dict, inner: bool = False) -> np.ndarray:
    """Approximate signed distance (mm) to the outer (or inner, medullary) tube surface.

    ``t, su, sv`` are the point's coordinates in the pedicle frame (axis, u, v). The zero
    level set is exact. Outside the medullary canal's existence (``w/2 <= c_t``) the inner
    distance is a large positive number.
    """
    a = 0.5 * pedicle_outer_width_mm(shape, t)
    b = 0.5 * pedicle_outer_height_mm(shape, t)
    if inner:
        c = shape["cortical_thickness_mm"]
        a = a - c
        b = b - c
        ok = a > 1e-3
        a = np.where(ok, a, 1e-3)
        b = np.maximum(b, 1e-3)
    d2 = ellipse2d(su, sv, a, b)
    if inner:
        d2 = np.where(ok, d2, 1e3)
    cap = np.maximum(t - shape["t_anterior_mm"], -shape["t_posterior_mm"] - t)
    if inner:
        cap = cap + shape["cortical_thickness_mm"]
    return extrude(d2, cap)


def pedicle_implicit_lps(side_truth: dict, points_lps: np.ndarray, inner: bool = False) -> np.ndarray:
    """Signed distance (mm, approximate magnitude, exact sign) of LPS points to the pedicle.

    ``side_truth`` is ``truth["sides"]["left"|"right"]``; uses its isthmus centre, axis,
    ``mpd_direction_lps`` (u), ``height_direction_lps`` (v) and ``shape``. Negative inside.
    """
    p = np.atleast_2d(np.asarray(points_lps, dtype=float))
    t, su, sv = _local_coords(p, side_truth["isthmus_center_lps_mm"], side_truth["axis_lps"],
                              side_truth["mpd_direction_lps"], side_truth["height_direction_lps"])
    return tube_distance(t, su, sv, side_truth["shape"], inner=inner)


def in_label_segment(side_truth: dict, points_lps: np.ndarray) -> np.ndarray:
    """True where LPS points are inside the labelled pediculoisthmic segment of the tube."""
    p = np.atleast_2d(np.asarray(points_lps, dtype=float))
    t, _, _ = _local_coords(p, side_truth["isthmus_center_lps_mm"], side_truth["axis_lps"],
                            side_truth["mpd_direction_lps"], side_truth["height_direction_lps"])
    shape = side_truth["shape"]
    inside = pedicle_implicit_lps(side_truth, p) < 0
    return inside & (t <= shape["label_anterior_mm"]) & (t >= -shape["label_posterior_mm"])
