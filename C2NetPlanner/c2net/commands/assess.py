"""``c2net assess INPUT --out DIR``: the main job (see :func:`c2net.assess.assess`)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import C2NetError
from ..output_folder import OVERWRITE_RULE
from ..progress import format_result, line_printer, stage_printer
from ._common import add_decision_arguments, decision_kwargs, print_summary
from .measure import add_trajectory_arguments, trajectories_from_args


def add_arguments(parser) -> None:
    parser.add_argument("input", help="CT: DICOM folder/zip/tgz, NIfTI, NRRD or MHA")
    parser.add_argument("--out", required=True, metavar="DIR", help="report folder (written completely or not at all)")
    parser.add_argument("--series", metavar="UID", help="DICOM SeriesInstanceUID to use when several series are present")
    parser.add_argument("--seed", nargs=3, type=float, metavar=("X", "Y", "Z"), help="a point on C2 (mm)")
    parser.add_argument("--seed-frame", choices=("LPS", "RAS"), default="LPS",
                        help="frame of --seed and the trajectories: LPS (DICOM/ITK, default) or RAS (3D Slicer)")
    add_trajectory_arguments(parser)
    parser.add_argument("--vertebra-mask", metavar="FILE", help="vertebra label map (e.g. TotalSegmentator)")
    parser.add_argument("--c2-label", type=int, help="label value of C2 in --vertebra-mask")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a non-empty --out folder: " + OVERWRITE_RULE)
    parser.add_argument("--quiet", action="store_true", help="do not print the stages as they run")
    parser.add_argument("--progress-lines", action="store_true",
                        help="print machine-readable C2NET-PROGRESS/C2NET-RESULT lines (used by the Slicer module)")
    add_decision_arguments(parser)


def seed_lps(args):
    if args.seed is None:
        return None
    x, y, z = args.seed
    return (-x, -y, z) if args.seed_frame == "RAS" else (x, y, z)


def run(args) -> int:
    from ..assess import assess

    progress = line_printer(sys.stdout) if args.progress_lines else stage_printer(quiet=args.quiet)
    out = Path(args.out)
    try:
        result = assess(args.input, out, series_uid=args.series, seed_lps_mm=seed_lps(args),
                        vertebra_mask=args.vertebra_mask, c2_label=args.c2_label,
                        progress=progress, overwrite=args.overwrite,
                        trajectories_lps_mm=trajectories_from_args(args) or None, **decision_kwargs(args))
    except C2NetError as exc:
        if args.progress_lines:
            print(format_result({"status": "error", "error": exc.to_dict(),
                                 "report": str(out / "report.json")}), flush=True)
        raise
    print_summary(result)
    print(f"report: {out / 'report.pdf'}  (all files in {out})")
    if args.progress_lines:
        print(format_result({"status": "ok", "report": str(out / "report.json")}), flush=True)
    return 0
