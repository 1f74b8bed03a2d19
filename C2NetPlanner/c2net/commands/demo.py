"""``c2net demo --out DIR``: generate a built-in phantom and assess it (the README's job)."""

from __future__ import annotations

from pathlib import Path

from ..output_folder import OVERWRITE_RULE, check_output_folder
from ..progress import stage_printer
from ._common import print_summary

DEMO_SEED = 7
DEMO_MPD_MM = (5.6, 3.9)   # left low risk, right high risk: the two verdicts side by side


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="demo_out", metavar="DIR", help="output folder (default demo_out)")
    parser.add_argument("--phantom-seed", type=int, default=DEMO_SEED,
                        help=f"random seed of the demo phantom (default {DEMO_SEED})")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a non-empty --out folder: " + OVERWRITE_RULE)
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads per model")
    parser.add_argument("--quiet", action="store_true", help="do not print the stages as they run")


def run(args) -> int:
    from ..assess import assess
    from ..phantom import make_phantom, write_phantom

    out = check_output_folder(Path(args.out), args.overwrite)
    print(f"generating a synthetic cervical CT phantom (seed {args.phantom_seed}, MPD left {DEMO_MPD_MM[0]} mm, "
          f"right {DEMO_MPD_MM[1]} mm) ...")
    ph = make_phantom(seed=args.phantom_seed, spacing_mm=(0.6, 0.6, 0.8), mpd_left_mm=DEMO_MPD_MM[0],
                      mpd_right_mm=DEMO_MPD_MM[1], fov="c1_c4")
    write_phantom(ph, out / "phantom", overwrite=True)
    print(f"phantom written to {out / 'phantom'} (ct.nii.gz, labels.nii.gz, truth.json)")
    result = assess(out / "phantom" / "ct.nii.gz", out / "assessment", overwrite=True,
                    threads=args.threads, progress=stage_printer(quiet=args.quiet))
    print_summary(result)
    truth = ph.truth["sides"]
    print(f"phantom truth: MPD left {truth['left']['mpd_mm']:.2f} mm, right {truth['right']['mpd_mm']:.2f} mm")
    print("timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in result.timings_s.items()))
    print(f"report: {(out / 'assessment' / 'report.html').absolute()}")
    print(f"        {(out / 'assessment' / 'report.pdf').absolute()}")
    return 0
