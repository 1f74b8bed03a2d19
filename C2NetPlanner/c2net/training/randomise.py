"""Domain randomisation of U-Net training patches (SynthSeg-style; Billot et al., Med Image
Anal 2023), so that the network learns pedicle shape rather than one phantom look.

Per patch, in Hounsfield units, before windowing:

1. **Tissue intensities.** The source image's own levels (fat, soft tissue, cancellous bone,
   cortex; read from the volume with :func:`c2net.pedicle_finder.levels.bone_levels`) are
   mapped to levels drawn per patch (cortex 500-1800 HU, cancellous 80-500, soft tissue
   -20..100, fat -150..-50) by a monotone piecewise-linear map: partial-volume voxels stay
   mixtures of their neighbours and the tissues keep the order every CT shows.
2. **Bias field.** A smooth additive field (a random low-order polynomial over the patch,
   up to ``bias_hu``) and a global gain.
3. **Resolution.** A scanner is drawn per patch: in-plane pixel 0.4-1 mm with a
   reconstruction kernel 1.5-3 pixels wide (FWHM), slices 0.6-3 mm thick. The slice profile
   is applied across the 1 mm slices of the source (:func:`slab_weights`, a Gaussian whose
   FWHM is the slice thickness, less the 1 mm the grid already averages), the in-plane PSF by
   a Gaussian blur of the matching width (:func:`inplane_sigma_px`, capped at
   ``max_blur_px``).
4. **Noise.** Gaussian noise, sigma drawn in ``noise_hu``.
5. **Gamma** on the windowed image (W2000/L800), mapped back to HU.

The tissue map of step 1 is a rendering of a soft label map: between two of the source's
tissue levels a voxel is a mixture of those two tissues (its weights are its position
between the levels), and it is re-rendered as the same mixture of the drawn levels. For the
phantoms that is their own tissue map; for the real scans (:mod:`c2net.training.real_labels`)
the tissue classes come from the scan's own HU, and the pedicle label from the recipe there.

Geometry (:func:`elastic_field`): a smooth random displacement (a coarse grid of normal
displacements, cubic-interpolated) deforms image and label together, on top of the rotation
and scaling of :class:`c2net.training.data.SegSampler`.

Off by default (:attr:`c2net.training.data.SegAugment.domain_randomisation`). Research use
only - not a medical device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
from scipy import ndimage

WINDOW_LO_HU, WINDOW_HI_HU = -200.0, 1800.0


@dataclass(frozen=True)
class DomainRandomisation:
    cortex_hu: Tuple[float, float] = (500.0, 1800.0)
    cancellous_hu: Tuple[float, float] = (80.0, 500.0)
    soft_hu: Tuple[float, float] = (-20.0, 100.0)
    fat_hu: Tuple[float, float] = (-150.0, -50.0)
    bias_hu: float = 60.0
    gain: Tuple[float, float] = (0.9, 1.1)
    max_blur_px: float = 1.2
    noise_hu: Tuple[float, float] = (5.0, 60.0)
    gamma: Tuple[float, float] = (0.7, 1.5)
    inplane_mm: Tuple[float, float] = (0.4, 1.0)
    kernel_px: Tuple[float, float] = (1.5, 3.0)
    slice_mm: Tuple[float, float] = (0.6, 3.0)
    elastic_mm: float = 1.5
    elastic_grid: int = 5


#: Half-width (slices of 1 mm) of the slab a patch's slice profile is drawn from.
SLAB_HALF = 2


def slab_weights(thickness_mm: float, half: int = SLAB_HALF) -> np.ndarray:
    """Weights of the 1 mm slices ``-half..half`` for a slice ``thickness_mm`` thick (FWHM):
    a Gaussian of sigma sqrt(max(T^2 - 1, 0)) / 2.355 (the 1 mm grid already averages 1 mm)."""
    sigma = np.sqrt(max(float(thickness_mm) ** 2 - 1.0, 0.0)) / 2.355
    off = np.arange(-half, half + 1, dtype=float)
    if sigma < 0.05:
        w = (off == 0).astype(float)
    else:
        w = np.exp(-0.5 * (off / sigma) ** 2)
    return w / w.sum()


def inplane_sigma_px(pixel_mm: float, kernel_px: float) -> float:
    """Gaussian sigma (1 mm pixels) of a scanner with ``pixel_mm`` pixels and a kernel of
    ``kernel_px`` pixels FWHM, less the 1 mm the training grid already averages."""
    fwhm = float(pixel_mm) * float(kernel_px)
    return float(np.sqrt(max(fwhm * fwhm - 1.0, 0.0)) / 2.355)


def draw_scanner(rng: np.random.Generator, cfg: DomainRandomisation) -> dict:
    """One scanner's resolution: in-plane pixel, kernel, slice thickness (mm)."""
    return {"pixel_mm": float(rng.uniform(*cfg.inplane_mm)),
            "kernel_px": float(rng.uniform(*cfg.kernel_px)),
            "slice_mm": float(rng.uniform(*cfg.slice_mm))}


def elastic_field(rng: np.random.Generator, shape: Tuple[int, int],
                  cfg: DomainRandomisation) -> np.ndarray:
    """(2, H, W) smooth displacement (pixels): a ``elastic_grid`` x ``elastic_grid`` grid of
    normal displacements (sd ``elastic_mm``), cubic-interpolated over the patch."""
    g = max(int(cfg.elastic_grid), 2)
    coarse = rng.normal(0.0, cfg.elastic_mm, size=(2, g, g))
    zoom = (shape[0] / g, shape[1] / g)
    return np.stack([ndimage.zoom(c, zoom, order=3, mode="nearest")[:shape[0], :shape[1]]
                     for c in coarse])


def source_levels(hu: np.ndarray) -> Tuple[float, float, float, float]:
    """(fat, soft, cancellous, cortex) HU of a training volume, from its own histogram."""
    from ..pedicle_finder.levels import bone_levels

    lv = bone_levels(hu)
    soft = float(lv.soft_hu)
    cortex = float(lv.cortex_hu) if np.isfinite(lv.solid_hu) else soft + 1000.0
    vals = np.asarray(hu, np.float32).ravel()
    mid = vals[(vals > soft + 100.0) & (vals < soft + 0.6 * (cortex - soft))]
    cancellous = float(np.median(mid)) if mid.size > 50 else soft + 0.3 * (cortex - soft)
    fatv = vals[(vals > soft - 250.0) & (vals < soft - 60.0)]
    fat = float(np.median(fatv)) if fatv.size > 50 else soft - 120.0
    return fat, soft, cancellous, cortex


def _increasing(v: np.ndarray, step: float = 10.0) -> np.ndarray:
    out = np.asarray(v, float).copy()
    for i in range(1, len(out)):
        out[i] = max(out[i], out[i - 1] + step)
    return out


def randomise_patch(img_hu: np.ndarray, rng: np.random.Generator,
                    levels: Tuple[float, float, float, float],
                    cfg: DomainRandomisation = DomainRandomisation(),
                    scanner: Optional[dict] = None) -> np.ndarray:
    """One randomised look of a 2D HU patch (same shape, float32 HU). ``scanner``
    (:func:`draw_scanner`) sets the in-plane blur; drawn here when not given (the slice
    profile is applied by the caller, which holds the neighbouring slices)."""
    return randomise_stack(np.asarray(img_hu)[None], rng, levels, cfg, scanner)[0]


def randomise_stack(stack_hu: np.ndarray, rng: np.random.Generator,
                    levels: Tuple[float, float, float, float],
                    cfg: DomainRandomisation = DomainRandomisation(),
                    scanner: Optional[dict] = None) -> np.ndarray:
    """One randomised look of a (D, H, W) HU stack of neighbouring 1 mm slices (the
    classifier's five isthmus slices): the same drawn scan for every slice - tissue levels,
    bias field and gain, in-plane blur of ``scanner`` - with noise drawn per voxel and one
    gamma. The slice profile across the slices is applied by the caller (it holds the halo)."""
    stack = np.asarray(stack_hu, np.float64)
    fat, soft, canc, cortex = levels
    src = _increasing([-1024.0, fat, soft, canc, cortex, cortex + 1000.0])
    t_cortex = rng.uniform(*cfg.cortex_hu)
    dst = _increasing([-1024.0, rng.uniform(*cfg.fat_hu), rng.uniform(*cfg.soft_hu),
                       rng.uniform(*cfg.cancellous_hu), t_cortex,
                       t_cortex + 1000.0 * t_cortex / max(cortex - soft, 1.0)])
    out = np.interp(stack, src, dst)
    h, w = out.shape[-2:]
    yy, xx = np.mgrid[0:h, 0:w]
    u, v = (xx / max(w - 1, 1)) * 2 - 1, (yy / max(h - 1, 1)) * 2 - 1
    terms = np.stack([u, v, u * v, u * u, v * v])
    field = np.tensordot(rng.uniform(-1, 1, size=len(terms)), terms, axes=1)
    field *= cfg.bias_hu * rng.uniform(0, 1) / max(np.abs(field).max(), 1e-6)
    body = out > -500.0
    out = np.where(body, out * rng.uniform(*cfg.gain) + field[None], out)
    scanner = scanner or draw_scanner(rng, cfg)
    sigma = min(inplane_sigma_px(scanner["pixel_mm"], scanner["kernel_px"]), cfg.max_blur_px)
    if sigma > 0.05:
        out = ndimage.gaussian_filter(out, (0.0, sigma, sigma))
    out = out + rng.normal(0.0, rng.uniform(*cfg.noise_hu), size=out.shape)
    g = rng.uniform(*cfg.gamma)
    unit = np.clip((out - WINDOW_LO_HU) / (WINDOW_HI_HU - WINDOW_LO_HU), 0.0, 1.0) ** g
    inside = (out > WINDOW_LO_HU) & (out < WINDOW_HI_HU)
    out = np.where(inside, WINDOW_LO_HU + unit * (WINDOW_HI_HU - WINDOW_LO_HU), out)
    return out.astype(np.float32)
