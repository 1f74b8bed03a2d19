"""C2-Net risk classification of one pedicle with ONNX Runtime, plus its Grad-CAM.

:func:`predict_risk` takes the five isthmus slices from :func:`c2net.measure.isthmus_slices`
(5 x 64 x 64 HU at 1 mm, wide -> narrow), windows and standardises them as the model's
metadata says, runs the C3D graph (which returns logits and the Grad-CAM of both classes as
forward outputs) and returns the temperature-scaled softmax probability of high risk and the
high-risk Grad-CAM (5, H, W, 0..1) on the slices' own pixels.

Note: with the paper's pooling the last conv block has depth 1, so the Grad-CAM is the same on
all five slices (an 8 x 8 in-plane map, trilinearly upsampled).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .classifier_view import aperture_radius_mm, aperture_weights, own_side_view
from .errors import InputError
from .models import OnnxModel, load_model
from .results import SIDES, IsthmusSlices, RiskPrediction

HIGH_RISK_CLASS = 1


def classifier_input(hu: np.ndarray, model: OnnxModel) -> np.ndarray:
    """(5, H, W) HU -> (1, 3, 5, H, W) float32 network input."""
    level, width = model.window
    mean, std = model.mean_std
    x = np.clip((np.asarray(hu, np.float32) - (level - width / 2.0)) / width, 0.0, 1.0)
    x = (x - mean) / std
    return np.repeat(x[None, None], 3, axis=1).astype(np.float32)


def _expected_shape(model: OnnxModel):
    shape = model.metadata.get("input", {}).get("shape", [None, 3, 5, 64, 64])
    return tuple(int(s) for s in shape[2:])


def _within_aperture(heat: np.ndarray, radius_mm: float, pixel_mm: float) -> np.ndarray:
    """The map where the network saw the CT, renormalised to a maximum of 1 there.

    Outside the aperture the input is a constant (-200 HU); what the last conv block holds
    there comes from the crop's zero padding and the biases, not from anatomy, so it is not
    shown as attention.
    """
    out = heat * aperture_weights(heat.shape[-2:], radius_mm, pixel_mm)[None]
    top = float(out.max())
    return (out / top).astype(np.float32) if top > 0 else out.astype(np.float32)


def sees_own_side_only(model: OnnxModel) -> bool:
    """True when the model was trained on the own-side aperture (:mod:`c2net.classifier_view`)."""
    return model.metadata.get("input", {}).get("view") == "own_side_aperture"


def predict_risk(slices: IsthmusSlices, model: Optional[OnnxModel] = None, model_dir=None,
                 threads: Optional[int] = None,
                 other_isthmus_lps_mm: Optional[Sequence[float]] = None) -> RiskPrediction:
    """P(high risk) (temperature-scaled) and the high-risk Grad-CAM for one side.

    A model trained on the own-side aperture sees only this pedicle's neighbourhood: the
    slices go through :func:`c2net.classifier_view.own_side_view` first, its radius capped by
    the distance to ``other_isthmus_lps_mm`` (the other side's isthmus centre) when known.
    """
    if slices.side not in SIDES:
        raise InputError(f"side {slices.side!r} is not 'left' or 'right'")
    hu = np.asarray(slices.hu)
    if hu.ndim != 3 or not np.all(np.isfinite(hu)):
        raise InputError(f"isthmus slices must be a finite (5, H, W) array, got {hu.shape}")
    model = model or load_model("classifier", model_dir=model_dir, threads=threads)
    want = _expected_shape(model)
    if hu.shape != want:
        raise InputError(f"isthmus slices have shape {hu.shape}, the classifier expects {want}",
                         "Produce them with c2net.measure.isthmus_slices (5 x 64 x 64 at 1 mm).")
    if sees_own_side_only(model):
        radius = aperture_radius_mm(slices.slice_centers_lps_mm[0], other_isthmus_lps_mm)
        hu = own_side_view(hu, radius, slices.pixel_mm)
    x = classifier_input(hu, model)
    name = model.session.get_inputs()[0].name
    logits, cam = model.session.run(["logits", "cam"], {name: x})
    z = logits[0].astype(np.float64)
    t = model.temperature
    zt = z / t
    zt = zt - zt.max()
    p = np.exp(zt) / np.exp(zt).sum()
    heat = np.clip(cam[0, HIGH_RISK_CLASS].astype(np.float32), 0.0, 1.0)
    if sees_own_side_only(model):
        heat = _within_aperture(heat, radius, slices.pixel_mm)
    return RiskPrediction(side=slices.side, p_high_risk=float(p[HIGH_RISK_CLASS]),
                          logits=(float(z[0]), float(z[1])), temperature=float(t),
                          cam_high_risk=heat, model_id=f"{model.id}@{model.version}")
