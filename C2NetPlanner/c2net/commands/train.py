"""``c2net train seg|cls --manifest FILE --out DIR``: train the U-Net or the C3D (needs torch).

Research use only - not a medical device.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import DISCLAIMER


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Train the paper's segmentation U-Net ('seg') or C3D classifier ('cls') with its "
        "protocol: patient-level 8:2 split (one of ten seeded repeats, or all with "
        "--all-splits), Adam lr 1e-4, batch 4, cosine annealing, up to 200 epochs, early "
        "stopping after 10 epochs without validation-loss gain, a checkpoint every 10 epochs, "
        "best kept. Manifest forms: a CT manifest (patient_id, ct, labels, truth[, mpd_left_mm, "
        "mpd_right_mm]) as written by 'c2net phantom --cohort', or for 'cls' the paper's form "
        "(patient_id, side, label, slice1..slice5 images). " + DISCLAIMER)
    parser.add_argument("network", choices=["seg", "cls"], help="which network to train")
    parser.add_argument("--manifest", required=True, type=Path, help="training manifest CSV")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--epochs", type=int, default=200, help="epochs planned (default 200)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop after the epoch that crosses this wall-clock budget")
    parser.add_argument("--steps-per-epoch", type=int, default=None,
                        help="batches per epoch (seg default: 8 random patches per training "
                             "case; cls default: one pass over the training pedicles)")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--checkpoint-every", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", type=int, default=0, help="which of the repeated splits")
    parser.add_argument("--repeats", type=int, default=10, help="number of repeated splits")
    parser.add_argument("--all-splits", action="store_true",
                        help="train every split into OUT/split_K (the paper's protocol)")
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--widths", type=int, nargs="+", default=None,
                        help="channel widths (default: the paper's; small values for tests)")
    parser.add_argument("--fc", type=int, nargs=2, default=None,
                        help="C3D hidden FC sizes (default 4096 1024)")
    parser.add_argument("--patch", type=int, default=64, help="U-Net training patch (pixels)")
    parser.add_argument("--val-slices", type=int, default=192)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="preprocessed-array cache (default OUT/cache)")
    parser.add_argument("--cutoff-mm", type=float, default=4.78,
                        help="MPD below which a pedicle is labelled high risk (CT manifests)")
    parser.add_argument("--no-measure", action="store_true",
                        help="cls: crop the isthmus slices at the truth's isthmus centre "
                             "instead of measuring it (by default each isthmus is measured once "
                             "by c2net.measure on the true mask, as at run time, cached, and the "
                             "items are re-cut around it every epoch)")
    parser.add_argument("--centre-jitter-mm", type=float, default=None,
                        help="cls: standard deviation (mm, per axis) of the random shift of "
                             "the measured isthmus centre (default: the measurement's own "
                             "error on the training cases, robust sd per axis; 0 = none)")
    parser.add_argument("--init-from", type=Path, default=None, metavar="BEST_PT",
                        help="start from the weights (and normalisation) of an earlier run's "
                             "best.pt of the same network instead of random weights (fine-tuning "
                             "or continuing a run that hit --max-minutes); also an exported "
                             ".onnx of that network (fp16 weights widened)")
    parser.add_argument("--domain-randomisation", action="store_true",
                        help="SynthSeg-style randomised training data (tissue intensities, "
                             "bias field, scanner resolution, noise, gamma; seg: also elastic "
                             "deformation; cls: the five slices re-rendered from the CT slab "
                             "around the measured isthmus with a drawn slice profile)")
    parser.add_argument("--p-randomise", type=float, default=1.0,
                        help="share of patches (seg) or items (cls) randomised with "
                             "--domain-randomisation (default 1)")
    parser.add_argument("--real-manifest", type=Path, default=None,
                        help="seg: a CT manifest of real scans with labels (e.g. from "
                             "'python -m c2net.training.real_labels'), used for training only")
    parser.add_argument("--real-share", type=float, default=0.3,
                        help="seg: share of the training patches drawn from --real-manifest")
    parser.add_argument("--mirror", type=float, default=0.0, metavar="P",
                        help="seg: share of the training patches mirrored left-right with the "
                             "two pedicle classes swapped (default 0: none)")
    parser.add_argument("--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    from ..training.train import TrainConfig, train_cls, train_seg

    cfg = TrainConfig(
        epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, patience=args.patience,
        checkpoint_every=args.checkpoint_every, seed=args.seed, split=args.split,
        n_repeats=args.repeats, val_fraction=args.val_fraction, max_minutes=args.max_minutes,
        steps_per_epoch=args.steps_per_epoch, widths=tuple(args.widths) if args.widths else None,
        fc=tuple(args.fc) if args.fc else None, patch=args.patch, val_slices=args.val_slices,
        threads=args.threads, device=args.device,
        cache_dir=str(args.cache_dir or (args.out / "cache")), cutoff_mm=args.cutoff_mm,
        use_measure=not args.no_measure, quiet=args.quiet,
        init_from=str(args.init_from) if args.init_from else None,
        domain_randomisation=args.domain_randomisation, p_randomise=args.p_randomise,
        real_manifest=str(args.real_manifest) if args.real_manifest else None,
        real_share=args.real_share, centre_jitter_mm=args.centre_jitter_mm,
        p_mirror=args.mirror)
    fn = train_seg if args.network == "seg" else train_cls
    splits = range(args.repeats) if args.all_splits else [args.split]
    summaries = []
    for k in splits:
        cfg.split = k
        out = args.out / f"split_{k}" if args.all_splits else args.out
        s = fn(args.manifest, out, cfg)
        summaries.append({"split": k, "out": str(out), "best_epoch": s["best_epoch"],
                          "best_val_loss": s["best_val_loss"], "stop_reason": s["stop_reason"]})
        print(f"split {k}: best epoch {s['best_epoch']} (val loss {s['best_val_loss']:.4f}); "
              f"{s['stop_reason']}; best weights in {out / 'best.pt'}")
    if args.all_splits:
        with open(args.out / "splits_summary.json", "w", encoding="utf-8") as f:
            json.dump(summaries, f, indent=2)
    print(DISCLAIMER)
    return 0
