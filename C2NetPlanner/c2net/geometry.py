"""Patient-frame geometry: canonical reorientation, isotropic resampling and mapping back.

Frames
------
* Physical coordinates are **LPS millimetres** (x -> patient left, y -> posterior,
  z -> superior), the frame SimpleITK and DICOM use. Slicer's RAS is converted at its adapter.
* The **canonical grid** has identity direction and isotropic spacing (1.0 mm by default).
  Its numpy array (``sitk.GetArrayFromImage``) is indexed ``[k, j, i] = [S, P, L]``: axis 0
  runs inferior -> superior, axis 1 anterior -> posterior, axis 2 patient right -> left.

All functions take and return ``SimpleITK.Image`` objects (which carry spacing, origin and
direction) or numpy arrays of LPS points, never bare arrays whose geometry must be guessed.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import SimpleITK as sitk

CANONICAL_SPACING_MM = 1.0
AIR_HU = -1024.0

_INTERPOLATORS = {
    "linear": sitk.sitkLinear,
    "nearest": sitk.sitkNearestNeighbor,
    "bspline": sitk.sitkBSpline,
    "label": sitk.sitkNearestNeighbor,
}


def direction_matrix(image: sitk.Image) -> np.ndarray:
    """3x3 direction cosine matrix; column c is the LPS direction of index axis c."""
    return np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)


def index_to_lps_matrix(image: sitk.Image) -> np.ndarray:
    """3x3 matrix M with ``lps = origin + M @ ijk`` (ijk in SimpleITK's i, j, k order)."""
    return direction_matrix(image) @ np.diag(np.asarray(image.GetSpacing(), dtype=float))


def index_to_lps(image: sitk.Image, ijk: np.ndarray) -> np.ndarray:
    """Continuous indices (N, 3) in (i, j, k) order -> LPS points (N, 3) in mm."""
    ijk = np.atleast_2d(np.asarray(ijk, dtype=float))
    return ijk @ index_to_lps_matrix(image).T + np.asarray(image.GetOrigin(), dtype=float)


def lps_to_index(image: sitk.Image, lps: np.ndarray) -> np.ndarray:
    """LPS points (N, 3) in mm -> continuous indices (N, 3) in (i, j, k) order."""
    lps = np.atleast_2d(np.asarray(lps, dtype=float))
    inv = np.linalg.inv(index_to_lps_matrix(image))
    return (lps - np.asarray(image.GetOrigin(), dtype=float)) @ inv.T


def orientation_code(image: sitk.Image) -> str:
    """Three-letter code of the closest axis-aligned orientation, e.g. ``"LPS"`` or ``"RAI"``.

    Letter c names the patient direction that index axis c points *towards*.
    """
    d = direction_matrix(image)
    letters = []
    for c in range(3):
        axis = int(np.argmax(np.abs(d[:, c])))
        positive = d[axis, c] > 0
        letters.append(("L", "P", "S")[axis] if positive else ("R", "A", "I")[axis])
    return "".join(letters)


def obliquity_deg(image: sitk.Image) -> float:
    """Largest angle (degrees) between an index axis and its nearest patient axis."""
    d = direction_matrix(image)
    cosines = np.max(np.abs(d), axis=0).clip(-1.0, 1.0)
    return float(np.degrees(np.arccos(cosines)).max())


def physical_bounds(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) LPS corners of the box covered by the voxels (voxel edges, not centres)."""
    size = np.asarray(image.GetSize(), dtype=float)
    corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=float)
    ijk = corners * size - 0.5
    pts = index_to_lps(image, ijk)
    return pts.min(axis=0), pts.max(axis=0)


def canonical_reference(
    image: sitk.Image, spacing_mm: float = CANONICAL_SPACING_MM,
    bounds: tuple[Sequence[float], Sequence[float]] | None = None,
) -> sitk.Image:
    """An empty canonical grid (identity direction, isotropic spacing) covering ``bounds``.

    ``bounds`` defaults to the physical extent of ``image``; pass an ROI's (min, max) LPS
    corners to make a canonical crop.
    """
    lo, hi = bounds if bounds is not None else physical_bounds(image)
    lo = np.asarray(lo, dtype=float)
    hi = np.asarray(hi, dtype=float)
    size = np.maximum(np.ceil((hi - lo) / spacing_mm - 1e-6).astype(int), 1)
    ref = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    ref.SetSpacing([float(spacing_mm)] * 3)
    ref.SetDirection(np.eye(3).ravel().tolist())
    ref.SetOrigin((lo + 0.5 * spacing_mm).tolist())
    return ref


def resample_like(
    image: sitk.Image, reference: sitk.Image, interpolator: str = "linear",
    default_value: float | None = None, antialias: bool = False,
) -> sitk.Image:
    """Resample ``image`` onto ``reference``'s grid through physical (LPS) space.

    ``interpolator`` is ``"linear"``/``"bspline"`` for intensities and ``"nearest"``/``"label"``
    for label maps. ``antialias`` Gaussian-smooths intensities first when the target grid is
    coarser than the source, so thin cortex is averaged rather than aliased.
    """
    if interpolator not in _INTERPOLATORS:
        raise ValueError(f"unknown interpolator {interpolator!r}")
    is_label = interpolator in ("nearest", "label")
    if default_value is None:
        default_value = 0.0 if is_label else AIR_HU
    src = image
    if antialias and not is_label:
        src_sp = np.asarray(image.GetSpacing(), dtype=float)
        dst_sp = float(min(reference.GetSpacing()))
        sigma = np.array([_antialias_sigma_mm(sp, dst_sp) for sp in src_sp])
        if np.any(sigma > 0.05):
            # one axis at a time: axes already at or above the target spacing are left alone
            src = sitk.Cast(image, sitk.sitkFloat32)
            for axis, s in enumerate(sigma):
                if s > 0.05:
                    src = sitk.RecursiveGaussian(src, float(s), False,
                                                 sitk.RecursiveGaussianImageFilter.ZeroOrder, axis)
    pixel = src.GetPixelID() if is_label else sitk.sitkFloat32
    return sitk.Resample(src, reference, sitk.Transform(), _INTERPOLATORS[interpolator],
                         float(default_value), pixel)


def to_canonical(
    image: sitk.Image, spacing_mm: float = CANONICAL_SPACING_MM, interpolator: str = "linear",
    bounds: tuple[Sequence[float], Sequence[float]] | None = None, antialias: bool = True,
) -> sitk.Image:
    """Reorient to the canonical LPS frame and resample to isotropic ``spacing_mm``.

    Works for any direction matrix (axial, sagittal, coronal, flipped, permuted, oblique):
    resampling goes through physical space, so patient left stays patient left.
    """
    ref = canonical_reference(image, spacing_mm, bounds)
    return resample_like(image, ref, interpolator, antialias=antialias)


def index_box(image: sitk.Image, lo_lps, hi_lps, margin: int = 0
              ) -> tuple[np.ndarray, np.ndarray]:
    """Voxel index range [i0, i1) (i, j, k order) of ``image`` covering the LPS box lo..hi,
    widened by ``margin`` voxels and clipped to the image (empty where they do not overlap)."""
    lo, hi = np.asarray(lo_lps, float), np.asarray(hi_lps, float)
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                        for z in (lo[2], hi[2])])
    ijk = lps_to_index(image, corners)
    size = np.asarray(image.GetSize())
    i0 = np.clip(np.floor(ijk.min(axis=0)).astype(int) - margin, 0, size)
    i1 = np.clip(np.ceil(ijk.max(axis=0)).astype(int) + margin + 1, 0, size)
    return i0, i1


def input_region(image: sitk.Image, input_image: sitk.Image, margin: int = 2
                 ) -> tuple[sitk.Image, np.ndarray, np.ndarray]:
    """The part of ``input_image``'s grid under ``image``'s physical box (+``margin`` voxels).

    Returns ``(region, i0, i1)``: an empty image with the input's spacing and direction whose
    voxels are the input's voxels ``i0 <= ijk < i1`` (i, j, k order), so a map resampled onto
    ``region`` can be pasted into an input-sized array with :func:`paste_region`.
    """
    i0, i1 = index_box(input_image, *physical_bounds(image), margin=margin)
    return _grid_part(input_image, i0, i1), i0, i1


def _grid_part(input_image: sitk.Image, i0: np.ndarray, i1: np.ndarray) -> sitk.Image:
    """An empty uint8 image on ``input_image``'s voxels ``i0 <= ijk < i1`` (at least one)."""
    region = sitk.Image([int(v) for v in np.maximum(i1 - i0, 1)], sitk.sitkUInt8)
    region.SetSpacing(input_image.GetSpacing())
    region.SetDirection(input_image.GetDirection())
    region.SetOrigin(input_image.TransformIndexToPhysicalPoint([int(v) for v in i0]))
    return region


def sub_grid(input_image: sitk.Image, lo_lps, hi_lps, margin: int = 2) -> sitk.Image:
    """An empty uint8 image on the part of ``input_image``'s grid under the LPS box lo..hi.

    Its voxels are the input's own voxels (same spacing and direction, origin on one of the
    input's voxel centres), so maps on it overlay the input voxel for voxel without being
    input-sized: the C2 region of a 512 x 512 x 300 scan is a few million voxels, not 80 M.
    """
    return _grid_part(input_image, *index_box(input_image, lo_lps, hi_lps, margin=margin))


def offset_in(image: sitk.Image, input_image: sitk.Image, tol_vox: float = 1e-3
              ) -> Optional[np.ndarray]:
    """The (i, j, k) index in ``input_image`` of ``image``'s first voxel when ``image`` lies on
    a part of ``input_image``'s own grid (same spacing and direction, origin on an input voxel,
    extent inside it); None otherwise."""
    if (image.GetDimension() != input_image.GetDimension()
            or not np.allclose(image.GetSpacing(), input_image.GetSpacing(), rtol=1e-6, atol=1e-6)
            or not np.allclose(image.GetDirection(), input_image.GetDirection(), atol=1e-6)):
        return None
    ijk = np.asarray(input_image.TransformPhysicalPointToContinuousIndex(image.GetOrigin()))
    i0 = np.rint(ijk)
    if np.any(np.abs(ijk - i0) > tol_vox):
        return None
    i0 = i0.astype(int)
    if np.any(i0 < 0) or np.any(i0 + np.asarray(image.GetSize()) > np.asarray(input_image.GetSize())):
        return None
    return i0


def on_full_grid(image: sitk.Image, input_image: sitk.Image, default_value: float = 0.0,
                 interpolator: str = "nearest") -> sitk.Image:
    """``image`` on ``input_image``'s whole grid: pasted when it lies on a part of that grid
    (:func:`offset_in`), else resampled with ``interpolator``."""
    i0 = offset_in(image, input_image)
    if i0 is None:
        return to_input_grid(image, input_image, interpolator, default_value)
    if np.array_equal(image.GetSize(), input_image.GetSize()):
        return image
    return paste_region(sitk.GetArrayFromImage(image), i0, i0 + np.asarray(image.GetSize()),
                        input_image, default_value)


def paste_region(sub_kji: np.ndarray, i0: np.ndarray, i1: np.ndarray, input_image: sitk.Image,
                 default_value: float = 0.0) -> sitk.Image:
    """An image on ``input_image``'s grid: ``sub_kji`` at voxels i0..i1, ``default_value`` elsewhere."""
    size = np.asarray(input_image.GetSize())
    full = np.full(tuple(int(v) for v in size[::-1]), default_value, dtype=sub_kji.dtype)
    if np.all(i1 - i0 >= 1):         # else no overlap: all default
        full[i0[2]:i1[2], i0[1]:i1[1], i0[0]:i1[0]] = sub_kji
    return copy_geometry(full, input_image)


def to_input_grid(
    image: sitk.Image, input_image: sitk.Image, interpolator: str = "linear",
    default_value: float = 0.0,
) -> sitk.Image:
    """Map a label map or heat map computed on another grid back onto the input's own grid.

    Only the input voxels under ``image``'s physical box (+2 voxels) are resampled; the rest
    is ``default_value``. (A 512 x 512 x 300 scan is 80 M voxels; the crop is a few 100 k.)
    """
    region, i0, i1 = input_region(image, input_image)
    if np.all(i0 == 0) and np.all(i1 == np.asarray(input_image.GetSize())):
        return resample_like(image, input_image, interpolator, default_value=default_value)
    sub = sitk.GetArrayFromImage(resample_like(image, region, interpolator,
                                               default_value=default_value))
    return paste_region(sub, i0, i1, input_image, default_value)


def array_lps(image: sitk.Image) -> np.ndarray:
    """The image's voxels as a numpy array indexed [k, j, i] (SimpleITK order)."""
    return sitk.GetArrayFromImage(image)


def copy_geometry(array_kji: np.ndarray, like: sitk.Image) -> sitk.Image:
    """Wrap a [k, j, i] array in an image with ``like``'s spacing, origin and direction."""
    out = sitk.GetImageFromArray(array_kji)
    out.CopyInformation(like)
    return out


def canonical_crop(ct: sitk.Image, center_lps_mm: Sequence[float], size_mm: Sequence[float],
                  interpolator: str = "linear") -> sitk.Image:
    """Canonical 1 mm crop of ``size_mm`` (x, y, z) centred on ``center_lps_mm`` (LPS mm).

    Only the part of ``ct`` under the crop (+3 voxels) is touched. For intensities
    (``"linear"``) axes finer than 1 mm are Gaussian-smoothed first (sigma = 0.4 *
    sqrt(1 - spacing^2) mm, per axis) so thin cortex is averaged, not aliased. Outside the
    scan: -1024 HU for intensities, 0 for labels (``"label"``/``"nearest"``).
    """
    c = np.asarray(center_lps_mm, dtype=float)
    half = np.asarray(size_mm, dtype=float) / 2.0
    ref = canonical_reference(ct, 1.0, (c - half, c + half))
    is_label = interpolator in ("label", "nearest")
    i0, i1 = index_box(ct, *physical_bounds(ref), margin=3)
    if np.any(i1 - i0 < 1):   # no overlap with the scan: all outside
        return resample_like(ct, ref, interpolator, antialias=False)
    sub = sitk.RegionOfInterest(ct, [int(v) for v in i1 - i0], [int(v) for v in i0])
    if not is_label:
        perm = _axis_permutation(sub)
        if perm is not None:                     # axial-like grid: one separable pass
            return _separable_crop(sub, ref, perm)
        sub = sitk.Cast(sub, sitk.sitkFloat32)
        for axis, sp in enumerate(sub.GetSpacing()):
            sigma = _antialias_sigma_mm(sp)
            if sigma > 0.05 and sub.GetSize()[axis] >= 4:
                sub = sitk.RecursiveGaussian(sub, float(sigma), False,
                                             sitk.RecursiveGaussianImageFilter.ZeroOrder, axis)
    return resample_like(sub, ref, interpolator, antialias=False)


def _antialias_sigma_mm(spacing_mm: float, target_mm: float = CANONICAL_SPACING_MM) -> float:
    """Gaussian sigma (mm) that averages an axis of ``spacing_mm`` before sampling it at
    ``target_mm``: 0.4 * sqrt(target^2 - spacing^2), 0 for axes already as coarse."""
    return 0.4 * float(np.sqrt(max(target_mm * target_mm - spacing_mm * spacing_mm, 0.0)))


def _axis_permutation(image: sitk.Image, tol: float = 1e-6) -> Optional[np.ndarray]:
    """For a grid whose axes are the LPS axes up to order and sign (axial, coronal, sagittal
    scans, flipped or not): ``perm[k]`` = the LPS axis of voxel axis k; else None."""
    d = np.asarray(image.GetDirection(), float).reshape(3, 3)
    perm = np.argmax(np.abs(d), axis=0)
    if len(set(perm.tolist())) != 3 or not np.allclose(np.abs(d[perm, [0, 1, 2]]), 1.0, atol=tol):
        return None
    return perm


def _smooth_and_sample(u: np.ndarray, n_in: int, sigma_vox: float) -> tuple:
    """``(weights (len(u), n_in), inside)``: a Gaussian of ``sigma_vox`` voxels (edge values
    repeated beyond the ends), then linear interpolation at the continuous indices ``u``;
    ``inside`` marks the samples within the voxels' extent (as ITK's linear interpolator)."""
    taps, g = np.zeros(1, int), np.ones(1)
    if sigma_vox > 0.05 and n_in >= 4:
        taps = np.arange(-int(np.ceil(4.0 * sigma_vox)), int(np.ceil(4.0 * sigma_vox)) + 1)
        g = np.exp(-0.5 * (taps / sigma_vox) ** 2)
        g /= g.sum()
    inside = (u >= -0.5) & (u < n_in - 0.5)
    uc = np.clip(u, 0.0, n_in - 1.0)
    lo = np.floor(uc).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = (uc - lo)[:, None]
    rows = np.repeat(np.arange(len(u)), len(taps))
    w = np.zeros((len(u), n_in))
    # the smoothed value at lo and at hi, each a Gaussian-weighted sum of the voxels
    np.add.at(w, (rows, np.clip(lo[:, None] + taps, 0, n_in - 1).ravel()), ((1.0 - frac) * g).ravel())
    np.add.at(w, (rows, np.clip(hi[:, None] + taps, 0, n_in - 1).ravel()), (frac * g).ravel())
    return w, inside


def _separable_crop(sub: sitk.Image, ref: sitk.Image, perm: np.ndarray) -> sitk.Image:
    """:func:`canonical_crop`'s smoothing and linear resampling of ``sub`` (a grid aligned with
    the LPS axes, :func:`_axis_permutation`) onto the canonical ``ref``, as one weight matrix
    per axis applied to the voxels: the Gaussian is exact (ITK's recursive one approximates it
    within a few HU at these sub-voxel sigmas) and the work scales with the output, not with
    three full passes over the fine input."""
    d = np.asarray(sub.GetDirection(), float).reshape(3, 3)
    sp, org = np.asarray(sub.GetSpacing(), float), np.asarray(sub.GetOrigin(), float)
    out_size = np.asarray(ref.GetSize())
    out_org, out_sp = np.asarray(ref.GetOrigin(), float), np.asarray(ref.GetSpacing(), float)
    arr = sitk.GetArrayViewFromImage(sub)                       # axes (k2, k1, k0)
    arr = arr if arr.dtype == np.float32 else arr.astype(np.float32)
    inside = []
    for k in range(3):
        a = perm[k]
        u = (out_org[a] + np.arange(out_size[a]) * out_sp[a] - org[a]) * d[a, k] / sp[k]
        w, ok = _smooth_and_sample(u, sub.GetSize()[k], _antialias_sigma_mm(sp[k]) / sp[k])
        axis = 2 - k
        arr = np.moveaxis(np.tensordot(arr, w.astype(np.float32), axes=([axis], [1])), -1, axis)
        inside.append((axis, ok))
    for axis, ok in inside:           # outside the scan: air, as resample_like's default
        if not ok.all():
            index = [slice(None)] * 3
            index[axis] = ~ok
            arr[tuple(index)] = AIR_HU
    # array axis (2 - k) holds LPS axis perm[k]; the output's array axes are LPS (z, y, x)
    order = [2 - int(np.nonzero(perm == a)[0][0]) for a in (2, 1, 0)]
    out = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(arr, order)))
    out.CopyInformation(ref)
    return out
