"""The paper's statistics, reproducible from CSV files (``c2net evaluate``).

Research use only - not a medical device.

:func:`evaluate` reads per-side predictions, truth and optional reader calls (formats in
:mod:`c2net.evaluate.io`), computes

* accuracy, sensitivity, specificity, PPV, NPV with Wilson and Clopper-Pearson 95 % CIs;
* AUC with DeLong and patient-clustered bootstrap 95 % CIs, Youden-optimal threshold;
* for the measured-MPD rule and each reader: the same metrics, exact McNemar tests and the
  paired DeLong test against the model, reader-vs-reader tests, Cohen's and Fleiss' kappa;
* the sensitivity analysis with labels re-derived at the alternative cutoff;
* a cross-validation summary (per fold, mean +/- SD, range, mean ROC) with a fold column;
* calibration (Brier, ECE, reliability diagram);
* MPD agreement (Bland-Altman, ICC(2,1)) with ``mpd_reference_csv``;
* segmentation metrics (Dice, HD95, surface Dice) with two mask folders;

and, with ``out_dir``, writes ``metrics.json``, ``metrics.csv``, ``summary.html`` and PNG
figures. The folder is written completely or not at all (temporary folder, then rename).
Positive class = high risk.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import tempfile
from collections import OrderedDict
from typing import Dict, Optional, Sequence

import numpy as np

from .. import DISCLAIMER, __version__
from ..errors import InputError, OutputError
from ..verdict import cutoff_source
from . import analysis, io, plots, report

__all__ = ["evaluate", "compute", "write_outputs"]


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _versions() -> Dict[str, str]:
    import scipy
    import sklearn
    import statsmodels

    return {"c2net": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "scikit-learn": sklearn.__version__,
            "statsmodels": statsmodels.__version__}


def _per_side(ds: analysis.Dataset) -> list:
    """One record per evaluated side (the numbers every statistic was computed from)."""
    rows = []
    for i, (pid, side) in enumerate(ds.keys):
        row = {"patient_id": pid, "side": side, "truth_label": int(ds.truth_label[i]),
               "p_high_risk": float(ds.p_high_risk[i])}
        if ds.truth_mpd_mm is not None:
            row["truth_mpd_mm"] = float(ds.truth_mpd_mm[i])
        if ds.mpd_pred_mm is not None:
            row["mpd_mm"] = float(ds.mpd_pred_mm[i])
        for name, r in ds.reader_calls.items():
            row[f"call_{name}"] = int(r.calls[(pid, side)])
        rows.append(row)
    return rows


def check_out_dir(out_dir: str) -> None:
    """Refuse an existing non-empty folder or a parent that does not exist."""
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise OutputError(f"output path {out_dir} exists and is not a folder",
                              "Give --out a new folder name.")
        if os.listdir(out_dir):
            raise OutputError(f"output folder {out_dir} exists and is not empty",
                              "Give --out a new (or empty) folder, or remove the old results "
                              "first; evaluate never overwrites earlier results.")
    parent = os.path.dirname(os.path.abspath(out_dir))
    if not os.path.isdir(parent):
        raise OutputError(f"the parent folder of {out_dir} does not exist",
                          "Create the parent folder first.")


def compute(predictions_csv: str, truth_csv: str, readers_csvs: Sequence[str] = (), *,
            cutoff_mm: float = 4.78, alt_cutoff_mm: Optional[float] = 4.30,
            threshold: float = 0.5, folds_column: Optional[str] = "fold",
            mpd_reference_csv: Optional[str] = None, masks_pred_dir: Optional[str] = None,
            masks_truth_dir: Optional[str] = None, n_bootstrap: int = 2000, seed: int = 0,
            ece_bins: int = 10, surface_tolerance_mm: float = 1.0,
            alpha: float = 0.05) -> Dict[str, object]:
    """All statistics as a JSON-ready dict (no files written). See :func:`evaluate`."""
    if not (0.0 < threshold < 1.0):
        raise InputError(f"threshold {threshold} must lie strictly between 0 and 1",
                         "Use e.g. --threshold 0.5.")
    for name, value in (("cutoff", cutoff_mm), ("alternative cutoff", alt_cutoff_mm)):
        if value is not None and not (0.5 <= value <= 20.0):
            raise InputError(f"{name} {value} mm is outside 0.5-20 mm",
                             "The paper uses 4.78 mm (and 4.30 mm for the sensitivity analysis).")
    if (masks_pred_dir is None) != (masks_truth_dir is None):
        raise InputError("segmentation metrics need both --masks-pred and --masks-truth",
                         "Give both folders (files with matching names) or neither.")
    if not (2 <= ece_bins <= 100):
        raise InputError(f"{ece_bins} calibration bins are out of range",
                         "Use 2-100 equal-width bins (default 10).")
    if not (0.0 < surface_tolerance_mm <= 20.0):
        raise InputError(f"surface Dice tolerance {surface_tolerance_mm} mm is out of range",
                         "Use a tolerance in mm, e.g. 1.")
    if n_bootstrap < 100:
        raise InputError(f"{n_bootstrap} bootstrap resamples are too few",
                         "Use at least 100 (default 2000).")
    preds = io.read_predictions(predictions_csv, folds_column)
    truth = io.read_truth(truth_csv)
    reader_files = [r for path in readers_csvs for r in io.read_readers(path)]
    ds = analysis.build_dataset(preds, truth, reader_files, cutoff_mm)
    notes = list(ds.notes)

    labels = {"cutoff_mm": cutoff_mm, "cutoff_source": cutoff_source(cutoff_mm),
              "from_label_column": ds.label_source["label"],
              "from_mpd_mm": ds.label_source["mpd_mm"]}
    if ds.label_source["mpd_mm"] == 0:
        labels["description"] = "truth label column"
    elif ds.label_source["label"] == 0:
        labels["description"] = f"high risk when reference MPD < {cutoff_mm:g} mm"
    else:
        labels["description"] = (f"truth label column, else high risk when reference MPD < "
                                 f"{cutoff_mm:g} mm")

    raters = analysis.raters_for(ds, threshold, cutoff_mm)
    primary = analysis.analyse(ds.truth_label, raters, ds.patients, threshold=threshold,
                               n_bootstrap=n_bootstrap, seed=seed, alpha=alpha)
    result: Dict[str, object] = OrderedDict(
        disclaimer=DISCLAIMER, positive_class="high_risk", labels=labels, primary=primary)

    if alt_cutoff_mm is not None:
        if ds.truth_mpd_mm is None:
            result["sensitivity_analysis"] = {
                "cutoff_mm": alt_cutoff_mm,
                "skipped": "the truth file has no mpd_mm for every evaluated side, so labels "
                           "cannot be re-derived at the alternative cutoff."}
            notes.append(f"sensitivity analysis at {alt_cutoff_mm:g} mm skipped: truth has "
                         "no mpd_mm for every side.")
        else:
            y_alt = (ds.truth_mpd_mm < alt_cutoff_mm).astype(int)
            if y_alt.min() == y_alt.max():
                result["sensitivity_analysis"] = {
                    "cutoff_mm": alt_cutoff_mm,
                    "skipped": f"all sides fall in one class at {alt_cutoff_mm:g} mm."}
            else:
                alt = analysis.analyse(y_alt, analysis.raters_for(ds, threshold, alt_cutoff_mm),
                                       ds.patients, threshold=threshold,
                                       n_bootstrap=n_bootstrap, seed=seed, alpha=alpha)
                alt["cutoff_mm"] = alt_cutoff_mm
                alt["cutoff_source"] = cutoff_source(alt_cutoff_mm)
                alt["labels_changed"] = int(np.sum(y_alt != ds.truth_label))
                result["sensitivity_analysis"] = alt

    result["calibration"] = analysis.calibration_of(ds, ece_bins)
    if ds.folds:
        truth_by_key = dict(zip(ds.keys, ds.truth_label.tolist()))
        result["cross_validation"] = analysis.cross_validation(ds, truth_by_key, threshold, alpha)
        result["cross_validation"]["primary_uses"] = (
            "each side's mean probability over the folds in which it was tested")
    if mpd_reference_csv is not None:
        reference = io.read_mpd_reference(mpd_reference_csv)
        result["mpd_agreement"] = analysis.mpd_agreement(ds, reference, mpd_reference_csv, alpha)
    if masks_pred_dir is not None:
        from .segmentation import folder_metrics

        result["segmentation"] = folder_metrics(masks_pred_dir, masks_truth_dir,
                                                surface_tolerance_mm)
    inputs = [{"role": "predictions", "path": predictions_csv},
              {"role": "truth", "path": truth_csv}]
    inputs += [{"role": "readers", "path": p} for p in readers_csvs]
    if mpd_reference_csv:
        inputs.append({"role": "mpd_reference", "path": mpd_reference_csv})
    for item in inputs:
        item["sha256"] = _sha256(item["path"])
    result["inputs"] = inputs
    result["settings"] = {"cutoff_mm": cutoff_mm, "alt_cutoff_mm": alt_cutoff_mm,
                          "threshold": threshold, "folds_column": preds.fold_column,
                          "n_bootstrap": n_bootstrap, "seed": seed, "ece_bins": ece_bins,
                          "surface_tolerance_mm": surface_tolerance_mm,
                          "confidence_level": 1 - alpha}
    result["methods"] = {
        "proportion_ci": "Wilson score and Clopper-Pearson exact (statsmodels proportion_confint)",
        "auc_ci": "DeLong (fast midrank algorithm, Sun & Xu 2014), Wald interval clipped to 0-1; "
                  "percentile bootstrap resampling patients (both sides together)",
        "paired_proportions": "exact McNemar (statsmodels, binomial on discordant pairs)",
        "paired_auc": "DeLong test for correlated ROC curves; readers' binary calls as scores",
        "kappa": "Cohen (scikit-learn) pairwise, Fleiss (statsmodels) across readers",
        "calibration": "Brier (scikit-learn); ECE with equal-width bins",
        "agreement": "Bland-Altman 1986 limits with approximate CIs; ICC(2,1) absolute "
                     "agreement, McGraw & Wong 1996 F-based CI",
    }
    result["per_side"] = _per_side(ds)
    result["software"] = _versions()
    result["notes"] = notes
    return report.jsonable(result)


def write_outputs(result: Dict[str, object], out_dir: str) -> Dict[str, str]:
    """Write every file into ``out_dir`` atomically; returns {description: file name}."""
    check_out_dir(out_dir)
    parent = os.path.dirname(os.path.abspath(out_dir))
    tmp = tempfile.mkdtemp(prefix=".c2net-evaluate-", dir=parent)
    try:
        images: Dict[str, str] = OrderedDict()
        primary = result["primary"]
        plots.roc_figure(primary, result.get("cross_validation"), os.path.join(tmp, "roc.png"))
        images["ROC curves"] = "roc.png"
        used = set()
        for name, entry in primary["raters"].items():
            fname = "confusion_model.png" if entry["kind"] == "model" else \
                f"confusion_{plots.slug(name)}.png"
            while fname in used:
                fname = fname.replace(".png", "_.png")
            used.add(fname)
            plots.confusion_figure(report.RATER_TITLES.get(entry["kind"], name), entry,
                                   os.path.join(tmp, fname))
            images[f"Confusion matrix: {name}"] = fname
        cal = result.get("calibration")
        if cal:
            p = np.array([row["p_high_risk"] for row in result["per_side"]], dtype=float)
            plots.reliability_figure(cal, p, os.path.join(tmp, "reliability.png"))
            images["Reliability diagram"] = "reliability.png"
        if result.get("mpd_agreement"):
            plots.bland_altman_figure(result["mpd_agreement"], os.path.join(tmp, "bland_altman.png"))
            images["Bland-Altman plot"] = "bland_altman.png"
        result = dict(result)
        result["files"] = ["metrics.json", "metrics.csv", "summary.html"] + list(images.values())
        report.write_json(result, os.path.join(tmp, "metrics.json"))
        report.write_csv(result, os.path.join(tmp, "metrics.csv"))
        report.write_html(result, os.path.join(tmp, "summary.html"), images)
        if os.path.isdir(out_dir):
            os.rmdir(out_dir)  # empty (checked above)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dict(images)


def evaluate(predictions_csv: str, truth_csv: str, readers_csvs: Sequence[str] = (), *,
             out_dir: Optional[str] = None, cutoff_mm: float = 4.78,
             alt_cutoff_mm: Optional[float] = 4.30, threshold: float = 0.5,
             folds_column: Optional[str] = "fold", mpd_reference_csv: Optional[str] = None,
             masks_pred_dir: Optional[str] = None, masks_truth_dir: Optional[str] = None,
             n_bootstrap: int = 2000, seed: int = 0, ece_bins: int = 10,
             surface_tolerance_mm: float = 1.0, alpha: float = 0.05) -> Dict[str, object]:
    """Compute every statistic and, with ``out_dir``, write the result files.

    Parameters: CSV paths (formats in :mod:`c2net.evaluate.io`); ``cutoff_mm`` derives labels
    from the truth ``mpd_mm`` (high risk when below) where no label is given; ``alt_cutoff_mm``
    re-derives all labels for the sensitivity analysis (None to skip); ``threshold`` dichotomises
    the model probability (high risk when >=); ``folds_column`` names the cross-validation fold
    column of the predictions; ``n_bootstrap`` and ``seed`` control the patient-clustered
    bootstrap; ``ece_bins`` the equal-width calibration bins; ``surface_tolerance_mm`` the
    surface-Dice tolerance. Returns the metrics dict (as written to ``metrics.json``).
    Raises :class:`c2net.errors.InputError` for bad input, :class:`OutputError` for ``out_dir``.
    """
    if out_dir is not None:
        check_out_dir(out_dir)  # fail before the work
    result = compute(predictions_csv, truth_csv, readers_csvs, cutoff_mm=cutoff_mm,
                     alt_cutoff_mm=alt_cutoff_mm, threshold=threshold, folds_column=folds_column,
                     mpd_reference_csv=mpd_reference_csv, masks_pred_dir=masks_pred_dir,
                     masks_truth_dir=masks_truth_dir, n_bootstrap=n_bootstrap, seed=seed,
                     ece_bins=ece_bins, surface_tolerance_mm=surface_tolerance_mm, alpha=alpha)
    if out_dir is not None:
        files = write_outputs(result, out_dir)
        result["files"] = ["metrics.json", "metrics.csv", "summary.html"] + list(files.values())
    return result
