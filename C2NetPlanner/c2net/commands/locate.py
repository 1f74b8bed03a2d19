"""``c2net locate CT [--seed X Y Z [--seed-frame LPS|RAS]] [--vertebra-mask FILE --c2-label N]
[--out FILE.json]``: find C2 and print its region of interest as JSON.

The JSON's ``location`` holds the C2 centre, dens tip and region of interest, a ``confidence``
(0..1: how much of the expected evidence - dens, C1 ring, C2/C3 disc, spine frame - was seen)
and the evidence itself. Points are printed in LPS millimetres (the DICOM/SimpleITK patient
frame). A seed given in RAS
(Slicer's frame) is converted (x and y change sign) and the output says which frame it came
in. Refusals (C2 not / only partly in the field of view, too coarse, bad seed or mask) print
``error:``/``hint:`` and exit with code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from .. import DISCLAIMER, __version__
from ..errors import OutputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ct", help="CT: DICOM folder, .zip/.tgz of DICOM, NIfTI, NRRD or MHA")
    parser.add_argument("--seed", nargs=3, type=float, metavar=("X", "Y", "Z"), default=None,
                        help="a point on C2 in mm (frame: --seed-frame)")
    parser.add_argument("--seed-frame", choices=("LPS", "RAS"), default="LPS",
                        help="frame of --seed: LPS (DICOM, default) or RAS (3D Slicer)")
    parser.add_argument("--vertebra-mask", metavar="FILE", default=None,
                        help="vertebra label map (any grid), TotalSegmentator's folder or its "
                             "vertebrae_C2.nii.gz")
    parser.add_argument("--c2-label", type=int, default=None, metavar="N",
                        help="value of C2 in a multilabel --vertebra-mask")
    parser.add_argument("--out", metavar="FILE.json", default=None, help="also write the JSON here")


def seed_to_lps(seed, frame: str):
    """(x, y, z) in ``frame`` ("LPS" or "RAS") -> LPS mm."""
    if seed is None:
        return None
    x, y, z = (float(v) for v in seed)
    return (-x, -y, z) if frame.upper() == "RAS" else (x, y, z)


def _write_json(path: Path, payload: dict) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=str(path.parent), suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc}", "choose a writable location") from None


def run(args: argparse.Namespace) -> int:
    from ..load import load_ct
    from ..locate import locate_c2

    loaded = load_ct(args.ct)
    seed = seed_to_lps(args.seed, args.seed_frame)
    loc = locate_c2(loaded.image, seed_lps_mm=seed, vertebra_mask=args.vertebra_mask,
                    c2_label=args.c2_label)
    payload = {"c2net_version": __version__, "disclaimer": DISCLAIMER, "input": str(args.ct),
               "frame": "LPS mm", "location": loc.to_dict(),
               "load_warnings": list(loaded.warnings)}
    if args.seed is not None:
        payload["seed"] = {"given": [float(v) for v in args.seed], "frame": args.seed_frame,
                           "lps_mm": list(seed)}
    text = json.dumps(payload, indent=2)
    print(text)
    if args.out:
        _write_json(Path(args.out), payload)
    return 0
