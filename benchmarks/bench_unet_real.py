"""The U-Net alone on the shared real CTs against the semi-automatic labels, and on the
held-out phantoms (issue #15).

Research use only - not a medical device.

Real scans (VHM, VHF, CThead): the labels are rebuilt from ``../shared/data`` by
:mod:`c2net.training.real_labels` when ``--labels`` holds none. Per scan the U-Net runs as
at run time (:func:`c2net.segment.segment_pedicles`, centred on the localiser's C2 centre)
on the case's 1 mm crop, and per side the benchmark prints: found (a mask on that side that
overlaps the label), Dice, **core Dice** (both masks within 5 mm of the reader's isthmus
along the reader's axis, :func:`c2net.training.heldout.core_slab`), the distance from the
reader's isthmus centre to the mask, and whether the side is swapped.

Leave-one-real-scan-out: ``--fold vhm=A.onnx --fold vhf=B.onnx --fold cthead=C.onnx`` tests
each scan with the model trained without it; ``--model M.onnx`` tests every scan with one
model (for the shipped model the scans were in its training set: not a test).

``--phantoms MANIFEST`` adds the held-out phantom metrics of ``--model``
(:func:`c2net.training.heldout.evaluate_segmentation`, 3 mm ROI jitter): core Dice, swaps.

    .venv/bin/python benchmarks/bench_unet_real.py --model models/c2net-unet-v1.onnx
    .venv/bin/python benchmarks/bench_unet_real.py --fold vhm=work_tmp/unet/loso_vhm.onnx \\
        --fold vhf=work_tmp/unet/loso_vhf.onnx --fold cthead=work_tmp/unet/loso_cthead.onnx
    .venv/bin/python benchmarks/bench_unet_real.py --model models/c2net-unet-v2.onnx \\
        --phantoms work_tmp/heldout60/manifest.csv

Skips with a message (exit status 0) when the shared data folder is absent.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
CORE_TARGET = 0.8


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    den = int(a.sum()) + int(b.sum())
    return 1.0 if den == 0 else 2.0 * float(np.logical_and(a, b).sum()) / den


def evaluate_real_case(case_dir: Path, model) -> dict:
    """U-Net on one real case (crop, labels, truth written by c2net.training.real_labels)."""
    from c2net.errors import C2NetError
    from c2net.geometry import index_to_lps
    from c2net.segment import segment_pedicles
    from c2net.training.heldout import core_slab
    from c2net.training.real_labels import LABEL_VALUES

    truth = json.loads((case_dir / "truth.json").read_text(encoding="utf-8"))
    ct = sitk.ReadImage(str(case_dir / "ct.nii.gz"), sitk.sitkFloat32)
    lab = sitk.GetArrayFromImage(sitk.ReadImage(str(case_dir / "labels.nii.gz")))
    t0 = time.perf_counter()
    error = ""
    try:
        seg = sitk.GetArrayFromImage(segment_pedicles(ct, truth["c2_center_lps_mm"], model=model))
    except C2NetError as exc:
        seg, error = np.zeros_like(lab, np.uint8), exc.message
    out = {"scan": truth["scan"], "seconds": time.perf_counter() - t0, "error": error,
           "sides": {}}
    for side, pv in (("left", 1), ("right", 2)):
        st = truth["sides"][side]
        mine, ref = seg == pv, lab == LABEL_VALUES[side]
        other = lab == LABEL_VALUES["right" if side == "left" else "left"]
        slab = core_slab(ct, st)
        kji = np.argwhere(mine)
        gap = float("inf")
        if kji.size:
            pts = index_to_lps(ct, kji[:, ::-1].astype(float))
            gap = float(np.min(np.linalg.norm(pts - np.asarray(st["isthmus_center_lps_mm"]),
                                              axis=1)))
        overlap = int(np.logical_and(mine, ref).sum())
        out["sides"][side] = {
            "found": bool(overlap > 0),
            "voxels": int(mine.sum()), "label_voxels": int(ref.sum()),
            "dice": _dice(mine, ref), "core_dice": _dice(mine & slab, ref & slab),
            "isthmus_gap_mm": gap,
            "swapped": bool(np.logical_and(mine, other).sum() > overlap)}
    return out


def _models(args) -> Dict[str, Optional[Path]]:
    folds = dict(f.split("=", 1) for f in args.fold)
    return {s: Path(folds[s]) if s in folds else args.model for s in args.scans}


def main(argv=None) -> int:
    from c2net.training.real_labels import REAL_SCANS, build_real_cases, shared_data_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="U-Net .onnx for every scan")
    ap.add_argument("--fold", action="append", default=[], metavar="SCAN=ONNX",
                    help="the model trained without SCAN (leave-one-real-scan-out)")
    ap.add_argument("--scans", nargs="+", default=list(REAL_SCANS), choices=list(REAL_SCANS))
    ap.add_argument("--labels", type=Path, default=REPO / "work_tmp" / "unet" / "real",
                    help="folder of the rebuilt real cases (rebuilt here when absent)")
    ap.add_argument("--phantoms", type=Path, default=None,
                    help="held-out phantom manifest for --model (e.g. work_tmp/heldout60)")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    from c2net.models import load_model

    data = shared_data_dir()
    if not (data / "real").is_dir():
        print(f"skipped: the shared real CT folder {data / 'real'} is absent")
        return 0
    if not all((a.labels / s / "truth.json").exists() for s in a.scans):
        build_real_cases(a.labels, data)
    models = _models(a)
    if any(m is None for m in models.values()):
        ap.error("give --model or a --fold per scan")
    res: dict = {"real": [], "models": {s: str(m) for s, m in models.items()}}
    print("scan    model                               side   found  dice  core  gap_mm swap")
    for s in a.scans:
        model = load_model("segmentation", path=models[s], threads=a.threads)
        r = evaluate_real_case(a.labels / s, model)
        r["model"] = str(models[s])
        res["real"].append(r)
        for side, v in r["sides"].items():
            print(f"{s:7s} {str(models[s])[-35:]:35s} {side:6s} {str(v['found']):6s} "
                  f"{v['dice']:.3f} {v['core_dice']:.3f} {v['isthmus_gap_mm']:6.1f} "
                  f"{v['swapped']}" + (f"  ({r['error']})" if r["error"] else ""))
    sides = [v for r in res["real"] for v in r["sides"].values()]
    res["summary"] = {
        "sides_found": int(sum(v["found"] for v in sides)), "sides": len(sides),
        "core_dice_min": float(min(v["core_dice"] for v in sides)),
        "core_dice_mean": float(np.mean([v["core_dice"] for v in sides])),
        "core_dice_ge_0_8": int(sum(v["core_dice"] >= CORE_TARGET for v in sides)),
        "swaps": int(sum(v["swapped"] for v in sides))}
    print("real:", json.dumps(res["summary"]))
    if a.phantoms is not None:
        if a.model is None:
            ap.error("--phantoms needs --model")
        from c2net.training.heldout import evaluate_segmentation

        model = load_model("segmentation", path=a.model, threads=a.threads)
        ph = evaluate_segmentation(a.phantoms, model, 3.0)
        res["phantoms"] = {k: v for k, v in ph.items() if k != "cases"}
        print("phantoms:", json.dumps({"core_dice": ph["core_dice"], "dice": ph["dice"],
                                       "side_swaps": ph["side_swaps"],
                                       "failures": ph["failures"]}, default=float))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=1, default=float), encoding="utf-8")
    print("Research use only - not a medical device.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
