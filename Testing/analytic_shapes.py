"""Analytic test shapes with exact answers for the measurement tests.

``elliptic_tube_ct`` rasterises a cortical-shell tube (hourglass width profile) onto any grid
(spacing, direction, origin) with exact partial-volume averaging (supersampling), scanner
blur and noise. The truth is known in closed form: the narrowest outer cross-section
perpendicular to the axis is an ellipse whose minor axis (the MPD) is ``mpd_mm``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from c2net import geometry


@dataclass
class Tube:
    center: np.ndarray        # LPS isthmus centre
    axis: np.ndarray          # unit, posterior -> anterior
    width_dir: np.ndarray     # unit, the MPD direction
    mpd_mm: float
    height_mm: float
    cortex_mm: float
    taper_per_mm2: float = 0.02   # width(t) = mpd + taper * t^2
    half_length_mm: float = 9.0    # bone extent along the axis
    mask_half_length_mm: float = 7.0
    # an enlarged foramen transversarium (soft tissue) beside the tube, parallel to its axis:
    # radius, and the distance of its centre from the tube axis along -height_dir (0: none).
    # When it reaches into the tube, the ring opens onto the foramen there.
    foramen_radius_mm: float = 0.0
    foramen_offset_mm: float = 0.0
    # the cortex thickens along the axis: cortex(t) = cortex_mm + cortex_slope_per_mm * t
    # (at least 0.2 mm), so the canal's narrowest point lies off the outer's
    cortex_slope_per_mm: float = 0.0
    # a neighbouring bone (``block_hu``) against the lateral (+width_dir) wall from
    # t >= block_from_t_mm on, block_half_height_mm high and block_length_mm long: the ring's
    # wall runs on into it without a free surface there (a transverse-process root), while
    # the canal stays enclosed
    block_from_t_mm: float = None
    block_half_height_mm: float = 2.5
    block_length_mm: float = 12.0
    block_hu: float = None          # its density (None: the cortex's)

    def cortex_at(self, t):
        return np.maximum(self.cortex_mm + self.cortex_slope_per_mm * np.asarray(t, float), 0.2)

    def true_inner_width(self, t_mm) -> float:
        """The canal's width along ``width_dir`` at ``t_mm``."""
        return float(max(self.mpd_mm + self.taper_per_mm2 * t_mm ** 2 - 2 * self.cortex_at(t_mm), 0.0))

    @property
    def height_dir(self) -> np.ndarray:
        return np.cross(self.axis, self.width_dir)

    @property
    def inner_width_mm(self) -> float:
        return max(self.mpd_mm - 2 * self.cortex_mm, 0.0)

    def coords(self, p: np.ndarray):
        d = p - self.center
        return d @ self.axis, d @ self.width_dir, d @ self.height_dir

    def outer_inside(self, p: np.ndarray) -> np.ndarray:
        t, x, y = self.coords(p)
        a = 0.5 * (self.mpd_mm + self.taper_per_mm2 * t**2)
        b = 0.5 * (self.height_mm + self.taper_per_mm2 * t**2)
        return ((x / a) ** 2 + (y / b) ** 2 <= 1.0) & (np.abs(t) <= self.half_length_mm)

    def inner_inside(self, p: np.ndarray) -> np.ndarray:
        t, x, y = self.coords(p)
        c = self.cortex_at(t)
        a = 0.5 * (self.mpd_mm + self.taper_per_mm2 * t**2) - c
        b = 0.5 * (self.height_mm + self.taper_per_mm2 * t**2) - c
        a = np.maximum(a, 1e-6)
        b = np.maximum(b, 1e-6)
        return ((x / a) ** 2 + (y / b) ** 2 <= 1.0) & (np.abs(t) <= self.half_length_mm - self.cortex_mm)

    def block_inside(self, p: np.ndarray) -> np.ndarray:
        if self.block_from_t_mm is None:
            return np.zeros(p.shape[:-1], bool)
        t, x, y = self.coords(p)
        return ((t >= self.block_from_t_mm) & (t <= self.half_length_mm) & (x >= 0)
                & (x <= 0.5 * self.mpd_mm + self.block_length_mm) & (np.abs(y) <= self.block_half_height_mm))

    def foramen_inside(self, p: np.ndarray) -> np.ndarray:
        if self.foramen_radius_mm <= 0:
            return np.zeros(p.shape[:-1], bool)
        _, x, y = self.coords(p)
        return x ** 2 + (y + self.foramen_offset_mm) ** 2 <= self.foramen_radius_mm ** 2

    def true_section_mpd(self, t_mm: float = 0.0, pixel_mm: float = 0.01) -> float:
        """Smallest caliper width of the true outer section at ``t_mm`` (foramen cut out)."""
        r = 0.5 * max(self.mpd_mm, self.height_mm) + 1.0
        g = np.arange(-r, r + 1e-9, pixel_mm)
        gx, gy = np.meshgrid(g, g)
        p = (self.center + t_mm * self.axis + gx[..., None] * self.width_dir
             + gy[..., None] * self.height_dir)
        inside = self.outer_inside(p) & ~self.foramen_inside(p)
        pts = np.stack([gx[inside], gy[inside]], axis=1)
        phi = np.radians(np.arange(0.0, 180.0, 0.5))
        proj = pts @ np.stack([np.cos(phi), np.sin(phi)])
        return float((proj.max(axis=0) - proj.min(axis=0)).min() + pixel_mm)

    def mask_inside(self, p: np.ndarray) -> np.ndarray:
        t, _, _ = self.coords(p)
        return self.outer_inside(p) & (np.abs(t) <= self.mask_half_length_mm)


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


def make_tube(side: str = "left", mpd_mm: float = 5.0, height_mm: float = 8.0,
              cortex_mm: float = 1.0, medial_deg: float = 30.0, cranial_deg: float = 25.0,
              center=(20.0, 10.0, 0.0)) -> Tube:
    """A tube whose axis has the given medial/cranial angles (LPS; axis posterior->anterior)."""
    m, c = np.radians(medial_deg), np.radians(cranial_deg)
    medial_sign = -1.0 if side == "left" else 1.0
    axis = unit([medial_sign * np.sin(m) * np.cos(c), -np.cos(m) * np.cos(c), np.sin(c)])
    # width direction: horizontal, perpendicular to the axis (the pedicle is taller than wide)
    w = np.cross(axis, [0.0, 0.0, 1.0])
    return Tube(center=np.asarray(center, float), axis=axis, width_dir=unit(w),
                mpd_mm=mpd_mm, height_mm=height_mm, cortex_mm=cortex_mm)


def tube_ct(tube: Tube, spacing=(0.5, 0.5, 0.5), direction=None, fov_mm: float = 36.0,
            blur_mm: float = 0.4, noise_hu: float = 15.0, seed: int = 0, supersample: int = 3,
            hu=(40.0, 1500.0, 300.0)):
    """(ct, mask) SimpleITK images of the tube on a grid centred on the isthmus.

    ``direction`` is a 3x3 matrix (columns = index axes in LPS); identity by default.
    """
    spacing = np.asarray(spacing, dtype=float)
    d = np.eye(3) if direction is None else np.asarray(direction, dtype=float)
    size = np.ceil(fov_mm / spacing).astype(int)
    ref = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    ref.SetSpacing(spacing.tolist())
    ref.SetDirection(d.ravel().tolist())
    # origin such that the grid centre is the tube centre
    centre_idx = (size - 1) / 2.0
    origin = tube.center - d @ (spacing * centre_idx)
    ref.SetOrigin(origin.tolist())
    f = supersample
    offs = (np.arange(f) + 0.5) / f - 0.5
    sub = np.array([[a, b, c] for a in offs for b in offs for c in offs])   # (f^3, 3) ijk offsets
    soft, cort, canc = hu
    ct = np.zeros(size[::-1], dtype=np.float32)
    mask = np.zeros(size[::-1], dtype=np.float32)
    jj, ii = np.meshgrid(np.arange(size[1]), np.arange(size[0]), indexing="ij")
    for k in range(size[2]):
        ijk = np.stack([ii.ravel(), jj.ravel(), np.full(ii.size, k)], axis=1).astype(float)
        acc = np.zeros(ijk.shape[0])
        macc = np.zeros(ijk.shape[0])
        for o in sub:
            p = geometry.index_to_lps(ref, ijk + o)
            outer = tube.outer_inside(p)
            inner = tube.inner_inside(p)
            block = cort if tube.block_hu is None else tube.block_hu
            val = np.where(inner, canc, np.where(outer, cort, np.where(tube.block_inside(p), block, soft)))
            acc += np.where(tube.foramen_inside(p), soft, val)
            macc += tube.mask_inside(p) & ~tube.foramen_inside(p)
        ct[k] = (acc / len(sub)).reshape(size[1], size[0])
        mask[k] = (macc / len(sub)).reshape(size[1], size[0])
    img = sitk.GetImageFromArray(ct)
    img.CopyInformation(ref)
    if blur_mm > 0:
        img = sitk.SmoothingRecursiveGaussian(img, [blur_mm] * 3)
    if noise_hu > 0:
        rng = np.random.default_rng(seed)
        arr = sitk.GetArrayFromImage(img) + rng.normal(0, noise_hu, ct.shape).astype(np.float32)
        img2 = sitk.GetImageFromArray(arr)
        img2.CopyInformation(ref)
        img = img2
    m = sitk.GetImageFromArray((mask >= 0.5).astype(np.uint8))
    m.CopyInformation(ref)
    return img, m


def cylinder_bone_mask(ct: sitk.Image, centre, axis, radius_mm: float, half_length_mm: float = 6.0,
                       bone_hu: float = 200.0) -> sitk.Image:
    """A rough pedicle mask as a quick manual paint gives it: bone (> ``bone_hu``) inside a
    cylinder around a line, holes filled, on the CT's grid."""
    from scipy import ndimage

    arr = sitk.GetArrayFromImage(ct)
    k, j, i = np.nonzero(np.ones(arr.shape, bool))
    p = geometry.index_to_lps(ct, np.stack([i, j, k], axis=1).astype(float))
    a = unit(axis)
    d = p - np.asarray(centre, float)
    t = d @ a
    r = np.linalg.norm(d - np.outer(t, a), axis=1)
    inside = ((np.abs(t) <= half_length_mm) & (r <= radius_mm)).reshape(arr.shape)
    m = ndimage.binary_fill_holes(inside & (arr > bone_hu)) & inside
    out = sitk.GetImageFromArray(m.astype(np.uint8))
    out.CopyInformation(ct)
    return out


def tilted(axis, angle_deg: float, towards) -> np.ndarray:
    """``axis`` tilted by ``angle_deg`` towards the direction ``towards``."""
    a = unit(axis)
    w = np.asarray(towards, float)
    w = unit(w - (w @ a) * a)
    t = np.radians(angle_deg)
    return unit(np.cos(t) * a + np.sin(t) * w)
