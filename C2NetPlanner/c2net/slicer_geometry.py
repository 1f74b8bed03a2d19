"""Frame conversions between 3D Slicer (RAS) and the core (LPS, SimpleITK), in pure numpy.

Slicer places volumes, markups and slice views in **RAS** millimetres (+x towards patient
Right, +y Anterior, +z Superior). The core and SimpleITK use **LPS** millimetres (+x towards
patient Left, +y Posterior, +z Superior). The two frames differ by a sign flip of the first
two axes, ``F = diag(-1, -1, 1)``, which is its own inverse.

Index order. A Slicer volume node's ``IJKToRAS`` matrix maps a voxel index ``(i, j, k)`` to
RAS; ``slicer.util.arrayFromVolume`` returns the voxels as a numpy array indexed
``[k, j, i]`` (i fastest), exactly like ``SimpleITK.GetArrayFromImage``. A SimpleITK index
``(i, j, k)`` therefore addresses the same voxel as Slicer's IJK ``(i, j, k)``, and

    LPS = origin + direction @ diag(spacing) @ (i, j, k)      (SimpleITK)
    RAS = IJKToRAS[:3, :3] @ (i, j, k) + IJKToRAS[:3, 3]         (Slicer)
    IJKToLPS = F @ IJKToRAS

Which patient axis an array axis runs along is read from the matrix
(:func:`array_axis_letters`); nothing here assumes that array axis 0 is axial.

No Slicer, Qt, VTK or SimpleITK import: the functions take and return numpy arrays and plain
tuples, so they are tested with plain pytest against SimpleITK's own index->physical mapping.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

#: The RAS <-> LPS flip (its own inverse).
RAS_LPS_FLIP = np.diag([-1.0, -1.0, 1.0])
_FLIP4 = np.diag([-1.0, -1.0, 1.0, 1.0])

SitkGeometry = Tuple[Tuple[float, float, float], Tuple[float, float, float], Tuple[float, ...]]


def _points(p) -> Tuple[np.ndarray, bool]:
    arr = np.asarray(p, dtype=float)
    if arr.shape == (3,):
        return arr.reshape(1, 3), True
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"expected a point (3,) or points (N, 3), got shape {arr.shape}")
    return arr, False


def ras_to_lps_points(points_ras) -> np.ndarray:
    """RAS points (3,) or (N, 3) in mm -> LPS points of the same shape."""
    arr, single = _points(points_ras)
    out = arr @ RAS_LPS_FLIP
    return out[0] if single else out


def lps_to_ras_points(points_lps) -> np.ndarray:
    """LPS points (3,) or (N, 3) in mm -> RAS points of the same shape."""
    return ras_to_lps_points(points_lps)  # the flip is its own inverse


def ras_to_lps_vectors(vectors_ras) -> np.ndarray:
    """Direction vectors transform like points under a pure axis flip (no translation)."""
    return ras_to_lps_points(vectors_ras)


def lps_to_ras_vectors(vectors_lps) -> np.ndarray:
    return ras_to_lps_points(vectors_lps)


def ras_to_lps_transform(matrix_ras: np.ndarray) -> np.ndarray:
    """A 4x4 transform acting on RAS points -> the same transform acting on LPS points.

    ``T_lps = F T_ras F``: convert LPS->RAS, apply, convert back.
    """
    m = np.asarray(matrix_ras, dtype=float)
    if m.shape != (4, 4):
        raise ValueError(f"expected a 4x4 matrix, got {m.shape}")
    return _FLIP4 @ m @ _FLIP4


def lps_to_ras_transform(matrix_lps: np.ndarray) -> np.ndarray:
    return ras_to_lps_transform(matrix_lps)


def ijk_to_lps_matrix(ijk_to_ras: np.ndarray) -> np.ndarray:
    """Slicer's 4x4 IJKToRAS -> 4x4 IJKToLPS (only the output side changes frame)."""
    m = np.asarray(ijk_to_ras, dtype=float)
    if m.shape != (4, 4):
        raise ValueError(f"expected a 4x4 IJKToRAS matrix, got {m.shape}")
    return _FLIP4 @ m


def ijk_to_ras_matrix_from_lps(ijk_to_lps: np.ndarray) -> np.ndarray:
    """4x4 IJKToLPS -> Slicer's 4x4 IJKToRAS."""
    return ijk_to_lps_matrix(ijk_to_lps)


def sitk_geometry_from_ijk_to_ras(ijk_to_ras: np.ndarray) -> SitkGeometry:
    """Slicer IJKToRAS (4x4) -> SimpleITK ``(spacing, origin, direction)``.

    ``spacing`` is (i, j, k) in mm, ``origin`` the LPS centre of voxel (0, 0, 0), ``direction``
    the row-major 3x3 direction cosines (column c = LPS direction of index axis c), ready for
    ``image.SetSpacing / SetOrigin / SetDirection`` on an image built from the
    ``arrayFromVolume`` array (indexed [k, j, i]).
    """
    m = ijk_to_lps_matrix(ijk_to_ras)
    lin = m[:3, :3]
    spacing = np.linalg.norm(lin, axis=0)
    if np.any(spacing <= 0) or not np.all(np.isfinite(spacing)):
        raise ValueError("IJKToRAS has a zero or invalid column: the volume has no valid spacing")
    direction = lin / spacing
    if abs(abs(np.linalg.det(direction)) - 1.0) > 1e-4:
        raise ValueError("IJKToRAS is not a rotation times a diagonal spacing (sheared volume)")
    return (
        tuple(float(s) for s in spacing),
        tuple(float(o) for o in m[:3, 3]),
        tuple(float(d) for d in direction.ravel()),
    )


def ijk_to_ras_from_sitk_geometry(
    spacing: Sequence[float], origin: Sequence[float], direction: Sequence[float],
) -> np.ndarray:
    """SimpleITK ``(spacing, origin, direction)`` (LPS) -> Slicer's 4x4 IJKToRAS matrix."""
    sp = np.asarray(spacing, dtype=float).reshape(3)
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = d @ np.diag(sp)
    lps[:3, 3] = np.asarray(origin, dtype=float).reshape(3)
    return ijk_to_ras_matrix_from_lps(lps)


def ijk_to_ras_points(ijk_to_ras: np.ndarray, ijk) -> np.ndarray:
    """Continuous voxel indices (i, j, k) (3,) or (N, 3) -> RAS points (same shape)."""
    arr, single = _points(ijk)
    m = np.asarray(ijk_to_ras, dtype=float)
    out = arr @ m[:3, :3].T + m[:3, 3]
    return out[0] if single else out


def ras_to_ijk_points(ijk_to_ras: np.ndarray, ras) -> np.ndarray:
    """RAS points (3,) or (N, 3) -> continuous voxel indices (i, j, k) (same shape)."""
    arr, single = _points(ras)
    inv = np.linalg.inv(np.asarray(ijk_to_ras, dtype=float))
    out = arr @ inv[:3, :3].T + inv[:3, 3]
    return out[0] if single else out


def array_index_to_ijk(array_index_kji: Sequence[int]) -> Tuple[int, int, int]:
    """An index into the ``arrayFromVolume`` array ``[k, j, i]`` -> voxel index ``(i, j, k)``."""
    k, j, i = (int(v) for v in array_index_kji)
    return i, j, k


def array_axis_letters(ijk_to_ras: np.ndarray) -> str:
    """For the array ``[k, j, i]``, the patient direction each array axis runs *towards*.

    Letters name patient directions (R/L, A/P, S/I). A DICOM axial series read into Slicer
    typically gives ``"SPL"`` (k runs inferior->superior, j anterior->posterior, i right->left),
    a sagittal series something like ``"LIP"``: the answer comes from the matrix, never from an
    assumption that array axis 0 is axial.
    """
    lin = np.asarray(ijk_to_ras, dtype=float)[:3, :3]
    letters = []
    for c in (2, 1, 0):  # array axis 0 is k, 1 is j, 2 is i
        col = lin[:, c]
        axis = int(np.argmax(np.abs(col)))
        positive = col[axis] > 0
        letters.append(("R", "A", "S")[axis] if positive else ("L", "P", "I")[axis])
    return "".join(letters)


def line_endpoints_lps_to_ras(endpoints_lps) -> np.ndarray:
    """The two LPS end points of an MPD line (2, 3) -> RAS (2, 3) for a markups line."""
    pts = np.asarray(endpoints_lps, dtype=float)
    if pts.shape != (2, 3):
        raise ValueError(f"a line needs two 3D end points, got shape {pts.shape}")
    return lps_to_ras_points(pts)
