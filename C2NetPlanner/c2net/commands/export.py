"""``c2net export CHECKPOINT --out FILE.onnx``: ONNX with metadata (needs torch and onnx).

Research use only - not a medical device.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import DISCLAIMER
from ..errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Export a trained checkpoint (best.pt from 'c2net train') to ONNX with the input spec, "
        "window, normalisation, label meanings, version, training-data statement and "
        "calibration temperature in its metadata. The classifier graph also outputs the "
        "Grad-CAM of both classes. " + DISCLAIMER)
    parser.add_argument("checkpoint", type=Path, help="best.pt written by 'c2net train'")
    parser.add_argument("--out", required=True, type=Path, help="ONNX file to write")
    parser.add_argument("--id", dest="model_id", default=None, help="model id (default by kind)")
    parser.add_argument("--version", default="1.0.0")
    parser.add_argument("--precision", choices=["fp32", "fp16", "int8"], default="fp16",
                        help="fp16 stores weights as float16 (half the file, same fp32 compute); "
                             "int8 is static QDQ quantisation calibrated on --calibration-manifest")
    parser.add_argument("--calibration-manifest", type=Path, default=None,
                        help="int8 only: CT manifest whose ROIs calibrate the activations")
    parser.add_argument("--register", type=Path, default=None, metavar="MODEL_DIR",
                        help="add the exported file to MODEL_DIR/models.json (it must be "
                             "inside MODEL_DIR) as the default model of its kind")


def run(args: argparse.Namespace) -> int:
    if not args.checkpoint.is_file():
        raise InputError(f"checkpoint {args.checkpoint} does not exist",
                         "Give the best.pt written by 'c2net train'.")
    from ..training.export import export_onnx, load_checkpoint

    ck = load_checkpoint(args.checkpoint)
    calibration = None
    if args.precision == "int8":
        if args.calibration_manifest is None or ck["kind"] != "segmentation":
            raise InputError("int8 export needs --calibration-manifest and a segmentation model",
                             "Use fp16 for the classifier.")
        from ..training.heldout import seg_calibration_batches

        calibration = seg_calibration_batches(args.calibration_manifest, ck)
    meta = export_onnx(ck, args.out, args.model_id, args.version, args.precision, calibration)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, {meta['c2net.kind']}, "
          f"{meta['c2net.precision']})")
    if args.register is not None:
        from ..models import register_model

        entry = register_model(args.register, args.out)
        print(f"registered {entry['id']} {entry['version']} sha256 {entry['sha256'][:12]}... in "
              f"{args.register / 'models.json'}")
    print(DISCLAIMER)
    return 0
