"""C2 pedicle segmentation with the U-Net (ONNX Runtime), mapped back onto the input grid.

Steps (:func:`segment_pedicles`):

1. Crop a canonical 1 mm ROI around the C2 centre (size from the model metadata, 96 x 96 mm
   in-plane x 48 mm by default; air, -1024 HU, outside the scan).
2. Window W2000/L800, standardise with the model's training mean/std, three identical channels.
3. Run the U-Net on every axial slice of the ROI (batches of 4 slices).
4. Per side keep the largest 3D connected component whose centroid lies on that side of the
   ROI's midline (patient left = +x in LPS) and that is at least ``min_voxels`` mm^3.
5. Map the labels back onto the input CT's own grid (nearest neighbour).

Result: a uint8 ``sitk.Image`` with the CT's geometry: 0 background, 1 C2 pedicle left,
2 C2 pedicle right (patient sides; the network's classes are trained on patient-left/right
labels in the canonical LPS frame, which never flips: see :mod:`c2net.geometry`).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .errors import InputError, SegmentationError
from .geometry import AIR_HU, canonical_crop, to_input_grid
from .models import OnnxModel, load_model
from .progress import ProgressCallback, null_progress

LEFT, RIGHT = 1, 2
DEFAULT_ROI_MM = (96, 96, 48)
MIN_PEDICLE_VOXELS = 15   # mm^3 at 1 mm; a C2 pedicle is several hundred
BATCH = 4


def roi_size_mm(model: OnnxModel) -> Sequence[int]:
    """(x, y, z) ROI size in mm from the model metadata (multiples of 16 in-plane)."""
    roi = model.metadata.get("input", {}).get("roi_mm")
    if isinstance(roi, dict):
        return (int(roi["x_left"]), int(roi["y_posterior"]), int(roi["z_superior"]))
    return DEFAULT_ROI_MM


def standardise_slices(hu_szyx: np.ndarray, model: OnnxModel) -> np.ndarray:
    """(S, H, W) HU -> (S, 3, H, W) float32 network input (window, mean/std, 3 channels)."""
    level, width = model.window
    mean, std = model.mean_std
    x = np.clip((hu_szyx.astype(np.float32) - (level - width / 2.0)) / width, 0.0, 1.0)
    x = (x - mean) / std
    return np.repeat(x[:, None], 3, axis=1).astype(np.float32)


def predict_roi(hu_szyx: np.ndarray, model: OnnxModel,
                progress: ProgressCallback = null_progress) -> np.ndarray:
    """Per-slice U-Net argmax labels (S, H, W) uint8 of a canonical ROI array."""
    x = standardise_slices(hu_szyx, model)
    out = np.zeros(hu_szyx.shape, np.uint8)
    name = model.session.get_inputs()[0].name
    n = x.shape[0]
    for i in range(0, n, BATCH):
        logits = model.session.run(None, {name: x[i:i + BATCH]})[0]
        out[i:i + BATCH] = np.argmax(logits, axis=1).astype(np.uint8)
        progress("segment", min(1.0, (i + BATCH) / n), f"slice {min(i + BATCH, n)}/{n}")
    return out


def keep_plausible_components(labels: np.ndarray, min_voxels: int = MIN_PEDICLE_VOXELS
                              ) -> np.ndarray:
    """Largest 3D component per side whose centroid is on that side of the ROI midline.

    ``labels`` is a canonical [S, P, L] array whose column axis runs patient right -> left and
    whose centre column is the C2 centre's sagittal plane.
    """
    out = np.zeros_like(labels)
    mid = (labels.shape[2] - 1) / 2.0
    struct = ndimage.generate_binary_structure(3, 1)
    for cls in (LEFT, RIGHT):
        comp, n = ndimage.label(labels == cls, structure=struct)
        if n == 0:
            continue
        sizes = np.bincount(comp.ravel())[1:]
        cols = ndimage.center_of_mass(np.ones_like(comp), comp, index=np.arange(1, n + 1))
        best, best_size = 0, 0
        for k in range(n):
            on_side = cols[k][2] >= mid - 2 if cls == LEFT else cols[k][2] <= mid + 2
            if on_side and sizes[k] >= min_voxels and sizes[k] > best_size:
                best, best_size = k + 1, sizes[k]
        if best:
            out[comp == best] = cls
    return out


def segment_pedicles(ct: sitk.Image, c2_center_lps_mm: Sequence[float],
                     model: Optional[OnnxModel] = None, model_dir=None,
                     threads: Optional[int] = None,
                     progress: Optional[ProgressCallback] = None) -> sitk.Image:
    """Segment both C2 pedicles; returns a uint8 label image on ``ct``'s own grid.

    ``ct``: float HU image (any orientation/spacing). ``c2_center_lps_mm``: the C2 centre
    (LPS mm) from :func:`c2net.locate.locate_c2`. Labels: 0 background, 1 C2 pedicle left,
    2 C2 pedicle right (patient sides). Raises :class:`SegmentationError` when neither side
    yields a plausible pedicle.
    """
    progress = progress or null_progress
    if ct.GetDimension() != 3:
        raise InputError("segmentation needs a 3D CT image")
    centre = np.asarray(c2_center_lps_mm, dtype=float).reshape(-1)
    if centre.shape != (3,) or not np.all(np.isfinite(centre)):
        raise InputError(f"C2 centre {c2_center_lps_mm!r} is not a finite LPS point")
    model = model or load_model("segmentation", model_dir=model_dir, threads=threads)
    size = roi_size_mm(model)
    progress("segment", 0.0, "cropping the C2 region at 1 mm")
    roi = canonical_crop(ct, centre, size)    # only the CT under the ROI is read
    hu = sitk.GetArrayFromImage(roi)
    if float(np.mean(hu <= AIR_HU + 1)) > 0.9:
        raise SegmentationError("the C2 region lies (almost) entirely outside the scan",
                                "Check the C2 location (seed point) and the field of view.")
    raw = predict_roi(hu, model, progress)
    clean = keep_plausible_components(raw)
    if not clean.any():
        raise SegmentationError(
            "the network found no plausible C2 pedicle on either side",
            "Check that the C2 centre is right (give a seed point) and that the scan is a "
            "bone-window-capable CT of the cervical spine; or segment the pedicles manually "
            "and run 'c2net measure' on the mask.")
    lab = sitk.GetImageFromArray(clean.astype(np.uint8))
    lab.CopyInformation(roi)
    out = to_input_grid(lab, ct, interpolator="nearest", default_value=0)
    progress("segment", 1.0, "pedicles segmented")
    return out
