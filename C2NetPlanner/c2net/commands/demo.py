"""``c2net demo --out DIR``: generate a built-in phantom and assess it (the README's job)."""

from __future__ import annotations

from pathlib import Path

from ..errors import OutputError
from ._common import print_summary

DEMO_SEED = 7
DEMO_MPD_MM = (5.6, 3.9)   # left low risk, right high risk: the two verdicts side by side


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="demo_out", metavar="DIR", help="output folder (default demo_out)")
    parser.add_argument("--seed", type=int, default=DEMO_SEED, help="phantom seed")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads per model")


def run(args) -> int:
    from ..assess import assess
    from ..phantom import make_phantom, write_phantom

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise OutputError(f"The output folder {out} exists and is not empty.",
                          hint="Choose another --out folder or add --overwrite.")
    print(f"generating a synthetic cervical CT phantom (seed {args.seed}, MPD left {DEMO_MPD_MM[0]} mm, "
          f"right {DEMO_MPD_MM[1]} mm) ...")
    ph = make_phantom(seed=args.seed, spacing_mm=(0.6, 0.6, 0.8), mpd_left_mm=DEMO_MPD_MM[0],
                      mpd_right_mm=DEMO_MPD_MM[1], fov="c1_c4")
    write_phantom(ph, out / "phantom", overwrite=True)
    print(f"phantom written to {out / 'phantom'} (ct.nii.gz, labels.nii.gz, truth.json)")
    result = assess(out / "phantom" / "ct.nii.gz", out / "assessment", overwrite=True,
                    threads=args.threads)
    print_summary(result)
    truth = ph.truth["sides"]
    print(f"phantom truth: MPD left {truth['left']['mpd_mm']:.2f} mm, right {truth['right']['mpd_mm']:.2f} mm")
    print("timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in result.timings_s.items()))
    print(f"report: {(out / 'assessment' / 'report.html').absolute()}")
    print(f"        {(out / 'assessment' / 'report.pdf').absolute()}")
    return 0
