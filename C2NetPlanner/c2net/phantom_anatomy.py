"""Randomised anatomy of the synthetic cervical spine phantom (in the C2 frame, mm).

The C2 frame has its origin at the centre of the C2 vertebral body and axes x -> patient
left, y -> posterior, z -> superior (an LPS-like frame that the phantom later rotates and
translates into scanner LPS space). The anatomy is a list of :class:`Part` objects (bones,
holes, soft-tissue regions), each a signed-distance function with a bounding box, plus the
two analytic pedicles (:class:`c2net.phantom_pedicle.PedicleShape`) and named landmarks.

Sizes follow adult cervical morphometry roughly (C2 body ~17 x 15 mm, dens ~10 mm wide,
C1 ring ~45 x 80 mm, C3-C7 bodies ~17 x 15 x 13 mm, discs ~5 mm), scaled by ±10 %.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from . import phantom_shapes as sh
from .phantom_pedicle import PedicleShape, tube_distance

#: label values of labels.nii.gz (also written to truth.json["labels"])
LABELS: Dict[str, int] = {
    "c2": 1, "pedicle_left": 2, "pedicle_right": 3, "c1": 4, "c3": 5,
    "c4": 6, "c5": 7, "c6": 8, "c7": 9, "skull": 10, "mandible": 11, "hyoid": 12,
}

SdfFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass
class Part:
    """One implicit shape: ``fn(x, y, z)`` = signed distance (mm) in the part's own frame.

    ``frame`` = (origin, R) maps part coordinates to C2-frame coordinates ``q = o + R p``
    (None: the part is defined directly in the C2 frame). ``lo``/``hi`` bound the shape in
    the part frame. ``kind``: ``bone`` (cortex + cancellous, label ``label``), ``hole``
    (removes bone) or ``soft`` (a soft-tissue region of ``hu``).
    """

    name: str
    kind: str
    fn: SdfFn
    lo: np.ndarray
    hi: np.ndarray
    label: int = 0
    hu: float = 0.0
    frame: Optional[Tuple[np.ndarray, np.ndarray]] = None
    inner_fn: Optional[SdfFn] = None


@dataclass
class Anatomy:
    """Everything the rasteriser and the truth writer need, in the C2 frame."""

    parts: List[Part]
    pedicles: Dict[str, PedicleShape]
    landmarks: Dict[str, np.ndarray]          # named points (C2 frame, mm)
    levels_z: Dict[str, Tuple[float, float]]  # vertebra -> (bottom z, top z), C2 frame
    hu: Dict[str, float]                      # tissue intensities
    cortical_mm: float                        # cortical thickness of the non-pedicle bone
    params: Dict[str, float] = field(default_factory=dict)


def _arr(*v) -> np.ndarray:
    return np.asarray(v, dtype=float)


def ellipsoid(name, label, c, r, kind="bone", frame=None, hu=0.0) -> Part:
    c = _arr(*c)
    r = _arr(*r)
    return Part(name, kind, lambda x, y, z: sh.ellipsoid(x, y, z, c, r), c - r, c + r,
                label, hu, frame)


def capsule(name, label, a, b, r, kind="bone", frame=None) -> Part:
    a = _arr(*a)
    b = _arr(*b)
    return Part(name, kind, lambda x, y, z: sh.capsule(x, y, z, a, b, r),
                np.minimum(a, b) - r, np.maximum(a, b) + r, label, 0.0, frame)


def cylinder(name, label, c, semi, half_h, round_mm=0.0, kind="bone", frame=None, hu=0.0) -> Part:
    c = _arr(*c)
    ext = _arr(semi[0], semi[1], half_h)
    return Part(name, kind,
                lambda x, y, z: sh.elliptic_cylinder(x, y, z, c, semi, half_h, round_mm),
                c - ext, c + ext, label, hu, frame)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


def rot_x(deg: float) -> np.ndarray:
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=float)


def rot_y(deg: float) -> np.ndarray:
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=float)


def rot_z(deg: float) -> np.ndarray:
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=float)


def pedicle_axis(side: str, medial_deg: float, cranial_deg: float) -> np.ndarray:
    """Unit axis (posterior -> anterior) with the ARCHITECTURE.md sign conventions.

    Medial angle > 0 converges towards the midline going anteriorly (towards -x for the
    left pedicle, +x for the right); cranial angle > 0 rises going anteriorly.
    """
    sx = -1.0 if side == "left" else 1.0
    m, c = np.radians(medial_deg), np.radians(cranial_deg)
    return np.array([sx * np.sin(m) * np.cos(c), -np.cos(m) * np.cos(c), np.sin(c)])


def _pedicle_part(shape: PedicleShape, label: int, inner: bool = False) -> Part:
    prm = shape.params()
    c, a, u, v = shape.centre, shape.axis, shape.u, shape.v

    def fn(x, y, z, _inner=inner):
        dx, dy, dz = x - c[0], y - c[1], z - c[2]
        t = dx * a[0] + dy * a[1] + dz * a[2]
        su = dx * u[0] + dy * u[1] + dz * u[2]
        sv = dx * v[0] + dy * v[1] + dz * v[2]
        return tube_distance(t, su, sv, prm, inner=_inner)

    ts = np.linspace(-shape.t_posterior_mm, shape.t_anterior_mm, 9)
    from .phantom_pedicle import pedicle_outer_height_mm, pedicle_outer_width_mm
    rmax = 0.5 * max(pedicle_outer_width_mm(prm, ts).max(), pedicle_outer_height_mm(prm, ts).max())
    ends = np.stack([c - shape.t_posterior_mm * a, c + shape.t_anterior_mm * a])
    part = Part(f"pedicle_{shape.side}", "bone", fn, ends.min(0) - rmax, ends.max(0) + rmax, label)
    part.inner_fn = lambda x, y, z: fn(x, y, z, True)
    return part


def _make_pedicle(rng: np.random.Generator, side: str, mpd: float, scale: float,
                  cortical: float, body_half_w: float, body_half_d: float,
                  overrides: dict) -> PedicleShape:
    sx = 1.0 if side == "left" else -1.0
    medial = float(overrides.get(f"medial_angle_{side}_deg", rng.uniform(20.0, 40.0)))
    cranial = float(overrides.get(f"cranial_angle_{side}_deg", rng.uniform(15.0, 35.0)))
    axis = pedicle_axis(side, medial, cranial)
    # width direction: perpendicular to the axis, as horizontal as possible, pointing laterally
    # (towards the patient side), then twisted a little about the axis
    lateral = np.array([sx, 0.0, 0.0])
    u0 = _unit(lateral - axis * (lateral @ axis))
    v0 = np.cross(axis, u0)
    twist = np.radians(rng.uniform(-12.0, 12.0))
    u = np.cos(twist) * u0 + np.sin(twist) * v0
    v = np.cross(axis, u)
    height = float(overrides.get(f"pedicle_height_{side}_mm",
                                 max(rng.uniform(7.0, 10.5) * scale, mpd + rng.uniform(1.0, 2.5))))
    cort = float(np.clip(cortical + rng.uniform(-0.15, 0.15), 0.6, 1.6))
    cort = float(overrides.get(f"cortical_thickness_{side}_mm", cort))
    # isthmus centre: just lateral to the body's postero-lateral corner, wide pedicles further out
    centre = np.array([sx * (body_half_w + 1.0 + 0.5 * mpd + rng.uniform(0.0, 1.5)),
                       body_half_d + rng.uniform(2.0, 3.5) + 0.2 * mpd,
                       rng.uniform(-2.5, 0.0) * scale])
    return PedicleShape(
        side=side, centre=centre, axis=axis, u=u, v=v, mpd_mm=float(mpd), height_mm=height,
        growth_anterior=rng.uniform(0.08, 0.16), growth_posterior=rng.uniform(0.08, 0.18),
        growth_height=rng.uniform(0.03, 0.08), saturation_mm=rng.uniform(4.5, 6.5),
        t_anterior_mm=rng.uniform(9.0, 11.0) * scale, t_posterior_mm=rng.uniform(8.0, 10.0) * scale,
        cortical_mm=cort, label_anterior_mm=rng.uniform(6.0, 8.0),
        label_posterior_mm=rng.uniform(6.0, 8.0))


def _subaxial_vertebra(name: str, label: int, frame, s: float, hb: float, rng,
                       is_c7: bool) -> List[Part]:
    """A simplified C3-C7 vertebra in its own frame (origin at its body centre)."""
    bw, bd = 8.5 * s, 7.5 * s
    parts = [cylinder(f"{name}_body", label, (0, 0, 0), (bw, bd), hb, 2.0, frame=frame)]
    # posterior: y from bd upwards
    for sx in (1.0, -1.0):
        parts += [
            capsule(f"{name}_pedicle", label, (sx * 5.5 * s, bd - 2.0, 1.5), (sx * 11 * s, bd + 3.5 * s, 1.0),
                    2.6 * s, frame=frame),
            ellipsoid(f"{name}_pillar", label, (sx * 14 * s, bd + 6 * s, -0.5), (5 * s, 6 * s, 7.2 * s),
                      frame=frame),
            ellipsoid(f"{name}_transverse", label, (sx * 19 * s, 3.0, 1.0), (7 * s, 4 * s, 3 * s),
                      frame=frame),
            capsule(f"{name}_lamina", label, (sx * 13 * s, bd + 9 * s, -1.0), (0, bd + 19 * s, -2.5),
                    2.2 * s, frame=frame),
            capsule(f"{name}_lamina_lo", label, (sx * 13 * s, bd + 9 * s, -4.0), (0, bd + 19 * s, -5.0),
                    2.0 * s, frame=frame),
        ]
    tip_y = bd + (40 if is_c7 else 30) * s
    parts.append(capsule(f"{name}_spinous", label, (0, bd + 19 * s, -3.5), (0, tip_y, -9 * s),
                         3.0 * s, frame=frame))
    if not is_c7:
        for sx in (1.0, -1.0):
            parts.append(ellipsoid(f"{name}_bifid", label, (sx * 3.5, tip_y, -9 * s), (3.2, 3.5, 3.0),
                                   frame=frame))
    else:
        parts.append(ellipsoid(f"{name}_tubercle", label, (0, tip_y, -9 * s), (4.5, 4.5, 4.0), frame=frame))
    for sx in (1.0, -1.0):
        parts.append(cylinder(f"{name}_foramen", label, (sx * 16.5 * s, 3.5, 1.0), (2.8, 2.8), 5.0,
                              kind="hole", frame=frame))
    return parts


def build_anatomy(rng: np.random.Generator, mpd_left: float, mpd_right: float,
                  overrides: Optional[dict] = None) -> Anatomy:
    """Draw one random cervical spine (C1-C7, skull base, mandible, soft tissue) in the C2 frame."""
    ov = dict(overrides or {})
    s = float(ov.get("scale", rng.uniform(0.9, 1.1)))
    cortical = float(ov.get("cortical_thickness_mm", rng.uniform(0.6, 1.6)))
    hu = {
        "cortical": float(ov.get("cortical_hu", rng.uniform(1200, 1800))),
        "cancellous": float(ov.get("cancellous_hu", rng.uniform(200, 400))),
        "muscle": rng.uniform(40, 60), "fat": rng.uniform(-115, -85), "air": -1000.0,
        "csf": rng.uniform(5, 20), "disc": rng.uniform(70, 95), "brain": rng.uniform(30, 40),
    }
    parts: List[Part] = []
    lm: Dict[str, np.ndarray] = {}
    L = LABELS

    # ---------------- C2 ----------------
    bw, bd, bh = rng.uniform(8.0, 9.5) * s, rng.uniform(7.0, 8.0) * s, rng.uniform(8.0, 9.5) * s
    parts.append(cylinder("c2_body", L["c2"], (0, 0, 0), (bw, bd), bh, 2.5))
    # anterior-inferior lip of the C2 body
    parts.append(ellipsoid("c2_lip", L["c2"], (0, -bd + 2.5, -bh + 1.0), (bw * 0.7, 3.0, 3.0)))
    r_d = rng.uniform(4.5, 5.5) * s
    dens_len = rng.uniform(12.0, 16.0) * s
    dens_tilt = rng.uniform(0.5, 3.0)  # posterior lean of the tip (mm)
    dens_a = _arr(0, -0.5, bh - 3.0)
    dens_b = _arr(0, -0.5 + dens_tilt, bh + dens_len)
    parts.append(capsule("c2_dens", L["c2"], dens_a, dens_b, r_d))
    lm["dens_tip"] = dens_b + _arr(0, 0, r_d)
    lm["c2_body_center"] = _arr(0, 0, 0)

    ped = {side: _make_pedicle(rng, side, m, s, cortical, bw, bd, ov)
           for side, m in (("left", mpd_left), ("right", mpd_right))}
    for side, shape in ped.items():
        sx = 1.0 if side == "left" else -1.0
        label = L["c2"]
        parts.append(_pedicle_part(shape, label))
        c, a = shape.centre, shape.axis
        half_h = 0.5 * shape.height_mm
        post = c - shape.t_posterior_mm * a        # posterior end: lateral mass / lamina junction
        ant = c + shape.t_anterior_mm * a          # anterior end: inside the body / body wing
        # body wing: lateral upper body under the superior facet, swallowing the tube's front end
        parts.append(ellipsoid(f"c2_wing_{side}", label, (ant[0] * 0.8, ant[1] - 1.0, ant[2] + 0.5),
                               (5.5 * s, 5.5 * s, 5.0 * s)))
        # superior articular facet (C2 lateral mass) above and lateral to the pedicle
        sf_z = c[2] + half_h + 2.0 + 3.5 * s + 2.5
        sf = _arr(sx * (bw + 7.0 * s), c[1] - 6.0 * s, sf_z)
        # the articular surface slopes down laterally (~20 degrees in the coronal plane)
        parts.append(ellipsoid(f"c2_sup_facet_{side}", label, (0, 0, 0), (8.0 * s, 8.0 * s, 3.8 * s),
                               frame=(sf, rot_y(sx * 20.0))))
        parts.append(capsule(f"c2_facet_body_{side}", label, (sx * bw * 0.5, -1.0, sf_z - 1.0),
                             (sf[0] * 0.9, sf[1], sf_z - 1.0), 3.5 * s))
        lm[f"c2_sup_facet_{side}"] = sf
        # pars / lateral-mass block at the tube's posterior end, inferior articular process below
        parts.append(ellipsoid(f"c2_pars_{side}", label, post + _arr(sx * 1.0, 1.5, -1.0),
                               (5.0 * s, 5.5 * s, 6.5 * s)))
        iap = post + _arr(sx * 0.5, 3.0, -6.0 * s)
        parts.append(ellipsoid(f"c2_inf_facet_{side}", label, iap, (6.0 * s, 6.5 * s, 3.0 * s)))
        lm[f"c2_inf_facet_{side}"] = iap
        # pars block up to the superior facet, lateral to the pedicle
        # (a pillar rising from the pars block, then forward to the facet, passing above the
        # isthmus so that the narrowest section stays free of other bone)
        pillar_top = _arr(post[0] + sx * 1.5, post[1] + 0.5, sf_z)
        parts.append(capsule(f"c2_lateral_mass_{side}", label, post + _arr(sx * 1.5, 0.5, 0.0),
                             pillar_top, 3.5 * s))
        parts.append(capsule(f"c2_lateral_mass_top_{side}", label, pillar_top, sf, 3.2 * s))
        # transverse process with the foramen of the vertebral artery, lateral to the pedicle
        tp_x = sx * (abs(c[0]) + 0.5 * shape.mpd_mm + 10.5 * s)
        parts.append(ellipsoid(f"c2_transverse_{side}", label, (tp_x, c[1] - 6.0, c[2] - 2.0),
                               (6.0 * s, 4.5 * s, 4.0 * s)))
        parts.append(cylinder(f"c2_foramen_{side}", label,
                              (tp_x - sx * 2.0 * s, c[1] - 6.0, c[2] - 2.0), (2.6, 2.6), 8.0,
                              kind="hole"))
        # lamina from the pars block to the midline junction (two capsules: a plate)
        junction = _arr(0, post[1] + 15.0 * s, post[2] - 2.0)
        for dz, rr in ((1.0, 2.8), (-3.0, 2.6)):
            parts.append(capsule(f"c2_lamina_{side}", label, post + _arr(-sx * 0.5, 3.0, dz),
                                 junction + _arr(0, 0, dz), rr * s))
        # bifid spinous process
        tip = junction + _arr(sx * 5.0 * s, 12.0 * s, -6.0 * s)
        parts.append(capsule(f"c2_spinous_{side}", label, junction, tip, 3.4 * s))
        parts.append(ellipsoid(f"c2_bifid_{side}", label, tip, (3.8, 4.0, 4.0)))
        lm[f"c2_spinous_tip_{side}"] = tip
    junction = _arr(0, max(p.centre[1] - p.t_posterior_mm * p.axis[1] for p in ped.values()) + 15 * s,
                    min(p.centre[2] - p.t_posterior_mm * p.axis[2] for p in ped.values()) - 2.0)
    parts.append(ellipsoid("c2_spinous_root", L["c2"], junction + _arr(0, 4.0, -3.0), (5.0, 7.0, 5.5)))
    c2_top_facet = max(lm["c2_sup_facet_left"][2], lm["c2_sup_facet_right"][2]) + 3.8 * s

    # ---------------- C1 (atlas) ----------------
    lm_rz = 6.5 * s
    z1 = c2_top_facet + 1.0 + lm_rz
    dens_front = -0.5 - r_d
    ring_b = 22.0 * s
    ring_cy = dens_front - 1.8 - 3.0 * s + ring_b  # anterior arch 1.8 mm in front of the dens
    ring_a = 21.0 * s
    ring_c = _arr(0, ring_cy, z1 + 1.0)
    parts.append(Part("c1_ring", "bone",
                      lambda x, y, z: sh.elliptic_ring(x, y, z, ring_c, (ring_a, ring_b),
                                                       (3.0 * s, 4.5 * s)),
                      _arr(-ring_a - 4, ring_cy - ring_b - 4, z1 - 5),
                      _arr(ring_a + 4, ring_cy + ring_b + 4, z1 + 7), L["c1"]))
    parts.append(ellipsoid("c1_ant_tubercle", L["c1"], (0, ring_cy - ring_b - 1.0, z1 + 1.0),
                           (5.0, 3.0, 5.5)))
    parts.append(ellipsoid("c1_post_tubercle", L["c1"], (0, ring_cy + ring_b + 1.0, z1 + 0.5),
                           (5.0, 3.5, 4.5)))
    for side, sx in (("left", 1.0), ("right", -1.0)):
        sf = lm[f"c2_sup_facet_{side}"]
        lmc = _arr(sx * max(abs(sf[0]), 15.0 * s), sf[1] + 1.0, z1)
        parts.append(ellipsoid(f"c1_lateral_mass_{side}", L["c1"], (0, 0, 0), (7.5 * s, 9.0 * s, lm_rz),
                               frame=(lmc, rot_y(sx * 20.0))))
        tpc = _arr(sx * (abs(lmc[0]) + 12.0 * s), lmc[1] + 2.0, z1 + 1.0)
        parts.append(ellipsoid(f"c1_transverse_{side}", L["c1"], tpc, (8.0 * s, 5.0 * s, 4.0 * s)))
        parts.append(cylinder(f"c1_foramen_{side}", L["c1"], tpc - _arr(sx * 3.5 * s, 0, 0), (2.8, 2.8),
                              6.0, kind="hole"))
    lm["c1_center"] = _arr(0, ring_cy, z1)

    # ---------------- skull base ----------------
    z_fm = z1 + lm_rz + 1.5 + 7.0  # foramen magnum level
    for side, sx in (("left", 1.0), ("right", -1.0)):
        cx = sx * 12.0 * s
        parts.append(ellipsoid(f"skull_condyle_{side}", L["skull"], (cx, ring_cy - ring_b + 12.0, z1 + lm_rz + 4.5),
                               (5.0 * s, 9.0 * s, 3.5)))
        parts.append(ellipsoid(f"skull_mastoid_{side}", L["skull"], (sx * 46 * s, ring_cy - 4.0, z_fm + 12.0),
                               (7.0, 9.0, 10.0)))
    sk_c = _arr(0, ring_cy + 4.0, z_fm + 52.0 * s)
    sk_r = _arr(66.0, 82.0, 62.0) * s
    thick = 6.0

    def skull(x, y, z):
        outer = sh.ellipsoid(x, y, z, sk_c, sk_r)
        shell = np.maximum(outer, -(outer + thick))
        floor = np.maximum(shell, (z_fm - 1.0) - z)
        return floor

    vault_lo = sk_c - sk_r
    vault_lo[2] = max(vault_lo[2], z_fm - 2.0)
    parts.append(Part("skull_vault", "bone", skull, vault_lo, sk_c + sk_r, L["skull"]))
    parts.append(capsule("skull_clivus", L["skull"], (0, ring_cy - ring_b + 14.0, z_fm + 2.0),
                         (0, ring_cy - ring_b - 10.0, z_fm + 32.0), 5.5))
    parts.append(cylinder("skull_foramen_magnum", L["skull"], (0, ring_cy + 2.0, z_fm + 8.0),
                          (15.0 * s, 18.0 * s), 12.0, kind="hole"))
    brain_r = sk_r - thick
    parts.append(Part("brain", "soft",
                      lambda x, y, z: np.maximum(sh.ellipsoid(x, y, z, sk_c, brain_r), (z_fm + 1.0) - z),
                      np.maximum(sk_c - brain_r, [-1e3, -1e3, z_fm]), sk_c + brain_r, 0, hu["brain"]))
    lm["foramen_magnum"] = _arr(0, ring_cy + 2.0, z_fm)

    # ---------------- C3-C7 ----------------
    levels_z = {"c2": (-bh, float(lm["dens_tip"][2])), "c1": (z1 - lm_rz, z1 + lm_rz)}
    z_prev_bottom = -bh
    y_prev = 0.0
    lordosis = rng.uniform(3.0, 9.0)  # degrees of pitch change per level
    pitch = 0.0
    for i, name in enumerate(("c3", "c4", "c5", "c6", "c7")):
        disc = rng.uniform(4.0, 6.0) * s
        hb = rng.uniform(6.0, 7.0) * s
        pitch += lordosis * (1 if i < 2 else -1) * 0.5
        yc = y_prev - (1.5 if i < 2 else -1.0) * s
        zc = z_prev_bottom - disc - hb
        frame = (_arr(0, yc, zc), rot_x(pitch))
        parts += _subaxial_vertebra(name, L[name], frame, s, hb, rng, name == "c7")
        parts.append(cylinder(f"disc_{name}", 0, (0, 0, hb + 0.5 * disc), (8.0 * s, 7.0 * s),
                              0.5 * disc + 0.6, 1.0, kind="soft", frame=frame, hu=hu["disc"]))
        levels_z[name] = (zc - hb, zc + hb)
        lm[f"{name}_body_center"] = _arr(0, yc, zc)
        z_prev_bottom = zc - hb
        y_prev = yc
    parts.append(cylinder("disc_t1", 0, (0, y_prev, z_prev_bottom - 2.5), (8.0 * s, 7.0 * s), 3.0, 1.0,
                          kind="soft", hu=hu["disc"]))

    # ---------------- mandible and hyoid (anterior, not part of the spine) ----------------
    mz = rng.uniform(-12.0, 0.0)
    man_c = _arr(0, -bd + 10.0, mz)

    def mandible(x, y, z):
        ring = sh.elliptic_ring(x, y, z, man_c, (40.0 * s, 52.0 * s), (4.5, 9.0))
        return np.maximum(ring, y - (man_c[1] - 20.0))

    parts.append(Part("mandible", "bone", mandible, man_c - _arr(50, 64, 10), man_c + _arr(50, 0, 10),
                      L["mandible"]))
    for sx in (1.0, -1.0):
        parts.append(capsule("mandible_ramus", L["mandible"], (sx * 40 * s, man_c[1] - 22.0, mz + 2.0),
                             (sx * 46 * s, man_c[1] - 8.0, mz + 38.0), 4.5))
    hz = levels_z["c3"][0] - rng.uniform(0.0, 6.0)
    hy_c = _arr(0, -bd + 5.0, hz)
    parts.append(Part("hyoid", "bone",
                      lambda x, y, z: np.maximum(sh.elliptic_ring(x, y, z, hy_c, (17.0, 20.0), (2.0, 3.0)),
                                                 y - (hy_c[1] - 6.0)),
                      hy_c - _arr(20, 24, 4), hy_c + _arr(20, 0, 4), L["hyoid"]))

    # ---------------- soft tissue ----------------
    neck = {"cy": rng.uniform(6.0, 12.0), "ax": rng.uniform(50.0, 60.0), "ay": rng.uniform(50.0, 58.0),
            "fat": rng.uniform(3.0, 9.0), "z_head": z1 + 5.0}
    air_c = _arr(0, -bd - rng.uniform(8.0, 11.0), 0)
    # muscles and intermuscular fat planes of the neck (drawn before airway and canal)
    m_lo, m_hi = levels_z["c7"][0] - 40.0, z1 + 10.0
    m_z, m_h = 0.5 * (m_lo + m_hi), 0.5 * (m_hi - m_lo)
    scm_x, scm_y = rng.uniform(34, 40) * s, neck["cy"] - rng.uniform(18, 26)
    for sx in (1.0, -1.0):
        parts.append(cylinder("scm_fat", 0, (sx * scm_x, scm_y, m_z), (11.0, 14.0), m_h, 3.0,
                              kind="soft", hu=hu["fat"] + 20.0))
        parts.append(cylinder("scm", 0, (sx * scm_x, scm_y, m_z), (8.0, 11.5), m_h, 3.0,
                              kind="soft", hu=hu["muscle"] + 8.0))
        parts.append(cylinder("paraspinal_fat", 0, (sx * rng.uniform(18, 24), bd + rng.uniform(36, 44), m_z),
                              (2.2, rng.uniform(9, 13)), m_h, 1.5, kind="soft", hu=hu["fat"] + 10.0))
        parts.append(cylinder("jugular", 0, (sx * (scm_x - 12.0), scm_y + 4.0, m_z), (5.0, 3.5), m_h, 1.0,
                              kind="soft", hu=hu["muscle"] - 12.0))
    parts.append(cylinder("nuchal_fat", 0, (0, bd + rng.uniform(46, 52), m_z), (1.8, 9.0), m_h, 1.0,
                          kind="soft", hu=hu["fat"] + 10.0))
    air_lo, air_hi = levels_z["c7"][0] - 30.0, z1 + 6.0
    parts.append(cylinder("airway", 0, (air_c[0], air_c[1], 0.5 * (air_lo + air_hi)),
                          (rng.uniform(7, 11), rng.uniform(4, 7)), 0.5 * (air_hi - air_lo), 3.0,
                          kind="soft", hu=hu["air"]))
    canal_lo, canal_hi = levels_z["c7"][0] - 30.0, z_fm + 4.0
    parts.append(cylinder("canal", 0, (0, bd + 8.0 * s, 0.5 * (canal_lo + canal_hi)), (11.0 * s, 7.5 * s),
                          0.5 * (canal_hi - canal_lo), 2.0, kind="soft", hu=hu["csf"]))
    landmarks = {k: np.asarray(v, dtype=float) for k, v in lm.items()}
    return Anatomy(parts=parts, pedicles=ped, landmarks=landmarks, levels_z=levels_z, hu=hu,
                   cortical_mm=cortical, params={"scale": s, **{f"neck_{k}": v for k, v in neck.items()},
                           "head_cx": float(sk_c[0]), "head_cy": float(sk_c[1]), "head_cz": float(sk_c[2]),
                           "head_rx": float(sk_r[0] + 7.0), "head_ry": float(sk_r[1] + 7.0),
                           "head_rz": float(sk_r[2] + 7.0),
                           "jaw_cx": 0.0, "jaw_cy": float(man_c[1] - 8.0), "jaw_cz": float(mz + 12.0),
                           "jaw_rx": 50.0 * s, "jaw_ry": 64.0 * s, "jaw_rz": 30.0})
