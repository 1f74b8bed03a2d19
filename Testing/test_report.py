"""A synthetic, asymmetric "Assess C2" result for the report tests (no models, no pipeline).

The CT is stored with a permuted, flipped direction matrix (index i -> patient right, j ->
inferior, k -> anterior) so that any writer that ignores the geometry puts things on the wrong
side. The left pedicle (patient left, +x) and the right one differ in width, and a dense bead
sits at patient LEFT-ANTERIOR only, so pictures can be checked for orientation.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import SimpleITK as sitk

import c2net
from c2net.geometry import index_to_lps
from c2net.results import (
    Assessment,
    IsthmusSlices,
    PedicleMeasurement,
    RiskPrediction,
    SideAssessment,
)
from c2net.verdict import DecisionSettings, agreement, mpd_verdict, network_verdict

DIRECTION = np.column_stack([(-1.0, 0, 0), (0, 0, -1.0), (0, -1.0, 0)])   # det +1
SPACING = (0.5, 1.0, 0.5)
SIZE = (128, 32, 112)             # i: 64 mm (x), j: 32 mm (z), k: 56 mm (y)
BEAD_LPS = np.array([25.0, -15.0, 0.0])     # patient left, anterior


def _unit(v):
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def pedicle_frame(side: str):
    """(centre, axis, u (MPD direction), v) of a synthetic pedicle, LPS."""
    sx = 1.0 if side == "left" else -1.0
    centre = np.array([12.0 * sx, 2.0, 0.0])
    axis = _unit([-0.34 * sx, -0.94, 0.10])       # posterior -> anterior, converging medially
    x = np.array([1.0, 0, 0])
    u = _unit(x - (x @ axis) * axis)
    v = np.cross(axis, u)
    return centre, axis, u, v


def make_ct(width_mm: dict, height_mm: float = 8.0) -> Tuple[sitk.Image, sitk.Image]:
    """CT (HU float32) and pedicle labels (uint8: 1 left, 2 right) on the stored grid."""
    ref = sitk.Image(list(SIZE), sitk.sitkFloat32)
    ref.SetSpacing(SPACING)
    ref.SetDirection(DIRECTION.ravel().tolist())
    # choose the origin so that the volume is centred on LPS (0, 0, 0)
    centre_idx = (np.array(SIZE) - 1) / 2.0
    ref.SetOrigin((-(DIRECTION @ (np.array(SPACING) * centre_idx))).tolist())
    kk, jj, ii = np.meshgrid(*[np.arange(n) for n in SIZE[::-1]], indexing="ij")
    ijk = np.stack([ii.ravel(), jj.ravel(), kk.ravel()], axis=1)
    p = index_to_lps(ref, ijk)
    hu = np.full(len(p), 40.0, np.float32)
    labels = np.zeros(len(p), np.uint8)
    # vertebral body: ellipsoid anterior to the pedicles
    body = ((p[:, 0] / 14) ** 2 + ((p[:, 1] + 14) / 9) ** 2 + (p[:, 2] / 12) ** 2) <= 1
    hu[body] = 280.0
    for side, label in (("left", 1), ("right", 2)):
        c, a, u, v = pedicle_frame(side)
        d = p - c
        t = d @ a
        su, sv = d @ u, d @ v
        half_w = width_mm[side] / 2 * (1 + 0.012 * t ** 2)
        r = (su / half_w) ** 2 + (sv / (height_mm / 2)) ** 2
        tube = (r <= 1) & (np.abs(t) <= 12)
        inner = ((su / np.maximum(half_w - 0.8, 0.3)) ** 2
                 + (sv / (height_mm / 2 - 0.8)) ** 2 <= 1) & tube
        hu[tube] = 1300.0
        hu[inner] = 260.0
        labels[tube & (np.abs(t) <= 9)] = label
    hu[np.linalg.norm(p - BEAD_LPS, axis=1) <= 2.0] = 1800.0
    shape = SIZE[::-1]
    ct = sitk.GetImageFromArray(hu.reshape(shape))
    ct.CopyInformation(ref)
    seg = sitk.GetImageFromArray(labels.reshape(shape))
    seg.CopyInformation(ref)
    return ct, seg


def _axial_stack(image: sitk.Image, centre, interp, default, pixel) -> np.ndarray:
    """Five 1 mm axial 64x64 slices around ``centre`` (row -> posterior, column -> left)."""
    ref = sitk.Image([64, 64, 5], sitk.sitkUInt8)
    ref.SetSpacing([1.0, 1.0, 1.0])
    ref.SetOrigin((np.asarray(centre) - np.array([31.5, 31.5, 2.0])).tolist())
    return sitk.GetArrayFromImage(sitk.Resample(image, ref, sitk.Transform(), interp, default,
                                                pixel))


def make_assessment(width_mm: Optional[dict] = None, p_high: Optional[dict] = None,
                    status: str = "ok") -> Assessment:
    """A complete synthetic Assessment (status "ok"), or a failed one (status "error")."""
    settings = DecisionSettings()
    common = dict(
        warnings=["synthetic test case"],
        input={"path": "/data/phantom/case007.nii.gz", "format": "nifti",
               "patient_id": "PHANTOM-007", "study_instance_uid": "1.2.826.0.1.7",
               "series_instance_uid": "1.2.826.0.1.7.2", "series_description": "C-spine bone",
               "size": list(SIZE), "spacing_mm": list(SPACING)},
        settings=settings.to_dict(),
        models=[{"id": "c2net-unet", "kind": "segmentation", "version": "0.1.0",
                 "sha256": "a" * 64, "file": "models/unet.onnx"},
                {"id": "c2net-c3d", "kind": "classifier", "version": "0.1.0",
                 "sha256": "b" * 64, "file": "models/c3d.onnx"}],
        software={"c2net": c2net.__version__, "SimpleITK": sitk.Version.VersionString(),
                  "execution_provider": "CPUExecutionProvider"},
        timings_s={"load": 0.12, "segment": 0.8},
        created_utc="2026-01-02T03:04:05Z",
    )
    if status == "error":
        return Assessment(status="error",
                          error={"code": "c2_not_found", "message": "C2 was not found in the scan.",
                                 "hint": "Give a seed point on C2 (--seed X Y Z)."}, **common)
    width_mm = width_mm or {"left": 6.2, "right": 3.6}
    p_high = p_high or {"left": 0.12, "right": 0.91}
    ct, seg = make_ct(width_mm)
    att = np.zeros(SIZE[::-1], np.float32)
    sides = {}
    kk, jj, ii = np.meshgrid(*[np.arange(n) for n in SIZE[::-1]], indexing="ij")
    p = index_to_lps(ct, np.stack([ii.ravel(), jj.ravel(), kk.ravel()], 1)).reshape(
        SIZE[::-1] + (3,))
    for side in ("left", "right"):
        c, a, u, v = pedicle_frame(side)
        w = width_mm[side]
        unc = 0.2
        medial = float(np.degrees(np.arctan2(0.34, 0.94)))
        m = PedicleMeasurement(
            side=side, mpd_mm=w, mpd_direction_lps=tuple(u),
            mpd_endpoints_lps_mm=(tuple(c - w / 2 * u), tuple(c + w / 2 * u)),
            inner_width_mm=w - 1.6, outer_height_mm=8.0, inner_height_mm=6.4,
            isthmus_center_lps_mm=tuple(c), axis_lps=tuple(a), medial_angle_deg=medial,
            cranial_angle_deg=5.7, mpd_uncertainty_mm=unc,
            profile=[{"t_mm": -1.0, "outer_width_mm": w + 0.1, "inner_width_mm": w - 1.5},
                     {"t_mm": 0.0, "outer_width_mm": w, "inner_width_mm": w - 1.6}])
        hu = _axial_stack(ct, c, sitk.sitkLinear, -1024.0, sitk.sitkFloat32)
        mask = (_axial_stack(seg, c, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
                == (1 if side == "left" else 2)).astype(np.uint8)
        yy, xx = np.mgrid[0:64, 0:64]
        cam2 = np.exp(-((xx - 33) ** 2 + (yy - 30) ** 2) / (2 * 5.0 ** 2)).astype(np.float32)
        cam = np.repeat(cam2[None], 5, axis=0)
        slices = IsthmusSlices(side, hu.astype(np.float32),
                               [tuple(c + np.array([0, 0, dz])) for dz in (-2, -1, 0, 1, 2)],
                               1.0, mask)
        pred = RiskPrediction(side, p_high[side], (0.3, -0.2), 1.3, cam, "c2net-c3d@0.1.0")
        dist = np.linalg.norm((p - c)[..., :2], axis=-1)
        near = (np.abs(p[..., 2] - c[2]) <= 2.5) & (dist < 12)
        att[near] = np.maximum(att[near], np.exp(-dist[near] ** 2 / (2 * 4.0 ** 2)))
        vm = mpd_verdict(w, unc, settings.cutoff_mm)
        vn = network_verdict(p_high[side], settings.network_threshold)
        sides[side] = SideAssessment(side, m, pred, slices, vm, vn, agreement(vm, vn))
    att_img = sitk.GetImageFromArray(att)
    att_img.CopyInformation(ct)
    return Assessment(status="ok", localisation={"confidence": 0.97, "method": "synthetic"},
                      sides=sides, ct=ct, segmentation=seg, attention=att_img, **common)
