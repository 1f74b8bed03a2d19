"""The pedicle axis: from a mask (principal direction refined by slab centroids) or from a
trajectory (entry -> target), plus the in-plane basis of the perpendicular cross-sections.

Axis vectors point posterior -> anterior (LPS, see ``docs/ARCHITECTURE.md``).
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from .. import geometry
from ..errors import MeasurementError

MIN_MASK_VOLUME_MM3 = 15.0
MIN_ELONGATION = 1.2
#: A trajectory shorter than this cannot span an isthmus (mm).
MIN_TRAJECTORY_MM = 6.0


def crop_to_mask(mask: sitk.Image, margin: int = 2) -> sitk.Image:
    """The mask's bounding box (+``margin`` voxels, never beyond the image), same geometry.

    A mask on a 512 x 512 x 300 grid is 80 M voxels; the pedicle fills a few thousand. Where
    the mask touches the image edge the crop does too, so the edge check still sees it.
    """
    if mask.GetDimension() != 3:
        return mask
    arr = sitk.GetArrayViewFromImage(mask) != 0
    lo, hi = [], []
    for axis in range(3):
        hit = np.nonzero(arr.any(axis=tuple(a for a in range(3) if a != axis)))[0]
        if len(hit) == 0:
            return mask
        lo.append(max(0, int(hit[0]) - margin))
        hi.append(min(arr.shape[axis], int(hit[-1]) + margin + 1))
    size = [hi[a] - lo[a] for a in (2, 1, 0)]
    index = [lo[a] for a in (2, 1, 0)]
    return sitk.RegionOfInterest(mask, size, index)


def mask_points(mask: sitk.Image, label: str, ct: sitk.Image = None) -> np.ndarray:
    """LPS points (n, 3) of the mask's voxels.

    A mask that reaches the edge of the scan may have its pedicle cut off and is refused. With
    ``ct``, only the scan's edge counts: a mask file stored over its segment's own extent (a
    Slicer .seg.nrrd) fills its grid to the edge without anything being cut off."""
    if mask.GetDimension() != 3:
        raise MeasurementError(f"The {label} mask is not a 3D image.",
                               hint="Give a 3D label map on the CT's patient space.")
    arr = sitk.GetArrayViewFromImage(mask) > 0
    kji = np.argwhere(arr)
    voxel_mm3 = float(np.prod(mask.GetSpacing()))
    if kji.shape[0] * voxel_mm3 < MIN_MASK_VOLUME_MM3:
        raise MeasurementError(
            f"The {label} mask is empty or too small ({kji.shape[0] * voxel_mm3:.1f} mm3).",
            hint="Correct the segmentation of that side (for 'c2net measure', also check which "
                 "label values are the left and right pedicles).")
    shape = np.asarray(arr.shape)
    on_edge = np.any((kji == 0) | (kji == shape - 1), axis=1)
    if on_edge.any() and ct is not None:
        # the mask's edge voxels that also lie on (within a voxel of) the scan's edge
        idx = geometry.lps_to_index(ct, geometry.index_to_lps(mask, kji[on_edge][:, ::-1].astype(float)))
        size = np.asarray(ct.GetSize(), float)
        on_edge = np.any((idx < 0.5) | (idx > size - 1.5), axis=1)
    if on_edge.any():
        raise MeasurementError(
            f"The {label} mask touches the edge of the scan: the pedicle may be cut off.",
            hint="Use a scan whose field of view contains the whole C2 vertebra.")
    return geometry.index_to_lps(mask, kji[:, ::-1].astype(float))



def pedicle_axis_from_mask(pts: np.ndarray, label: str) -> Tuple[np.ndarray, np.ndarray]:
    centroid = pts.mean(axis=0)
    d = pts - centroid
    evals, evecs = np.linalg.eigh(d.T @ d / len(d))
    # Candidate: the principal direction closest to the antero-posterior course that C2
    # pedicles take (medial 20-40 deg, cranial 15-35 deg); then refine by slab centroids.
    scores = np.abs(evecs[1, :]) * np.sqrt(np.maximum(evals, 1e-9))
    axis = evecs[:, int(np.argmax(scores))]
    for _ in range(4):
        axis = _refine_axis(pts, centroid, axis)
    if axis[1] > 0:
        axis = -axis  # posterior -> anterior (anterior is -y in LPS)
    t = d @ axis
    length = np.percentile(t, 98) - np.percentile(t, 2)
    rest = d - np.outer(t, axis)
    u, v = section_basis(axis)
    wu = np.percentile(rest @ u, 98) - np.percentile(rest @ u, 2)
    wv = np.percentile(rest @ v, 98) - np.percentile(rest @ v, 2)
    elong = length / max(np.sqrt(max(wu, 1e-3) * max(wv, 1e-3)), 1e-3)
    if elong < MIN_ELONGATION:
        raise MeasurementError(
            f"The {label} mask is not an elongated pedicle (length {length:.1f} mm vs "
            f"cross-section {wu:.1f} x {wv:.1f} mm).",
            hint="The mask should cover the pedicle between lateral mass and vertebral body; "
                 "correct the segmentation and recompute.")
    return axis, centroid


def _refine_axis(pts: np.ndarray, centroid: np.ndarray, axis: np.ndarray) -> np.ndarray:
    t = (pts - centroid) @ axis
    lo, hi = np.percentile(t, [5, 95])
    edges = np.arange(lo, hi + 1e-9, 1.0)
    cents, weights = [], []
    for a, b in zip(edges[:-1], edges[1:]):
        sel = (t >= a) & (t < b)
        if sel.sum() >= 5:
            cents.append(pts[sel].mean(axis=0))
            weights.append(sel.sum())
    if len(cents) < 3:
        return axis
    c = np.asarray(cents)
    w = np.asarray(weights, dtype=float)
    mu = (c * w[:, None]).sum(axis=0) / w.sum()
    cov = ((c - mu) * w[:, None]).T @ (c - mu)
    new = np.linalg.eigh(cov)[1][:, -1]
    if new @ axis < 0:
        new = -new
    # guard against a degenerate refit swinging the axis
    return new if new @ axis > np.cos(np.radians(35)) else axis


def section_basis(axis: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """In-plane orthonormal basis: v towards superior (projected), u = v x axis."""
    sup = np.array([0.0, 0.0, 1.0])
    v = sup - (sup @ axis) * axis
    if np.linalg.norm(v) < 1e-3:
        v = np.array([1.0, 0.0, 0.0]) - axis[0] * axis
    v /= np.linalg.norm(v)
    u = np.cross(v, axis)
    return u / np.linalg.norm(u), v


def slab_centroid(pts, t_vals, t, centroid, axis, half_width=0.75) -> np.ndarray:
    sel = np.abs(t_vals - t) <= half_width
    base = centroid + t * axis
    if sel.sum() < 5:
        return base
    c = pts[sel].mean(axis=0)
    return c - ((c - base) @ axis) * axis  # project onto the section plane



def axis_angles_deg(axis_lps: Sequence[float], side: str) -> Tuple[float, float]:
    """(medial, cranial) angles in degrees of a posterior->anterior pedicle axis.

    Medial: angle in the axial plane from straight anterior, positive towards the midline
    (towards -x for the left pedicle, +x for the right). Cranial: elevation above the axial
    plane, positive towards superior.
    """
    a = np.asarray(axis_lps, dtype=float)
    a = a / np.linalg.norm(a)
    anterior = -a[1]
    medial_comp = -a[0] if side == "left" else a[0]
    medial = float(np.degrees(np.arctan2(medial_comp, anterior)))
    cranial = float(np.degrees(np.arctan2(a[2], np.hypot(a[0], a[1]))))
    return medial, cranial



def trajectory_axis(entry_lps: Sequence[float], target_lps: Sequence[float],
                    label: str) -> Tuple[np.ndarray, np.ndarray, float]:
    """(unit axis posterior -> anterior, entry point, length mm) of an entry -> target line.

    The entry is the posterior point (lamina / lateral mass junction), the target the anterior
    one (vertebral body); both LPS mm.
    """
    e = np.asarray(entry_lps, dtype=float).reshape(-1)
    t = np.asarray(target_lps, dtype=float).reshape(-1)
    if e.shape != (3,) or t.shape != (3,) or not (np.all(np.isfinite(e)) and np.all(np.isfinite(t))):
        raise MeasurementError(f"The {label} trajectory needs two finite 3D points (entry, target).",
                               hint="Give EX EY EZ TX TY TZ in millimetres.")
    d = t - e
    length = float(np.linalg.norm(d))
    if length < MIN_TRAJECTORY_MM:
        raise MeasurementError(
            f"The {label} trajectory is only {length:.1f} mm long.",
            hint=f"Entry and target must be at least {MIN_TRAJECTORY_MM:.0f} mm apart, on either "
                 "side of the isthmus (entry near the lamina, target in the vertebral body).")
    axis = d / length
    if axis[1] > 0:
        raise MeasurementError(
            f"The {label} trajectory runs from anterior to posterior.",
            hint="Give the posterior entry point first and the anterior target second (check the "
                 "frame: LPS by default, --seed-frame RAS for Slicer coordinates).")
    return axis, e, length
