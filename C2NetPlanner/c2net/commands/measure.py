"""``c2net measure CT (--pedicles LABELS | --trajectory-left ... --trajectory-right ...)``:
measure both C2 pedicle isthmi from a label map or along the surgeon's trajectories."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from .. import DISCLAIMER
from ..errors import InputError
from ..load import load_ct
from ..verdict import DEFAULT_CUTOFF_MM, cutoff_source, mpd_verdict

#: The phantom generator's pedicle labels (labels.nii.gz, declared in truth.json).
PHANTOM_DEFAULT_LABELS = (2, 3)
#: This program's own segmentation.nii.gz / .seg.nrrd (docs/ARCHITECTURE.md).
SEGMENTATION_LABELS = (1, 2)


def add_trajectory_arguments(parser) -> None:
    """--trajectory-left/--trajectory-right EX EY EZ TX TY TZ and --seed-frame (shared with
    ``c2net assess``)."""
    for option, side in (("--trajectory-left", "left"), ("--trajectory-right", "right")):
        parser.add_argument(option, nargs=6, type=float,
                            metavar=("EX", "EY", "EZ", "TX", "TY", "TZ"),
                            help=f"measure the {side} (patient) isthmus along this entry -> target line "
                                 "(mm; entry near the lamina, target in the vertebral body) instead of a mask")


def trajectories_from_args(args) -> Dict[str, Tuple[Tuple[float, ...], Tuple[float, ...]]]:
    """{side: (entry_lps, target_lps)} from the parsed arguments (RAS converted to LPS)."""
    frame = getattr(args, "seed_frame", "LPS") or "LPS"
    out = {}
    for side in ("left", "right"):
        vals = getattr(args, f"trajectory_{side}", None)
        if vals is None:
            continue
        p = np.asarray(vals, dtype=float).reshape(2, 3)
        if frame == "RAS":
            p[:, :2] *= -1.0
        out[side] = (tuple(p[0]), tuple(p[1]))
    return out


def add_arguments(parser) -> None:
    parser.add_argument("ct", help="CT: DICOM folder/zip, NIfTI, NRRD or MHA")
    parser.add_argument("--pedicles", metavar="LABELS",
                        help="label map with the left and right C2 pedicles (any grid on the same "
                             "patient): this program's segmentation.nii.gz / .seg.nrrd, a phantom's "
                             "labels.nii.gz, or your own")
    parser.add_argument("--left-label", type=int, default=None,
                        help="label value of the LEFT (patient) pedicle (default: read from the file - "
                             "segment names of a .seg.nrrd, truth.json beside a phantom, 1 for this "
                             "program's segmentation)")
    parser.add_argument("--right-label", type=int, default=None,
                        help="label value of the RIGHT pedicle (default: read from the file, as above)")
    add_trajectory_arguments(parser)
    parser.add_argument("--seed-frame", choices=("LPS", "RAS"), default="LPS",
                        help="frame of the trajectory points: LPS (DICOM/ITK, default) or RAS (3D Slicer)")
    parser.add_argument("--cutoff-mm", type=float, default=DEFAULT_CUTOFF_MM,
                        help=f"MPD cutoff for the verdict (default {DEFAULT_CUTOFF_MM} mm)")
    parser.add_argument("--out", metavar="FILE.json", help="write the results as JSON")


def _seg_nrrd_labels(img: sitk.Image) -> Optional[Tuple[int, int]]:
    """(left, right) label values from a Slicer .seg.nrrd's segment names, if it has them."""
    names, values = {}, {}
    for key in img.GetMetaDataKeys():
        m = re.match(r"Segment(\d+)_(Name|LabelValue)$", key)
        if m:
            (names if m.group(2) == "Name" else values)[m.group(1)] = img.GetMetaData(key)
    found = {}
    for n, name in names.items():
        low = name.lower()
        side = "left" if re.search(r"\bleft\b", low) else "right" if re.search(r"\bright\b", low) else None
        if side and "pedicle" in low and n in values:
            found[side] = int(float(values[n]))
    if "left" in found and "right" in found:
        return found["left"], found["right"]
    return None


def default_labels(labels_path: Path, img: Optional[sitk.Image] = None) -> Tuple[Tuple[int, int], str]:
    """((left, right) label values, where they came from) for a pedicle label map.

    In order: a .seg.nrrd's segment names; a phantom's truth.json beside the file; this
    program's own segmentation (its file name, or a report.json beside it): 1 / 2; otherwise
    the values present in the map: 1 and 2 without 3 -> this program's convention, else the
    phantom's 2 / 3.
    """
    if img is not None:
        seg = _seg_nrrd_labels(img)
        if seg is not None:
            return seg, "segment names in the file"
    truth = labels_path.parent / "truth.json"
    if truth.is_file():
        try:
            lab = json.loads(truth.read_text(encoding="utf-8"))["labels"]
            return (int(lab["pedicle_left"]), int(lab["pedicle_right"])), "truth.json beside the labels"
        except (KeyError, ValueError, TypeError):
            pass
    if labels_path.name.startswith("segmentation.") or (labels_path.parent / "report.json").is_file():
        return SEGMENTATION_LABELS, "this program's segmentation (1 left, 2 right)"
    if img is not None:
        present = set(np.unique(sitk.GetArrayViewFromImage(img)).astype(int).tolist())
        if {1, 2} <= present and 3 not in present:
            return SEGMENTATION_LABELS, "values present (1 left, 2 right)"
    return PHANTOM_DEFAULT_LABELS, "phantom convention (2 left, 3 right)"


def run(args) -> int:
    trajectories = trajectories_from_args(args)
    if args.pedicles is None and len(trajectories) < 2:
        raise InputError("Give --pedicles LABELS, or a trajectory for each side.",
                         hint="--trajectory-left EX EY EZ TX TY TZ --trajectory-right ... (entry near "
                              "the lamina, target in the vertebral body), or a pedicle label map.")
    from ..measure import measure_both  # SciPy: not on the start-up path of other commands

    ct = load_ct(args.ct)
    labels, left, right, source = None, None, None, "trajectories"
    lp = None
    if args.pedicles is not None:
        lp = Path(args.pedicles)
        if not lp.exists():
            raise InputError(f"Label map not found: {lp}", hint="Give the path of a NIfTI/NRRD label map.")
        try:
            labels = sitk.ReadImage(str(lp))
        except RuntimeError as exc:
            raise InputError(f"Cannot read the label map {lp}: {exc}",
                             hint="Give a NIfTI/NRRD/MHA label map.") from exc
        if labels.GetDimension() == 4 and labels.GetSize()[3] == 1:
            labels = labels[:, :, :, 0]
        (left, right), source = default_labels(lp, labels)
        left = args.left_label if args.left_label is not None else left
        right = args.right_label if args.right_label is not None else right
    results = measure_both(ct.image, labels, left if left is not None else 1,
                           right if right is not None else 2, trajectories=trajectories)
    out = {"disclaimer": DISCLAIMER, "ct": str(args.ct),
           "pedicles": None if lp is None else str(lp),
           "labels": {"left": left, "right": right, "source": source},
           "trajectories_lps_mm": {s: [list(map(float, e)), list(map(float, t))]
                                   for s, (e, t) in trajectories.items()},
           "cutoff_mm": args.cutoff_mm, "cutoff_source": cutoff_source(args.cutoff_mm), "sides": {}}
    print(f"C2 isthmus measurement  ({DISCLAIMER})")
    if labels is not None:
        print(f"labels: left={left} right={right} ({source})", end="")
    if trajectories:
        print(("; " if labels is not None else "") + "trajectories: " + ", ".join(sorted(trajectories)), end="")
    print(f"; cutoff {args.cutoff_mm:.2f} mm")
    for side in ("left", "right"):
        m = results[side]
        verdict = mpd_verdict(m.mpd_mm, m.mpd_uncertainty_mm, args.cutoff_mm,
                              no_medullary_canal=m.no_medullary_canal)
        d = m.to_dict()
        d["verdict_mpd"] = verdict
        out["sides"][side] = d
        print(f"{side:>5}: MPD {m.mpd_mm:5.2f} +- {m.mpd_uncertainty_mm:.2f} mm  transverse outer "
              f"{m.outer_width_transverse_mm:5.2f} inner {m.inner_width_transverse_mm:4.2f} mm  height "
              f"{m.outer_height_mm:5.2f} mm  medial {m.medial_angle_deg:5.1f} deg  cranial "
              f"{m.cranial_angle_deg:5.1f} deg  ({m.axis_source}) -> {verdict}")
        if m.no_medullary_canal:
            print("       NO MEDULLARY CANAL at the isthmus")
        for w in m.warnings:
            print(f"       warning: {w}")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2), encoding="utf-8")
        print(f"written: {args.out}")
    return 0
