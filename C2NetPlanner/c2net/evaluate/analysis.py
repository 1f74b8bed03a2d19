"""The statistical analysis behind ``c2net evaluate``, on validated tables (no file output).

Steps: pair predictions with truth and readers per (patient, side); derive labels (given label,
else ``mpd_mm < cutoff`` = high risk); compute the model's metrics at the probability threshold,
AUC (DeLong and patient-clustered bootstrap), Youden threshold; the same metrics for the
measured-MPD rule (when predictions carry ``mpd_mm``) and each reader, with paired tests against
the model and between readers; kappa; calibration; per-fold cross-validation summary; the
sensitivity analysis at the alternative cutoff; MPD agreement.

With a fold column, a side usually appears in several folds (repeated splits). The per-fold
analysis uses every fold as it is; the pooled (primary) analysis uses each side's mean
probability over the folds in which it was tested, so that every side counts once and the
confidence intervals stay valid.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import combinations
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import InputError
from . import agreement, calibration, metrics, readers, roc
from .io import FORMAT_HINT, Predictions, ReaderCalls, SideKey, Truth

MODEL = "model"
MPD_RULE = "mpd_rule"


@dataclass
class Rater:
    """A source of binary calls (and scores for ROC) on the evaluated sides."""

    name: str
    kind: str                      # "model", "mpd_rule" or "reader"
    calls: np.ndarray              # 1 high risk, 0 low risk
    scores: np.ndarray             # higher = more likely high risk (calls for readers)
    experience: Optional[str] = None


@dataclass
class Dataset:
    keys: List[SideKey]
    patients: np.ndarray
    p_high_risk: np.ndarray                  # mean over folds when cross-validated
    mpd_pred_mm: Optional[np.ndarray]
    truth_label: np.ndarray                  # primary labels (1 high risk)
    truth_mpd_mm: Optional[np.ndarray]       # None unless every evaluated side has one
    reader_calls: OrderedDict[str, ReaderCalls]
    folds: Dict[str, Dict[SideKey, float]] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)
    label_source: Dict[str, int] = field(default_factory=dict)


def _fmt_key(key: SideKey) -> str:
    return f"patient '{key[0]}' {key[1]} side"


def build_dataset(preds: Predictions, truth: Truth, reader_files: Sequence[ReaderCalls],
                  cutoff_mm: float) -> Dataset:
    """Pair the tables per side and derive the primary labels (raises InputError on gaps)."""
    notes: List[str] = []
    p_by_key: OrderedDict[SideKey, List[float]] = OrderedDict()
    mpd_by_key: Dict[SideKey, List[float]] = {}
    line_by_key: Dict[SideKey, int] = {}
    folds: Dict[str, Dict[SideKey, float]] = OrderedDict()
    for row in preds.rows:
        key = (row.patient_id, row.side)
        p_by_key.setdefault(key, []).append(row.p_high_risk)
        line_by_key.setdefault(key, row.line)
        if row.mpd_mm is not None:
            mpd_by_key.setdefault(key, []).append(row.mpd_mm)
        if row.fold is not None:
            folds.setdefault(row.fold, OrderedDict())[key] = row.p_high_risk
    keys = list(p_by_key)
    missing = [k for k in keys if k not in truth.rows]
    if missing:
        k = missing[0]
        raise InputError(
            f"truth file {truth.path} has no row for {_fmt_key(k)} (predictions row "
            f"{line_by_key[k]}); {len(missing)} predicted side(s) lack truth",
            "Every predicted side needs a truth row. " + FORMAT_HINT["truth"],
            code="evaluate_csv")
    extra_truth = len(set(truth.rows) - set(keys))
    if extra_truth:
        notes.append(f"{extra_truth} truth row(s) have no prediction and were not evaluated.")
    labels = np.zeros(len(keys), dtype=int)
    source = {"label": 0, "mpd_mm": 0}
    disagree = 0
    for i, k in enumerate(keys):
        t = truth.rows[k]
        derived = None if t.mpd_mm is None else int(t.mpd_mm < cutoff_mm)
        if t.label is not None:
            labels[i] = t.label
            source["label"] += 1
            if derived is not None and derived != t.label:
                disagree += 1
        else:
            labels[i] = derived
            source["mpd_mm"] += 1
    if disagree:
        notes.append(f"{disagree} side(s) have a truth label that disagrees with "
                     f"mpd_mm < {cutoff_mm:g} mm; the given label was used.")
    if labels.min() == labels.max():
        cls = "high_risk" if labels[0] == 1 else "low_risk"
        raise InputError(f"all {len(keys)} evaluated sides are {cls} in {truth.path}; "
                         "sensitivity, specificity and AUC need both classes",
                         "Check the label column or the --cutoff-mm value.", code="evaluate_csv")
    truth_mpd = None
    if all(truth.rows[k].mpd_mm is not None for k in keys):
        truth_mpd = np.array([truth.rows[k].mpd_mm for k in keys], dtype=float)
    mpd_pred = None
    if mpd_by_key:
        if all(k in mpd_by_key for k in keys):
            mpd_pred = np.array([np.mean(mpd_by_key[k]) for k in keys], dtype=float)
        else:
            notes.append("predictions mpd_mm is missing for some sides; the measured-MPD rule "
                         "was not evaluated.")
    reader_calls: OrderedDict[str, ReaderCalls] = OrderedDict()
    for r in reader_files:
        if r.name in reader_calls:
            raise InputError(f"reader name '{r.name}' appears in two reader files "
                             f"({reader_calls[r.name].path} and {r.path})",
                             "Give each reader a unique name (reader column or file name).",
                             code="evaluate_csv")
        if r.name in (MODEL, MPD_RULE):
            raise InputError(f"reader name '{r.name}' in {r.path} is reserved",
                             "Rename the reader.", code="evaluate_csv")
        gaps = [k for k in keys if k not in r.calls]
        if gaps:
            raise InputError(
                f"readers file {r.path}: reader '{r.name}' has no call for {_fmt_key(gaps[0])} "
                f"({len(gaps)} of {len(keys)} evaluated sides missing)",
                "Paired comparisons need every reader to call every predicted side. "
                + FORMAT_HINT["readers"], code="evaluate_csv")
        extra = len(set(r.calls) - set(keys))
        if extra:
            notes.append(f"reader '{r.name}': {extra} call(s) on sides without a prediction "
                         "were ignored.")
        reader_calls[r.name] = r
    return Dataset(keys=keys, patients=np.array([k[0] for k in keys]),
                   p_high_risk=np.array([np.mean(p_by_key[k]) for k in keys], dtype=float),
                   mpd_pred_mm=mpd_pred, truth_label=labels, truth_mpd_mm=truth_mpd,
                   reader_calls=reader_calls, folds=folds if preds.has_folds else {},
                   notes=notes, label_source=source)


def raters_for(ds: Dataset, threshold: float, cutoff_mm: float) -> List[Rater]:
    """Model (dichotomised at ``threshold``), measured-MPD rule at ``cutoff_mm``, readers."""
    out = [Rater(MODEL, "model", metrics.dichotomise(ds.p_high_risk, threshold), ds.p_high_risk)]
    if ds.mpd_pred_mm is not None:
        out.append(Rater(MPD_RULE, "mpd_rule", (ds.mpd_pred_mm < cutoff_mm).astype(int),
                         -ds.mpd_pred_mm))
    for name, r in ds.reader_calls.items():
        calls = np.array([r.calls[k] for k in ds.keys], dtype=int)
        out.append(Rater(name, "reader", calls, calls.astype(float), r.experience))
    return out


def analyse(y: np.ndarray, raters: List[Rater], patients: np.ndarray, *, threshold: float,
            n_bootstrap: int, seed: int, alpha: float = 0.05) -> Dict[str, object]:
    """Metrics of every rater on labels ``y`` plus paired tests and agreement."""
    model = raters[0]
    out: Dict[str, object] = {
        "n_sides": int(y.size), "n_patients": int(np.unique(patients).size),
        "n_high_risk": int(y.sum()), "n_low_risk": int(y.size - y.sum()), "raters": OrderedDict(),
    }
    for r in raters:
        entry: Dict[str, object] = {"kind": r.kind, "experience": r.experience}
        entry.update(metrics.binary_metrics(y, r.calls, alpha))
        auc = roc.auc_delong(y, r.scores, alpha)
        auc.update(roc.bootstrap_auc_ci(y, r.scores, patients, n_bootstrap, seed, alpha))
        entry["auc"] = auc
        entry["roc"] = roc.roc_points(y, r.scores)
        if r.kind == "model":
            entry["threshold"] = threshold
            entry["youden"] = metrics.youden_threshold(y, r.scores)
        elif r.kind == "mpd_rule":
            entry["youden"] = metrics.youden_threshold(y, r.scores)
            entry["youden"]["threshold_mm"] = -entry["youden"].pop("threshold")
            entry["youden"]["rule"] = "high risk when mpd_mm <= threshold_mm"
        if r is not model:
            tests = readers.paired_binary_tests(y, model.calls, r.calls)
            tests["auc"] = roc.delong_paired_test(y, model.scores, r.scores, alpha)
            entry["vs_model"] = tests
        out["raters"][r.name] = entry
    reader_list = [r for r in raters if r.kind == "reader"]
    pairs = []
    for a, b in combinations(reader_list, 2):
        tests = readers.paired_binary_tests(y, a.calls, b.calls)
        tests["auc"] = roc.delong_paired_test(y, a.scores, b.scores, alpha)
        pairs.append({"a": a.name, "b": b.name, "tests": tests})
    out["reader_pairs"] = pairs
    named = OrderedDict((r.name, r.calls) for r in raters if r.kind in ("model", "reader"))
    out["kappa"] = {
        "cohen_pairwise": readers.pairwise_kappa(named),
        "fleiss_readers": readers.fleiss(OrderedDict((r.name, r.calls) for r in reader_list)),
        "fleiss_readers_n": len(reader_list),
    }
    return out


FOLD_METRICS = ("accuracy", "sensitivity", "specificity", "ppv", "npv", "auc")


def cross_validation(ds: Dataset, truth_by_key: Dict[SideKey, int], threshold: float,
                     alpha: float = 0.05) -> Dict[str, object]:
    """Per-fold metrics, mean / SD / range over folds, and the mean ROC curve."""
    per_fold = []
    curves = []
    for fold, probs in ds.folds.items():
        keys = list(probs)
        y = np.array([truth_by_key[k] for k in keys], dtype=int)
        p = np.array([probs[k] for k in keys], dtype=float)
        entry: Dict[str, object] = {"fold": fold, "n_sides": len(keys),
                                    "n_patients": len({k[0] for k in keys}),
                                    "n_high_risk": int(y.sum())}
        bm = metrics.binary_metrics(y, metrics.dichotomise(p, threshold), alpha)
        for m in FOLD_METRICS[:-1]:
            entry[m] = bm[m]["value"]
        entry["confusion"] = bm["confusion"]
        if 0 < y.sum() < y.size:
            auc = roc.auc_delong(y, p, alpha)
            entry["auc"] = auc["value"]
            entry["auc_ci_delong"] = auc["ci_delong"]
            entry["roc"] = roc.roc_points(y, p)
            curves.append(entry["roc"])
        else:
            entry["auc"] = None
        per_fold.append(entry)
    summary = {}
    for m in FOLD_METRICS:
        vals = np.array([f[m] for f in per_fold if f[m] is not None], dtype=float)
        summary[m] = ({"mean": float(vals.mean()),
                       "sd": float(vals.std(ddof=1)) if vals.size > 1 else 0.0,
                       "min": float(vals.min()), "max": float(vals.max()), "n_folds": int(vals.size)}
                      if vals.size else None)
    return {"n_folds": len(per_fold), "folds": per_fold, "summary": summary,
            "mean_roc": roc.mean_roc(curves) if curves else None,
            "sd_definition": "sample SD (ddof=1) across folds"}


def mpd_agreement(ds: Dataset, reference: Dict[SideKey, float], path: str,
                  alpha: float = 0.05) -> Dict[str, object]:
    """Bland-Altman and ICC(2,1) of the predictions' mpd_mm against a reference source."""
    if ds.mpd_pred_mm is None:
        raise InputError("--mpd-reference needs an mpd_mm value on every row of the "
                         "predictions file", FORMAT_HINT["predictions"], code="evaluate_csv")
    idx = [i for i, k in enumerate(ds.keys) if k in reference]
    if len(idx) < 3:
        raise InputError(f"MPD reference file {path} matches only {len(idx)} predicted side(s); "
                         "at least 3 are needed", FORMAT_HINT["mpd_reference"],
                         code="evaluate_csv")
    auto = ds.mpd_pred_mm[idx]
    ref = np.array([reference[ds.keys[i]] for i in idx], dtype=float)
    out = {"n_pairs": len(idx), "unmatched_reference": len(set(reference) - set(ds.keys)),
           "unmatched_predictions": len(ds.keys) - len(idx),
           "bland_altman": agreement.bland_altman(auto, ref, alpha),
           "icc": agreement.icc_2_1(np.column_stack([auto, ref]), alpha),
           "automatic_mm": auto.tolist(), "reference_mm": ref.tolist(),
           "pearson_r": float(np.corrcoef(auto, ref)[0, 1]) if np.ptp(auto) and np.ptp(ref)
           else None}
    return out


def calibration_of(ds: Dataset, n_bins: int) -> Dict[str, object]:
    return calibration.calibration(ds.truth_label, ds.p_high_risk, n_bins)
