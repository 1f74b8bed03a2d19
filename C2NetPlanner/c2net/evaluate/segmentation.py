"""Segmentation overlap and surface-distance metrics on label images (SimpleITK, mm).

For each label value present in either image (background 0 excluded):

* Dice = 2 |P & T| / (|P| + |T|) (voxel counts).
* HD95 (mm): max of the two directed 95th percentiles of surface-voxel distances
  (predicted surface -> true surface and back), the convention of MONAI's
  ``compute_hausdorff_distance(percentile=95)``.
* Surface Dice at a tolerance tau (Nikolov et al. 2021): fraction of surface voxels of both
  masks lying within tau mm of the other mask's surface, counted per voxel (not weighted by
  surface-element area).

Surfaces are the label contours (``sitk.LabelContour``, face connectivity); distances come
from ``sitk.SignedMaurerDistanceMap(useImageSpacing=True)``, so spacing and direction are
respected. Both images must share size, spacing, origin and direction.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional

import numpy as np
import SimpleITK as sitk

from ..errors import InputError

MASK_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


def _check_same_grid(pred: sitk.Image, truth: sitk.Image, name: str) -> None:
    same = (pred.GetSize() == truth.GetSize()
            and np.allclose(pred.GetSpacing(), truth.GetSpacing(), atol=1e-4)
            and np.allclose(pred.GetOrigin(), truth.GetOrigin(), atol=1e-3)
            and np.allclose(pred.GetDirection(), truth.GetDirection(), atol=1e-4))
    if not same:
        raise InputError(
            f"masks '{name}': predicted and true masks are on different grids (size "
            f"{pred.GetSize()} vs {truth.GetSize()}, spacing {pred.GetSpacing()} vs "
            f"{truth.GetSpacing()})",
            "Resample the predicted mask onto the true mask's grid (nearest neighbour) first.",
            code="evaluate_masks")


def _surface_distances(mask_from: sitk.Image, mask_to: sitk.Image) -> np.ndarray:
    """Distances (mm) from each surface voxel of ``mask_from`` to the surface of ``mask_to``."""
    dist_to = sitk.Abs(sitk.SignedMaurerDistanceMap(mask_to, insideIsPositive=False,
                                                    squaredDistance=False,
                                                    useImageSpacing=True))
    surface_from = sitk.GetArrayFromImage(sitk.LabelContour(mask_from, fullyConnected=False))
    return sitk.GetArrayFromImage(dist_to)[surface_from > 0].astype(float)


def label_metrics(pred: sitk.Image, truth: sitk.Image, label: int,
                  tolerance_mm: float = 1.0) -> Dict[str, Optional[float]]:
    """Dice, HD95 (mm) and surface Dice at ``tolerance_mm`` for one label value."""
    p = sitk.Cast(pred == label, sitk.sitkUInt8)
    t = sitk.Cast(truth == label, sitk.sitkUInt8)
    pa, ta = sitk.GetArrayViewFromImage(p), sitk.GetArrayViewFromImage(t)
    n_p, n_t = int(pa.sum()), int(ta.sum())
    inter = int(np.logical_and(pa > 0, ta > 0).sum())
    out: Dict[str, Optional[float]] = {
        "label": label, "voxels_pred": n_p, "voxels_truth": n_t,
        "dice": (2.0 * inter / (n_p + n_t)) if (n_p + n_t) else None,
        "hd95_mm": None, "surface_dice": None, "tolerance_mm": tolerance_mm,
    }
    if n_p == 0 or n_t == 0:
        return out
    d_pt = _surface_distances(p, t)
    d_tp = _surface_distances(t, p)
    out["hd95_mm"] = float(max(np.percentile(d_pt, 95), np.percentile(d_tp, 95)))
    within = np.sum(d_pt <= tolerance_mm) + np.sum(d_tp <= tolerance_mm)
    out["surface_dice"] = float(within / (d_pt.size + d_tp.size))
    return out


def mask_pair_metrics(pred: sitk.Image, truth: sitk.Image, name: str = "mask",
                      tolerance_mm: float = 1.0) -> List[Dict[str, Optional[float]]]:
    """Metrics for every non-zero label in either image."""
    _check_same_grid(pred, truth, name)
    pred_i = sitk.Cast(pred, sitk.sitkInt32)
    truth_i = sitk.Cast(truth, sitk.sitkInt32)
    labels = sorted((set(np.unique(sitk.GetArrayViewFromImage(pred_i)).tolist())
                     | set(np.unique(sitk.GetArrayViewFromImage(truth_i)).tolist())) - {0})
    return [dict(label_metrics(pred_i, truth_i, int(v), tolerance_mm), case=name)
            for v in labels]


def _stem(filename: str) -> Optional[str]:
    low = filename.lower()
    for ext in MASK_EXTENSIONS:
        if low.endswith(ext):
            return filename[: -len(ext)]
    return None


def folder_metrics(pred_dir: str, truth_dir: str, tolerance_mm: float = 1.0) -> Dict[str, object]:
    """Per-case, per-label metrics for files with the same name in both folders + summary."""
    for d in (pred_dir, truth_dir):
        if not os.path.isdir(d):
            raise InputError(f"mask folder not found: {d}",
                             "Give --masks-pred and --masks-truth as folders of label images "
                             "with matching file names.", code="evaluate_masks")
    pred_files = {_stem(f): f for f in sorted(os.listdir(pred_dir)) if _stem(f)}
    truth_files = {_stem(f): f for f in sorted(os.listdir(truth_dir)) if _stem(f)}
    common = sorted(set(pred_files) & set(truth_files))
    if not common:
        raise InputError(
            f"no mask file names in common between {pred_dir} ({len(pred_files)} masks) and "
            f"{truth_dir} ({len(truth_files)} masks)",
            "Name each predicted mask like its true mask (e.g. case01.nii.gz in both folders).",
            code="evaluate_masks")
    rows: List[Dict[str, Optional[float]]] = []
    for name in common:
        try:
            pred = sitk.ReadImage(os.path.join(pred_dir, pred_files[name]))
            truth = sitk.ReadImage(os.path.join(truth_dir, truth_files[name]))
        except RuntimeError as exc:
            raise InputError(f"mask '{name}' cannot be read: {exc}".splitlines()[0],
                             "Masks must be label images readable by SimpleITK.",
                             code="evaluate_masks") from exc
        rows.extend(mask_pair_metrics(pred, truth, name, tolerance_mm))
    summary: Dict[str, Dict[str, object]] = {}
    for label in sorted({int(r["label"]) for r in rows}):
        sel = [r for r in rows if r["label"] == label]
        summary[str(label)] = {}
        for key in ("dice", "hd95_mm", "surface_dice"):
            vals = np.array([r[key] for r in sel if r[key] is not None], dtype=float)
            summary[str(label)][key] = (
                {"mean": float(vals.mean()), "sd": float(vals.std(ddof=1)) if vals.size > 1 else 0.0,
                 "median": float(np.median(vals)), "min": float(vals.min()),
                 "max": float(vals.max()), "n": int(vals.size)} if vals.size else None)
    return {"cases": rows, "summary_by_label": summary, "tolerance_mm": tolerance_mm,
            "unmatched_pred": sorted(set(pred_files) - set(truth_files)),
            "unmatched_truth": sorted(set(truth_files) - set(pred_files))}
