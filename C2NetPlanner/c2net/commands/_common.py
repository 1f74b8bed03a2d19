"""Arguments and printing shared by ``c2net assess``, ``demo`` and ``batch``."""

from __future__ import annotations

import sys

from .. import DISCLAIMER
from ..results import SIDES, Assessment, format_probability
from ..verdict import DEFAULT_CUTOFF_MM, DEFAULT_SCREW_MM


def add_decision_arguments(parser) -> None:
    parser.add_argument("--cutoff-mm", type=float, default=DEFAULT_CUTOFF_MM,
                        help="MPD cutoff for low risk (default 4.78 mm, Wu 2023; 4.30 alternative; 4.0 Maki)")
    parser.add_argument("--screw-mm", type=float, default=DEFAULT_SCREW_MM,
                        help="planned screw diameter in mm (default 3.5): checked against each "
                             "measured isthmus beside the verdicts (the verdicts themselves are "
                             "for the cutoff's 3.5 mm screw)")
    parser.add_argument("--verdict-measure", choices=("mpd", "inner"), default="mpd",
                        help="width the MPD verdict uses: outer MPD (default) or inner (medullary) width")
    parser.add_argument("--model-dir", metavar="DIR", help="folder with models.json (default: the shipped models)")
    parser.add_argument("--seg-model", metavar="FILE",
                        help="a segmentation U-Net ONNX file of your own (verified against models.json when listed there)")
    parser.add_argument("--cls-model", metavar="FILE",
                        help="a C3D classifier ONNX file of your own (verified against models.json when listed there)")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads per model")


def decision_kwargs(args) -> dict:
    return {"cutoff_mm": args.cutoff_mm, "screw_mm": args.screw_mm,
            "verdict_measure": args.verdict_measure, "model_dir": args.model_dir,
            "segmentation_model": args.seg_model, "classifier_model": args.cls_model,
            "threads": args.threads}


def print_summary(result: Assessment, stream=None) -> None:
    """A short human-readable table of both sides (on ``stream``, default the current stdout)."""
    w = (stream or sys.stdout).write
    w(f"C2 pedicle screw assessment  -- {DISCLAIMER}\n")
    s = result.settings
    w(f"verdicts: MPD against the {s.get('cutoff_mm')} mm cutoff and the network, both for a 3.5 mm "
      f"screw; fit: your {s.get('screw_mm')} mm screw against the measured MPD\n")
    w(f"{'side':<6}{'MPD mm':>12}{'inner mm':>10}{'P(high)':>9}  {'MPD verdict':<12}{'network':<11}"
      f"{'agreement':<11}screw fit\n")
    for side in SIDES:
        sa = result.sides.get(side)
        if sa is None:
            continue
        m, p = sa.measurement, sa.prediction
        mpd = f"{m.mpd_mm:5.2f}+-{m.mpd_uncertainty_mm:.2f}" if m else "   n/a"
        inner = f"{m.inner_width_mm:5.2f}" if m else "n/a"
        prob = format_probability(p.p_high_risk) if p else "n/a"
        fit = sa.screw_fit
        fit_text = (f"{fit['fit'].replace('_', ' ')} (margin {fit['margin_mm']:+.2f} mm, needs "
                    f"{fit['required_margin_mm']:.2f})" if fit else "n/a")
        w(f"{side:<6}{mpd:>12}{inner:>10}{prob:>9}  {sa.verdict_mpd or 'n/a':<12}"
          f"{sa.verdict_network or 'n/a':<11}{sa.agreement or 'n/a':<11}{fit_text}\n")
    for msg in result.warnings:
        w(f"warning: {msg}\n")
