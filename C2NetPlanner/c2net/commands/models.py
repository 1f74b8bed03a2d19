"""``c2net models``: list the installed models and verify their sha256 (ONNX Runtime only).

Research use only - not a medical device.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import DISCLAIMER


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("List the models in a model folder (default: $C2NET_MODEL_DIR or the "
                          "repository's models/), check each file's sha256 against models.json "
                          "and open it with ONNX Runtime. " + DISCLAIMER)
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--file", type=Path, default=None,
                        help="inspect a single user-given .onnx file instead")
    parser.add_argument("--kind", choices=["segmentation", "classifier"], default=None,
                        help="with --file: the kind expected")


def _print_model(m) -> None:
    meta = m.metadata
    print(f"{m.kind:13s} {m.id} {m.version}  {m.path.name}  "
          f"{m.path.stat().st_size / 1e6:.1f} MB  precision {meta.get('precision')}")
    print(f"  sha256 {m.sha256}  ({'verified against models.json' if m.verified else 'not in an index'})")
    print(f"  input {meta.get('input', {}).get('shape')}  window {meta.get('window')}  "
          f"mean/std {m.mean_std[0]:.4f}/{m.mean_std[1]:.4f}  temperature {m.temperature:.3f}")
    print(f"  labels {meta.get('labels')}")
    print(f"  training data: {meta.get('training_data')}")
    if m.entry and m.entry.get("metrics"):
        print(f"  metrics: {m.entry['metrics']}")


def run(args: argparse.Namespace) -> int:
    from ..models import default_model_dir, load_model, read_index

    if args.file is not None:
        kinds = [args.kind] if args.kind else ["segmentation", "classifier"]
        last = None
        for k in kinds:
            try:
                _print_model(load_model(k, path=args.file, threads=1))
                break
            except Exception as exc:  # noqa: BLE001 - try the other kind
                last = exc
        else:
            raise last
        print(DISCLAIMER)
        return 0
    folder = args.model_dir or default_model_dir()
    index = read_index(folder)
    print(f"model folder {folder}")
    for kind in sorted({e.get("kind") for e in index["models"]}):
        _print_model(load_model(kind, model_dir=folder, threads=1))
    print(DISCLAIMER)
    return 0
