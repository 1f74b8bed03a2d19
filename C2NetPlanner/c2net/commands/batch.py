"""``c2net batch INPUTS... | --manifest FILE --out DIR``: assess a cohort (see c2net.batch)."""

from __future__ import annotations

from ..batch import EXIT_CASES_FAILED, BatchOptions, cases_from_inputs, read_manifest, run_batch
from ..errors import InputError
from ._common import add_decision_arguments


def add_arguments(parser) -> None:
    parser.add_argument("inputs", nargs="*", help="CT inputs (files or DICOM folders)")
    parser.add_argument("--manifest", metavar="FILE",
                        help="CSV with an 'input' column (optional case_id, series_uid, vertebra_mask, c2_label, seed_x/y/z)")
    parser.add_argument("--out", required=True, metavar="DIR", help="cohort folder: one sub-folder per case + summary.csv")
    parser.add_argument("--workers", type=int, default=1, help="local Dask worker processes (default 1: in-process)")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="existing Dask scheduler, e.g. tcp://host:8786")
    parser.add_argument("--resume", action="store_true",
                        help="continue an earlier run in --out: skip the cases that finished (status ok), "
                             "run every other case again, failed ones included")
    parser.add_argument("--overwrite", action="store_true",
                        help="run every case again into a non-empty --out: only the files this program "
                             "writes are replaced; earlier cases' summary rows are kept")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_decision_arguments(parser)


def run(args) -> int:
    if bool(args.inputs) == bool(args.manifest):
        raise InputError("Give either input paths or --manifest FILE (not both, not neither).",
                         hint="e.g. c2net batch scans/*.nii.gz --out cohort/")
    cases = read_manifest(args.manifest) if args.manifest else cases_from_inputs(args.inputs)
    if args.workers < 1:
        raise InputError("--workers must be at least 1.", hint="Use --workers 1 for an in-process run.")
    options = BatchOptions(cutoff_mm=args.cutoff_mm, screw_mm=args.screw_mm,
                           verdict_measure=args.verdict_measure, model_dir=args.model_dir,
                           segmentation_model=args.seg_model, classifier_model=args.cls_model,
                           threads=args.threads or 1)
    rows = run_batch(cases, args.out, options, workers=args.workers, scheduler=args.scheduler,
                     resume=args.resume, overwrite=args.overwrite, show_progress=not args.quiet)
    failed = sorted({r["case_id"] for r in rows if r.get("status") != "ok"})
    print(f"{len(cases)} case(s), {len(failed)} failed; summary: {args.out}/summary.csv")
    for cid in failed:
        msg = next((r.get("error_message") for r in rows if r["case_id"] == cid), "")
        print(f"  failed: {cid}: {msg}")
    if failed:
        print(f"exit code {EXIT_CASES_FAILED}: {len(failed)} case(s) failed; see {args.out}/failures.csv; "
              "fix the inputs and run again with --resume (finished cases are kept)")
        return EXIT_CASES_FAILED
    return 0
