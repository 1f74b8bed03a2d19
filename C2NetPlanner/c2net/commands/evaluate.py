"""``c2net evaluate``: the paper's statistics from prediction / truth / reader CSV files."""

from __future__ import annotations

import argparse
import os
import textwrap

from .. import DISCLAIMER

FORMATS = """\
CSV formats (comma-separated with a header row; one row per pedicle side):
  predictions  patient_id, side (left/right), p_high_risk (0..1), [mpd_mm], [fold]
               (one row per side, or per side and fold for cross-validated predictions)
  truth        patient_id, side, label (high_risk/low_risk or 1/0) and/or mpd_mm
               (without a label: high risk when mpd_mm < --cutoff-mm; the sensitivity
               analysis at --alt-cutoff-mm re-derives all labels and needs mpd_mm)
  readers      patient_id, side, call (high_risk/low_risk or 1/0), [reader], [experience]
               (reader name from the 'reader' column, else from the file name)
  mpd reference  patient_id, side, mpd_mm (second source, compared with predictions mpd_mm)
Positive class = high risk. Outputs in --out: metrics.json, metrics.csv, summary.html,
roc.png, confusion_*.png, reliability.png, bland_altman.png (with --mpd-reference).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = textwrap.fill("Reproduce the C2-Net evaluation (accuracy, sensitivity, specificity, "
                          "PPV, NPV, AUC with 95% CIs; reader comparisons; sensitivity analysis; "
                          "cross-validation; calibration; MPD agreement; segmentation). "
                          + DISCLAIMER)
    parser.epilog = FORMATS
    parser.add_argument("--predictions", required=True, metavar="FILE",
                        help="model predictions CSV")
    parser.add_argument("--truth", required=True, metavar="FILE", help="ground truth CSV")
    parser.add_argument("--readers", nargs="+", default=[], metavar="FILE",
                        help="reader call CSVs (one or more; repeatable)", action="extend")
    parser.add_argument("--cutoff-mm", type=float, default=4.78,
                        help="MPD cutoff deriving labels from truth mpd_mm (default 4.78, Wu 2023)")
    parser.add_argument("--alt-cutoff-mm", type=float, default=4.30,
                        help="alternative cutoff of the sensitivity analysis (default 4.30)")
    parser.add_argument("--no-sensitivity-analysis", action="store_true",
                        help="skip the alternative-cutoff analysis")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="probability at or above which the model calls high risk (0.5)")
    parser.add_argument("--folds-column", default="fold",
                        help="name of the cross-validation fold column (default 'fold')")
    parser.add_argument("--mpd-reference", metavar="FILE",
                        help="second-source MPD CSV for Bland-Altman / ICC agreement")
    parser.add_argument("--masks-pred", metavar="DIR", help="folder of predicted label masks")
    parser.add_argument("--masks-truth", metavar="DIR",
                        help="folder of true label masks (same file names)")
    parser.add_argument("--surface-tolerance-mm", type=float, default=1.0,
                        help="surface Dice tolerance (default 1 mm)")
    parser.add_argument("--bootstrap", type=int, default=2000, metavar="N",
                        help="patient-level bootstrap resamples for the AUC CI (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap random seed (default 0)")
    parser.add_argument("--ece-bins", type=int, default=10,
                        help="equal-width bins of the expected calibration error (default 10)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder (must not exist or be empty)")


def _fmt(entry) -> str:
    v = entry["value"]
    lo, hi = entry["ci_wilson"]
    return "n/a" if v is None else f"{100 * v:5.1f}% ({100 * lo:.1f}-{100 * hi:.1f})"


def run(args: argparse.Namespace) -> int:
    from ..evaluate import evaluate

    result = evaluate(
        args.predictions, args.truth, args.readers, out_dir=args.out,
        cutoff_mm=args.cutoff_mm,
        alt_cutoff_mm=None if args.no_sensitivity_analysis else args.alt_cutoff_mm,
        threshold=args.threshold, folds_column=args.folds_column,
        mpd_reference_csv=args.mpd_reference, masks_pred_dir=args.masks_pred,
        masks_truth_dir=args.masks_truth, n_bootstrap=args.bootstrap, seed=args.seed,
        ece_bins=args.ece_bins, surface_tolerance_mm=args.surface_tolerance_mm)
    prim = result["primary"]
    print(DISCLAIMER)
    print(f"{prim['n_sides']} sides of {prim['n_patients']} patients "
          f"({prim['n_high_risk']} high risk, {prim['n_low_risk']} low risk)")
    print(f"{'rater':<22} {'accuracy (95% CI)':<24} {'sensitivity':<24} {'specificity':<24} AUC")
    for name, r in prim["raters"].items():
        auc = r["auc"]
        lo, hi = auc["ci_delong"]
        auc_txt = f"{auc['value']:.3f}" + (f" ({lo:.3f}-{hi:.3f})" if lo is not None else "")
        print(f"{name[:22]:<22} {_fmt(r['accuracy']):<24} {_fmt(r['sensitivity']):<24} "
              f"{_fmt(r['specificity']):<24} {auc_txt}")
    for note in result.get("notes", []):
        print(f"note: {note}")
    print(f"wrote {os.path.join(args.out, 'summary.html')} and {len(result['files']) - 1} "
          "other files")
    return 0
