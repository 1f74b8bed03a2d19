"""``c2net measure CT --pedicles LABELS``: measure both C2 pedicle isthmi from a label map."""

from __future__ import annotations

import json
from pathlib import Path

import SimpleITK as sitk

from .. import DISCLAIMER
from ..errors import InputError
from ..load import load_ct
from ..measure import measure_both
from ..verdict import DEFAULT_CUTOFF_MM, cutoff_source, mpd_verdict

PHANTOM_DEFAULT_LABELS = (2, 3)


def add_arguments(parser) -> None:
    parser.add_argument("ct", help="CT: DICOM folder/zip, NIfTI, NRRD or MHA")
    parser.add_argument("--pedicles", required=True, metavar="LABELS",
                        help="label map with the left and right C2 pedicles (any grid on the same patient)")
    parser.add_argument("--left-label", type=int, default=None,
                        help="label value of the LEFT (patient) pedicle (default: from truth.json beside "
                             "LABELS, else 2 as in the phantoms)")
    parser.add_argument("--right-label", type=int, default=None,
                        help="label value of the RIGHT pedicle (default: from truth.json, else 3)")
    parser.add_argument("--cutoff-mm", type=float, default=DEFAULT_CUTOFF_MM,
                        help=f"MPD cutoff for the verdict (default {DEFAULT_CUTOFF_MM} mm)")
    parser.add_argument("--out", metavar="FILE.json", help="write the results as JSON")


def default_labels(labels_path: Path) -> tuple:
    """Label values declared by a phantom's truth.json beside the label map, else (2, 3)."""
    truth = labels_path.parent / "truth.json"
    if truth.is_file():
        try:
            lab = json.loads(truth.read_text())["labels"]
            return int(lab["pedicle_left"]), int(lab["pedicle_right"])
        except (KeyError, ValueError, TypeError):
            pass
    return PHANTOM_DEFAULT_LABELS


def run(args) -> int:
    ct = load_ct(args.ct)
    lp = Path(args.pedicles)
    if not lp.exists():
        raise InputError(f"Label map not found: {lp}", hint="Give the path of a NIfTI/NRRD label map.")
    try:
        labels = sitk.ReadImage(str(lp))
    except RuntimeError as exc:
        raise InputError(f"Cannot read the label map {lp}: {exc}",
                         hint="Give a NIfTI/NRRD/MHA label map.") from exc
    left, right = default_labels(lp)
    left = args.left_label if args.left_label is not None else left
    right = args.right_label if args.right_label is not None else right
    results = measure_both(ct.image, labels, left, right)
    out = {"disclaimer": DISCLAIMER, "ct": str(args.ct), "pedicles": str(lp),
           "labels": {"left": left, "right": right},
           "cutoff_mm": args.cutoff_mm, "cutoff_source": cutoff_source(args.cutoff_mm), "sides": {}}
    print(f"C2 isthmus measurement  ({DISCLAIMER})")
    print(f"labels: left={left} right={right}; cutoff {args.cutoff_mm:.2f} mm")
    for side in ("left", "right"):
        m = results[side]
        verdict = mpd_verdict(m.mpd_mm, m.mpd_uncertainty_mm, args.cutoff_mm)
        d = m.to_dict()
        d["verdict_mpd"] = verdict
        out["sides"][side] = d
        print(f"{side:>5}: MPD {m.mpd_mm:5.2f} +- {m.mpd_uncertainty_mm:.2f} mm  inner {m.inner_width_mm:4.2f} mm  "
              f"height {m.outer_height_mm:5.2f} mm  medial {m.medial_angle_deg:5.1f} deg  "
              f"cranial {m.cranial_angle_deg:5.1f} deg  -> {verdict}")
        for w in m.warnings:
            print(f"       warning: {w}")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2))
        print(f"written: {args.out}")
    return 0
