"""Metrics of exported (ONNX) models on a held-out CT cohort, through the run-time code.

Segmentation: :func:`c2net.segment.segment_pedicles` around the true C2 centre moved by a
seeded random offset (``jitter_mm``, to mimic localisation error), compared with the truth
labels on the CT's own grid: Dice and HD95 (mm) per side. Where the truth gives the pedicle
axis and isthmus (phantoms), also the **core Dice**: both masks restricted to the slab within
``CORE_HALF_LENGTH_MM`` of the isthmus along the true axis. A phantom's label ends 6-8 mm from
the isthmus at a random distance that nothing in the image shows, so the whole-label Dice of
even a perfect tube with the ends at the mean distance is only ~0.96; the core is the part an
image can define (and the part the measurement uses).
Classification: the five isthmus slices of each true pedicle mask (via ``c2net.measure`` when
available, else the truth-centred fallback crop), :func:`c2net.classify.predict_risk`, compared
with ``MPD < cutoff``: accuracy, sensitivity, specificity, AUC, Brier score.

``python -m c2net.training.heldout --manifest M --model-dir models --out metrics.json``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from . import data as D
from .calibrate import brier_score


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    den = a.sum() + b.sum()
    return 1.0 if den == 0 else float(2.0 * np.logical_and(a, b).sum() / den)


def hd95_mm(a: np.ndarray, b: np.ndarray, spacing_kji: Sequence[float]) -> float:
    """Symmetric 95th-percentile surface distance (mm); inf when exactly one mask is empty."""
    a, b = a.astype(bool), b.astype(bool)
    if not a.any() and not b.any():
        return 0.0
    if not a.any() or not b.any():
        return float("inf")
    sa = a & ~ndimage.binary_erosion(a)
    sb = b & ~ndimage.binary_erosion(b)
    da = ndimage.distance_transform_edt(~sb, sampling=spacing_kji)[sa]
    db = ndimage.distance_transform_edt(~sa, sampling=spacing_kji)[sb]
    return float(np.percentile(np.concatenate([da, db]), 95))


#: Half-length of the core slab (mm): phantom labels reach at least 6 mm from the isthmus.
CORE_HALF_LENGTH_MM = 5.0


def core_slab(image: sitk.Image, side_truth: dict, half_length_mm: float = CORE_HALF_LENGTH_MM
              ) -> Optional[np.ndarray]:
    """Boolean [k, j, i] mask of ``image``'s voxels within ``half_length_mm`` of the isthmus
    along the true pedicle axis; None when the truth has no axis/isthmus."""
    try:
        centre = np.asarray(side_truth["isthmus_center_lps_mm"], float)
        axis = np.asarray(side_truth["axis_lps"], float)
    except (KeyError, TypeError, ValueError):
        return None
    axis = axis / np.linalg.norm(axis)
    m = np.asarray(image.GetDirection(), float).reshape(3, 3) @ np.diag(image.GetSpacing())
    step = m.T @ axis                     # change of t per voxel step along i, j, k
    t0 = float((np.asarray(image.GetOrigin(), float) - centre) @ axis)
    ni, nj, nk = image.GetSize()
    t = (t0 + step[0] * np.arange(ni)[None, None, :] + step[1] * np.arange(nj)[None, :, None]
         + step[2] * np.arange(nk)[:, None, None])
    return np.abs(t) <= half_length_mm


def _summary(values: List[float]) -> Dict[str, float]:
    v = np.asarray([x for x in values if np.isfinite(x)], float)
    n_inf = int(sum(1 for x in values if not np.isfinite(x)))
    if len(v) == 0:
        return {"n": 0, "n_infinite": n_inf}
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "median": float(np.median(v)), "p05": float(np.percentile(v, 5)),
            "min": float(v.min()), "n": int(len(v)), "n_infinite": n_inf}


def evaluate_segmentation(manifest: Path, model, jitter_mm: float = 3.0, seed: int = 0,
                          max_cases: Optional[int] = None) -> dict:
    from ..segment import segment_pedicles

    cases = D.read_ct_manifest(manifest)[:max_cases]
    rng = np.random.default_rng([seed, 11])
    rows = []
    t_total = 0.0
    for i, case in enumerate(cases):
        truth = case.load_truth()
        ct = sitk.ReadImage(str(case.ct), sitk.sitkFloat32)
        lab = sitk.GetArrayFromImage(sitk.ReadImage(str(case.labels)))
        centre = np.asarray(truth["c2_center_lps_mm"], float) + rng.uniform(-jitter_mm, jitter_mm, 3)
        t0 = time.perf_counter()
        try:
            seg = sitk.GetArrayFromImage(segment_pedicles(ct, centre, model=model))
            err = ""
        except Exception as exc:  # noqa: BLE001 - a failure is a measured outcome
            seg = np.zeros_like(lab, dtype=np.uint8)
            err = f"{type(exc).__name__}: {exc}"
        t_total += time.perf_counter() - t0
        sp = ct.GetSpacing()[::-1]
        row = {"patient_id": case.patient_id, "error": err}
        for side, pv, tv in (("left", 1, D.LEFT_PEDICLE_LABEL), ("right", 2, D.RIGHT_PEDICLE_LABEL)):
            row[f"dice_{side}"] = dice(seg == pv, lab == tv)
            slab = core_slab(ct, D._truth_side(truth, side))
            row[f"core_dice_{side}"] = (float("nan") if slab is None else
                                        dice((seg == pv) & slab, (lab == tv) & slab))
            row[f"hd95_{side}_mm"] = hd95_mm(seg == pv, lab == tv, sp)
            row[f"swapped_{side}"] = bool(np.logical_and(seg == pv, lab == (
                D.RIGHT_PEDICLE_LABEL if side == "left" else D.LEFT_PEDICLE_LABEL)).sum() >
                np.logical_and(seg == pv, lab == tv).sum())
        rows.append(row)
        D._progress(i + 1, len(cases), "segmentation held-out")
    dices = [r[f"dice_{s}"] for r in rows for s in ("left", "right")]
    hds = [r[f"hd95_{s}_mm"] for r in rows for s in ("left", "right")]
    cores = [r[f"core_dice_{s}"] for r in rows for s in ("left", "right")]
    return {"n_cases": len(rows), "n_pedicles": len(dices), "jitter_mm": jitter_mm,
            "dice": _summary(dices), "hd95_mm": _summary(hds),
            "core_dice": dict(_summary(cores), half_length_mm=CORE_HALF_LENGTH_MM),
            "dice_ge_0_95_fraction": float(np.mean(np.asarray(dices) >= 0.95)),
            "side_swaps": int(sum(r["swapped_left"] + r["swapped_right"] for r in rows)),
            "failures": int(sum(1 for r in rows if r["error"])),
            "seconds_per_case": t_total / max(len(rows), 1), "cases": rows}


def evaluate_classifier(manifest: Path, model, cutoff_mm: float = D.HIGH_RISK_CUTOFF_MM,
                        use_measure: bool = True, max_cases: Optional[int] = None) -> dict:
    from ..classify import predict_risk
    from ..results import IsthmusSlices
    from .train import binary_metrics

    cases = D.read_ct_manifest(manifest)[:max_cases]
    rows = []
    for i, case in enumerate(cases):
        truth = case.load_truth()
        ct = sitk.ReadImage(str(case.ct), sitk.sitkFloat32)
        lab = sitk.ReadImage(str(case.labels))
        for side, value in (("left", D.LEFT_PEDICLE_LABEL), ("right", D.RIGHT_PEDICLE_LABEL)):
            mask = sitk.Cast(lab == value, sitk.sitkUInt8)
            hu, src = None, "measure"
            try:
                hu = D._isthmus_slices_from_measure(ct, mask, side) if use_measure else None
            except Exception as exc:  # noqa: BLE001 - fall back and record it
                src = f"fallback after {type(exc).__name__}"
            if hu is None:
                centre = D._truth_side(truth, side)["isthmus_center_lps_mm"]
                hu, _ = D.fallback_isthmus_crop(ct, centre, mask)
                src = "fallback_truth_isthmus" if src == "measure" else src
            mpd = D.truth_mpd(case, truth, side)
            # the true isthmus centres place the slices and cap the own-side aperture
            own = D.truth_isthmus_centre(truth, side) or (0.0, 0.0, 0.0)
            other = D.truth_isthmus_centre(truth, "right" if side == "left" else "left")
            pred = predict_risk(IsthmusSlices(side, hu, [tuple(own)] * 5), model=model,
                                other_isthmus_lps_mm=other)
            rows.append({"patient_id": case.patient_id, "side": side, "mpd_mm": mpd,
                         "label_high_risk": int(mpd < cutoff_mm), "p_high_risk": pred.p_high_risk,
                         "source": src})
        D._progress(i + 1, len(cases), "classifier held-out")
    p = np.array([r["p_high_risk"] for r in rows])
    y = np.array([r["label_high_risk"] for r in rows])
    m = binary_metrics(p, y)
    m.update(n_pedicles=len(rows), n_high_risk=int(y.sum()), brier=brier_score(p, y),
             cutoff_mm=cutoff_mm, sources=sorted({r["source"] for r in rows}), cases=rows)
    return m


def seg_calibration_batches(manifest: Path, ck: dict, n_cases: int = 12, per_case: int = 8
                            ) -> List[np.ndarray]:
    """Standardised ROI slices (batches of 1) of a few cases, to calibrate int8 activations."""
    cases = D.read_ct_manifest(manifest)[:n_cases]
    mean, std = ck["normalisation"]["mean"], ck["normalisation"]["std"]
    out = []
    for case in cases:
        v = D.preprocess_seg_case(case, D.SEG_ROI_MM, 0, None)
        zs = np.linspace(0, v["hu"].shape[0] - 1, per_case).astype(int)
        for z in zs:
            x = (D.window_unit(v["hu"][z].astype(np.float32)) - mean) / std
            out.append(np.repeat(x[None, None], 3, axis=1).astype(np.float32))
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    from ..models import load_model

    ap = argparse.ArgumentParser(description="Held-out metrics of the exported models.")
    ap.add_argument("--manifest", required=True, type=Path)
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--seg-model", type=Path, default=None)
    ap.add_argument("--cls-model", type=Path, default=None)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--only", choices=["seg", "cls"], default=None)
    ap.add_argument("--max-cases", type=int, default=None)
    ap.add_argument("--jitter-mm", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-measure", action="store_true",
                    help="classifier: crop at the truth isthmus centre instead of c2net.measure")
    a = ap.parse_args(argv)
    res = {}
    if a.only in (None, "seg"):
        m = load_model("segmentation", a.model_dir, a.seg_model, a.threads)
        res["segmentation"] = {"model": m.describe(), **evaluate_segmentation(
            a.manifest, m, a.jitter_mm, max_cases=a.max_cases)}
    if a.only in (None, "cls"):
        m = load_model("classifier", a.model_dir, a.cls_model, a.threads)
        res["classifier"] = {"model": m.describe(), **evaluate_classifier(
            a.manifest, m, use_measure=not a.no_measure, max_cases=a.max_cases)}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(res, f, indent=2, default=float)
    for k, v in res.items():
        brief = {kk: vv for kk, vv in v.items() if kk not in ("cases", "model")}
        print(k, json.dumps(brief, default=float))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
