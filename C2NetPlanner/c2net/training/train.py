"""Training loops for the U-Net (segmentation) and the C3D (classification).

The paper's protocol: patient-level 8:2 split (one of ten seeded repeats), Adam lr 1e-4,
batch 4, cosine annealing over the planned epochs (default 200), early stopping after
``patience`` (10) epochs without validation-loss gain, a checkpoint every 10 epochs and the
best-on-validation weights kept (``best.pt``). Deterministic for a given seed and thread count
(data sampling uses ``numpy.random.default_rng([seed, epoch])``, torch is seeded and set to
deterministic algorithms). Uses CUDA when available, else the CPU.

``max_minutes`` is an optional wall-clock budget: training stops after the epoch that crosses
it and the log says so (the cosine schedule still runs over ``epochs``).

Outputs in ``out_dir``: ``best.pt``, ``checkpoints/epoch_NNN.pt``, ``train_log.csv``,
``loss_curve.png``, ``summary.json``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import pickle
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .. import DISCLAIMER, __version__
from . import data as D
from .calibrate import brier_score, fit_temperature, softmax
from .nets import C3D, C3D_PAPER_FC, C3D_PAPER_WIDTHS, UNET_PAPER_WIDTHS, UNet2D, count_parameters
from .splits import patient_splits, split_indices

SEG_CLASSES = ["background", "C2 pedicle left", "C2 pedicle right"]
CLS_CLASSES = ["low risk (MPD >= cutoff)", "high risk (MPD < cutoff)"]


@dataclass
class TrainConfig:
    """Hyper-parameters (paper defaults) and run options."""

    epochs: int = 200
    lr: float = 1e-4
    batch_size: int = 4
    patience: int = 10
    checkpoint_every: int = 10
    seed: int = 0
    split: int = 0
    n_repeats: int = 10
    val_fraction: float = 0.2
    max_minutes: Optional[float] = None
    steps_per_epoch: Optional[int] = None     # seg: random batches per epoch (default 8/case)
    widths: Optional[Tuple[int, ...]] = None  # None -> the paper's widths
    fc: Optional[Tuple[int, ...]] = None      # C3D hidden FC sizes, None -> (4096, 1024)
    patch: int = 64                           # U-Net training patch (pixels at 1 mm)
    val_slices: int = 192
    threads: int = 2
    device: str = "auto"
    cache_dir: Optional[str] = None
    cutoff_mm: float = D.HIGH_RISK_CUTOFF_MM
    use_measure: bool = True
    init_from: Optional[str] = None           # warm start: best.pt of an earlier run
    domain_randomisation: bool = False        # SynthSeg-style patches / items (training.randomise)
    p_randomise: float = 1.0                  # share of patches / items randomised (with the above)
    centre_jitter_mm: Optional[float] = None  # cls: sd of the isthmus-centre jitter (None: the
    #                                           measurement's own error on the training cases)
    real_manifest: Optional[str] = None       # seg: extra CT manifest (real scans), training only
    real_share: float = 0.3                   # seg: share of patches drawn from real_manifest
    p_mirror: float = 0.0                     # seg: share of patches mirrored L-R, sides swapped
    quiet: bool = False
    extra: Dict = field(default_factory=dict)


# --------------------------------------------------------------------------- utilities
def _setup(cfg: TrainConfig) -> torch.device:
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % (2**32))
    torch.set_num_threads(max(1, int(cfg.threads)))
    torch.use_deterministic_algorithms(True, warn_only=True)
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


class ProgressBar:
    """A plain progress bar on stderr (redraws on a terminal, one line per epoch otherwise)."""

    def __init__(self, quiet: bool = False, stream=None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def step(self, epoch: int, epochs: int, i: int, n: int, loss: float) -> None:
        if self.quiet or not self.tty:
            return
        filled = int(20 * i / max(n, 1))
        self.stream.write(f"\repoch {epoch}/{epochs} [{'#' * filled}{'.' * (20 - filled)}] "
                          f"{i}/{n} loss {loss:.4f}")
        self.stream.flush()

    def epoch(self, text: str) -> None:
        if self.quiet:
            return
        self.stream.write(("\r" if self.tty else "") + text + "\n")
        self.stream.flush()


def cosine_lr(lr0: float, epoch: int, epochs: int) -> float:
    """Cosine annealing from ``lr0`` (epoch 0) towards 0 at ``epochs``."""
    return 0.5 * lr0 * (1.0 + math.cos(math.pi * epoch / max(epochs, 1)))


def _standardise(x: np.ndarray, mean: float, std: float, channels: int = 3) -> torch.Tensor:
    """(B, 1, ...) window units -> (B, 3, ...) standardised tensor (three identical channels)."""
    t = torch.from_numpy(((x - mean) / std).astype(np.float32))
    return t.expand(-1, channels, *t.shape[2:]).contiguous()


def save_loss_curve(rows: Sequence[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [r["epoch"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(ep, [r["train_loss"] for r in rows], "o-", label="training loss")
    ax.plot(ep, [r["val_loss"] for r in rows], "s-", label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=10)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.text(0.01, 0.01, DISCLAIMER, fontsize=7, color="grey")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def fit(net: torch.nn.Module, train_step: Callable[[np.random.Generator], Tuple[float, int]],
        validate: Callable[[], Tuple[float, Dict[str, float]]], steps_per_epoch: int,
        cfg: TrainConfig, out_dir: Path, make_checkpoint: Callable[[], dict],
        optimizer: torch.optim.Optimizer, title: str) -> dict:
    """The shared loop: epochs of ``train_step`` calls, validation, early stopping, checkpoints."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "checkpoints").mkdir(exist_ok=True)
    bar = ProgressBar(cfg.quiet)
    rows: List[dict] = []
    best, best_epoch, bad = float("inf"), -1, 0
    t0 = time.monotonic()
    stop_reason = f"reached {cfg.epochs} epochs"
    for epoch in range(cfg.epochs):
        lr = cosine_lr(cfg.lr, epoch, cfg.epochs)
        for g in optimizer.param_groups:
            g["lr"] = lr
        rng = np.random.default_rng([cfg.seed, epoch])
        net.train()
        tot, n = 0.0, 0
        te = time.monotonic()
        for i in range(steps_per_epoch):
            loss, bs = train_step(rng)
            tot += loss * bs
            n += bs
            bar.step(epoch + 1, cfg.epochs, i + 1, steps_per_epoch, tot / max(n, 1))
        net.eval()
        with torch.no_grad():
            val_loss, metrics = validate()
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": tot / max(n, 1), "val_loss": val_loss,
               **metrics, "epoch_s": time.monotonic() - te}
        rows.append(row)
        improved = val_loss < best - 1e-6
        if improved:
            best, best_epoch, bad = val_loss, epoch + 1, 0
            ck = make_checkpoint()
            ck.update(epoch=epoch + 1, val_loss=val_loss, val_metrics=metrics)
            _atomic_save(ck, out_dir / "best.pt")
        else:
            bad += 1
        if (epoch + 1) % cfg.checkpoint_every == 0:
            ck = make_checkpoint()
            ck.update(epoch=epoch + 1, val_loss=val_loss, val_metrics=metrics)
            _atomic_save(ck, out_dir / "checkpoints" / f"epoch_{epoch + 1:03d}.pt")
        mtxt = " ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        bar.epoch(f"epoch {epoch + 1}/{cfg.epochs} train {row['train_loss']:.4f} val "
                  f"{val_loss:.4f} {mtxt} lr {lr:.2e} {row['epoch_s']:.0f}s"
                  + (" *best" if improved else ""))
        _write_log(rows, out_dir / "train_log.csv")
        save_loss_curve(rows, out_dir / "loss_curve.png", title)
        if bad >= cfg.patience:
            stop_reason = f"early stopping: {cfg.patience} epochs without validation-loss gain"
            break
        if cfg.max_minutes is not None and time.monotonic() - t0 > 60.0 * cfg.max_minutes:
            stop_reason = f"wall-clock budget of {cfg.max_minutes:g} min reached"
            break
    return {"epochs_run": len(rows), "best_epoch": best_epoch, "best_val_loss": best,
            "stop_reason": stop_reason, "train_minutes": (time.monotonic() - t0) / 60.0,
            "history": rows}


def _write_log(rows: Sequence[dict], path: Path) -> None:
    keys = list(rows[0].keys())
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def _config_dict(cfg: TrainConfig) -> dict:
    d = asdict(cfg)
    d["widths"] = list(cfg.widths) if cfg.widths else None
    d["fc"] = list(cfg.fc) if cfg.fc else None
    return d


def _read_checkpoint(path: str, kind: str) -> dict:
    """An earlier run's ``best.pt`` of ``kind``, for a warm start (clear error otherwise)."""
    from ..errors import InputError

    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise InputError(f"cannot read the warm-start checkpoint {path}: {exc}",
                         "Give the best.pt written by an earlier 'c2net train' run.") from exc
    if not isinstance(ck, dict) or ck.get("kind") != kind or "state_dict" not in ck:
        raise InputError(f"{path} is not a {kind} checkpoint of 'c2net train'",
                         "Give the best.pt written by an earlier 'c2net train' run of this network.")
    return ck


def checkpoint_from_onnx(path: str, kind: str = "segmentation") -> dict:
    """A checkpoint (architecture, weights, normalisation) read back from an exported U-Net
    or C3D ``.onnx`` (its initialisers carry the state-dict names, prefixed ``net.`` in the
    C3D's Grad-CAM wrapper; fp16 weights are widened to float32), so a shipped model can be
    fine-tuned without its ``best.pt``."""
    import onnx
    from onnx import numpy_helper

    from ..errors import InputError

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise InputError(f"cannot read the warm-start model {path}: {exc}",
                         "Give an .onnx exported by 'c2net export' or a best.pt.") from exc
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get("c2net.kind") != kind:
        raise InputError(f"{path} is not a c2net {kind} model",
                         f"Give the {'U-Net' if kind == 'segmentation' else 'C3D'} .onnx "
                         "exported by 'c2net export'.")
    prefixes = ("down.", "up.", "head.") if kind == "segmentation" else ("net.",)
    state = {}
    for init in model.graph.initializer:
        name = init.name[:-len("__fp16")] if init.name.endswith("__fp16") else init.name
        if name.startswith(prefixes):
            if kind == "classifier":
                name = name[len("net."):]
            state[name] = torch.from_numpy(numpy_helper.to_array(init).astype(np.float32))
    norm = json.loads(meta.get("c2net.normalisation", "{}"))
    if kind == "segmentation":
        widths = [int(state[f"down.{i}.0.weight"].shape[0]) for i in range(5)]
        arch = {"in_channels": 3, "n_classes": 3, "widths": widths}
    else:
        arch = {k: v for k, v in json.loads(meta.get("c2net.architecture", "{}")).items()
                if k != "kind"}
    ck = {"kind": kind, "state_dict": state, "arch": arch,
          "normalisation": {"mean": float(norm["mean"]), "std": float(norm["std"])},
          "epoch": None, "config": None,
          "warm_start": {"onnx": str(path), "id": meta.get("c2net.id"),
                         "version": meta.get("c2net.version")}}
    if kind == "classifier":
        ck["temperature"] = float(meta.get("c2net.temperature", 1.0))
    return ck


def _load_weights(net: torch.nn.Module, ck: dict, path: str) -> None:
    from ..errors import InputError

    try:
        net.load_state_dict(ck["state_dict"])
    except RuntimeError as exc:
        raise InputError(f"{path} has another architecture than this run ({exc})",
                         "Leave --widths out (the checkpoint's are used) or give the same.") from exc


# --------------------------------------------------------------------------- segmentation
def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, classes: Sequence[int] = (1, 2)
                   ) -> torch.Tensor:
    """Mean soft Dice loss of ``classes``; ``target`` is (B, C, H, W) class shares."""
    p = torch.softmax(logits, dim=1)
    losses = []
    for c in classes:
        pc, tc = p[:, c], target[:, c]
        inter = (pc * tc).sum()
        losses.append(1.0 - (2 * inter + 1.0) / (pc.sum() + tc.sum() + 1.0))
    return torch.stack(losses).mean()


def seg_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against the pixels' class shares + soft Dice of the two pedicle classes.

    ``target`` is (B, 3, H, W): the share of each pixel covered by background / left / right
    pedicle (partial volume, see :func:`c2net.training.data.soft_target`), so the softmax
    learns the covered share and the surface can be placed between 1 mm pixels.
    """
    ce = -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    return ce + soft_dice_loss(logits, target)


def hard_labels(target: np.ndarray) -> np.ndarray:
    """(B, 3, H, W) class shares -> (B, H, W) labels: a pedicle where it covers over half."""
    lab = np.zeros(target.shape[:1] + target.shape[2:], np.uint8)
    lab[target[:, 1] > 0.5] = 1
    lab[target[:, 2] > 0.5] = 2
    return lab


def dice_per_class(pred: np.ndarray, target: np.ndarray, classes: Sequence[int] = (1, 2)
                   ) -> List[float]:
    out = []
    for c in classes:
        p, t = pred == c, target == c
        den = p.sum() + t.sum()
        out.append(1.0 if den == 0 else float(2 * np.logical_and(p, t).sum() / den))
    return out


def train_seg(manifest: Path, out_dir: Path, cfg: Optional[TrainConfig] = None) -> dict:
    """Train the U-Net on a CT manifest; returns the summary (also ``summary.json``)."""
    cfg = cfg or TrainConfig()
    device = _setup(cfg)
    out_dir = Path(out_dir)
    if D.manifest_format(manifest) != "ct":
        from ..errors import InputError

        raise InputError("the segmentation network needs a CT manifest (ct, labels, truth)",
                         "The paper's slice form only trains the classifier.")
    cases = D.read_ct_manifest(manifest)
    init = None
    if cfg.init_from:
        init = (checkpoint_from_onnx(cfg.init_from) if str(cfg.init_from).endswith(".onnx")
                else _read_checkpoint(cfg.init_from, "segmentation"))
    real_cases = D.read_ct_manifest(Path(cfg.real_manifest)) if cfg.real_manifest else []
    pids = [c.patient_id for c in cases]
    split = patient_splits(pids, cfg.n_repeats, cfg.val_fraction, cfg.seed)[cfg.split]
    tr, va = split_indices(pids, split)
    cache = Path(cfg.cache_dir) if cfg.cache_dir else out_dir / "cache"
    vols = []
    for i, c in enumerate(cases):
        vols.append(D.preprocess_seg_case(c, D.SEG_ROI_MM, D.SEG_JITTER_MM, cache))
        D._progress(i + 1, len(cases), "preparing segmentation data")
    real_vols = [D.preprocess_seg_case(c, D.SEG_ROI_MM, D.SEG_JITTER_MM, cache)
                 for c in real_cases]
    m = D.SEG_JITTER_MM
    mean, std = D.mean_std([D.window_unit(vols[i]["hu"][m:-m, m:-m, m:-m]) for i in tr])
    train_vols = [vols[i] for i in tr] + real_vols
    weights = None
    if real_vols:   # the few real scans get ``real_share`` of the patches between them
        share = min(max(float(cfg.real_share), 0.0), 1.0)
        weights = ([(1.0 - share) / len(tr)] * len(tr)
                   + [share / len(real_vols)] * len(real_vols))
    sampler = D.SegSampler(train_vols, D.SEG_ROI_MM, m, cfg.patch,
                           augment=D.SegAugment(domain_randomisation=cfg.domain_randomisation,
                                                p_randomise=cfg.p_randomise,
                                                p_mirror=cfg.p_mirror),
                           weights=weights)
    xv, yv = D.seg_validation_set([vols[i] for i in va], D.SEG_ROI_MM, m, cfg.val_slices, cfg.seed)
    yv_labels = hard_labels(yv)
    widths = tuple(cfg.widths or (init["arch"]["widths"] if init else UNET_PAPER_WIDTHS))
    arch = {"in_channels": 3, "n_classes": 3, "widths": list(widths)}
    net = UNet2D(**arch)
    if init:
        _load_weights(net, init, cfg.init_from)
        mean, std = init["normalisation"]["mean"], init["normalisation"]["std"]
    net = net.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    steps = cfg.steps_per_epoch or int(math.ceil(8 * len(tr) / cfg.batch_size))

    def train_step(rng):
        x, y = sampler.sample(rng, cfg.batch_size)
        xt = _standardise(x, mean, std).to(device)
        yt = torch.from_numpy(y).to(device)
        opt.zero_grad(set_to_none=True)
        loss = seg_loss(net(xt), yt)
        loss.backward()
        opt.step()
        return float(loss.item()), len(x)

    def validate():
        tot, preds = 0.0, []
        for i in range(0, len(xv), 8):
            xt = _standardise(xv[i:i + 8], mean, std).to(device)
            yt = torch.from_numpy(yv[i:i + 8]).to(device)
            lg = net(xt)
            tot += float(seg_loss(lg, yt).item()) * len(xt)
            preds.append(lg.argmax(1).cpu().numpy())
        dl, dr = dice_per_class(np.concatenate(preds), yv_labels)
        return tot / len(xv), {"val_dice_left": dl, "val_dice_right": dr}

    statement = _data_statement(manifest, len(cases), len(tr), len(va))
    if real_cases:
        statement += (f"; plus {len(real_cases)} real CT(s) for training only "
                      f"({', '.join(c.patient_id for c in real_cases)}; "
                      f"{100 * cfg.real_share:.0f} % of the patches)")
    if cfg.p_mirror > 0:
        statement += (f"; {100 * cfg.p_mirror:.0f} % of the patches mirrored left-right with "
                      "the pedicle sides swapped")
    if cfg.domain_randomisation:
        statement += (f"; SynthSeg-style domain randomisation of {100 * cfg.p_randomise:.0f} % "
                      "of the patches (c2net.training.randomise)")
    init_info = None if not cfg.init_from else {
        "checkpoint": str(cfg.init_from), "epoch": init.get("epoch"),
        "config": init.get("config"), "warm_start": init.get("warm_start")}

    def make_checkpoint():
        return {
            "kind": "segmentation", "arch": arch, "state_dict": {k: v.detach().cpu().clone()
                                                                 for k, v in net.state_dict().items()},
            "normalisation": {"mean": mean, "std": std},
            "window": {"level_hu": D.WINDOW_LEVEL_HU, "width_hu": D.WINDOW_WIDTH_HU},
            "roi_mm": list(D.SEG_ROI_MM), "classes": SEG_CLASSES, "config": _config_dict(cfg),
            "split": {"index": cfg.split, "train": split[0], "val": split[1]},
            "training_data": statement, "c2net_version": __version__,
            "warm_start": init_info,
        }

    summary = fit(net, train_step, validate, steps, cfg, out_dir, make_checkpoint, opt,
                  f"U-Net {widths}, split {cfg.split}")
    summary.update(kind="segmentation", parameters=count_parameters(net), steps_per_epoch=steps,
                   device=str(device), training_data=statement, n_train=len(tr), n_val=len(va))
    _write_summary(summary, out_dir)
    return summary


def _data_statement(manifest: Path, n: int, n_train: int, n_val: int) -> str:
    return (f"{n} patients from manifest {Path(manifest).name} ({n_train} training, {n_val} "
            "validation patients, patient-level split)")


def _write_summary(summary: dict, out_dir: Path) -> None:
    s = {k: v for k, v in summary.items() if k != "history"}
    with open(out_dir / "summary.json", "w", encoding="utf-8") as f:
        json.dump(s, f, indent=2, default=float)


# --------------------------------------------------------------------------- classification
def binary_metrics(p_high: np.ndarray, y: np.ndarray, threshold: float = 0.5) -> Dict[str, float]:
    """Accuracy, sensitivity, specificity (high risk = positive), AUC (Mann-Whitney), Brier."""
    p = np.asarray(p_high, float)
    y = np.asarray(y, int)
    pred = (p >= threshold).astype(int)
    tp = int(((pred == 1) & (y == 1)).sum())
    tn = int(((pred == 0) & (y == 0)).sum())
    pos, neg = int((y == 1).sum()), int((y == 0).sum())
    out = {"accuracy": float((pred == y).mean()) if len(y) else float("nan"),
           "sensitivity": tp / pos if pos else float("nan"),
           "specificity": tn / neg if neg else float("nan"),
           "brier": brier_score(p, y) if len(y) else float("nan")}
    if pos and neg:
        from scipy.stats import rankdata

        r = rankdata(p)
        out["auc"] = float((r[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))
    else:
        out["auc"] = float("nan")
    return out


def train_cls(manifest: Path, out_dir: Path, cfg: Optional[TrainConfig] = None) -> dict:
    """Train the C3D on a CT or slice manifest, then calibrate its temperature on validation.

    CT manifest with ``use_measure`` (the default): every isthmus is measured once by
    ``c2net.measure`` on the true pedicle mask (cached, :func:`c2net.training.data.build_cls_slabs`)
    and every training item is re-cut around that centre, jittered by the measurement's
    typical error, optionally domain-randomised (:func:`c2net.training.data.cut_cls_item`).
    ``use_measure`` False (``--no-measure``) or a slice manifest: fixed items (the true
    isthmus crop, or the paper's five images) with the light window-unit augmentation.
    """
    cfg = cfg or TrainConfig()
    if cfg.use_measure and D.manifest_format(manifest) == "ct":
        return _train_cls_slabs(manifest, out_dir, cfg)
    if cfg.domain_randomisation:
        from ..errors import InputError

        raise InputError("domain randomisation of the classifier re-cuts its slices from the CT "
                         "around the measured isthmus",
                         "Give a CT manifest and leave --no-measure out.")
    device = _setup(cfg)
    out_dir = Path(out_dir)
    cache = Path(cfg.cache_dir) if cfg.cache_dir else out_dir / "cache"
    ds = D.build_cls_dataset(manifest, cache, cfg.cutoff_mm, cfg.use_measure)
    split = patient_splits(ds.patient_ids, cfg.n_repeats, cfg.val_fraction, cfg.seed)[cfg.split]
    tr, va = split_indices(ds.patient_ids, split)
    mean, std = D.mean_std([ds.x[tr]])
    net, arch, init, mean, std = _cls_net(cfg, list(ds.x.shape[1:]), mean, std)
    net = net.to(device)

    def batch(idx, rng):
        return D.augment_cls(ds.x[idx], rng)

    def val_set():
        return [("", ds.x[va], ds.y[va])]

    statement = _data_statement(manifest, len(set(ds.patient_ids)), len(set(split[0])),
                                len(set(split[1]))) + f"; isthmus slices from {ds.source}"
    view = "full_crop" if "slice_images" in ds.source else D.CLS_VIEW
    summary = _fit_cls(net, arch, init, mean, std, ds.y, tr, va, batch, val_set, split, statement,
                       view, cfg, out_dir, device)
    summary.update(class_balance={"high_risk": int(ds.y.sum()), "low_risk": int((1 - ds.y).sum())})
    _write_summary(summary, out_dir)
    return summary


def _cls_net(cfg: TrainConfig, input_shape, mean: float, std: float):
    """The C3D of this run (warm-started from ``cfg.init_from``, a best.pt or an exported
    .onnx, whose normalisation is then kept)."""
    arch = {"in_channels": 3, "n_classes": 2, "widths": list(cfg.widths or C3D_PAPER_WIDTHS),
            "fc": list(cfg.fc or C3D_PAPER_FC), "input_shape": list(input_shape), "dropout": 0.5}
    init = None
    if cfg.init_from:
        init = (checkpoint_from_onnx(cfg.init_from, "classifier")
                if str(cfg.init_from).endswith(".onnx")
                else _read_checkpoint(cfg.init_from, "classifier"))
        if cfg.widths is None and cfg.fc is None and init.get("arch"):
            arch = dict(arch, widths=list(init["arch"]["widths"]), fc=list(init["arch"]["fc"]))
    net = C3D(**arch)
    if init:   # warm start: same architecture, the checkpoint's normalisation
        _load_weights(net, init, cfg.init_from)
        mean, std = init["normalisation"]["mean"], init["normalisation"]["std"]
    return net, arch, init, mean, std


def _fit_cls(net, arch, init, mean, std, y, tr, va, batch, val_set, split, statement, view,
             cfg: TrainConfig, out_dir: Path, device, extra_checkpoint: Optional[dict] = None
             ) -> dict:
    """The classifier's loop and temperature calibration, shared by both data paths.

    ``batch(idx, rng)`` gives the (B, 5, H, W) window-unit training items; ``val_set()`` a
    list of (tag, x, y) validation sets (fixed): the validation loss is their mean, the
    metrics are reported per set, the temperature is fitted on all of them together."""
    out_dir = Path(out_dir)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    steps = cfg.steps_per_epoch or int(math.ceil(len(tr) / cfg.batch_size))
    order_state = {"order": None, "pos": 0}
    vsets = val_set()

    def train_step(rng):
        if order_state["order"] is None or order_state["pos"] >= len(tr):
            order_state["order"], order_state["pos"] = rng.permutation(tr), 0
        idx = order_state["order"][order_state["pos"]:order_state["pos"] + cfg.batch_size]
        order_state["pos"] += cfg.batch_size
        x = batch(idx, rng)[:, None]
        xt = _standardise(x, mean, std).to(device)
        yt = torch.from_numpy(y[idx]).to(device)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(xt), yt)
        loss.backward()
        opt.step()
        return float(loss.item()), len(idx)

    def logits_of(x):
        out = []
        for i in range(0, len(x), 16):
            xt = _standardise(x[i:i + 16][:, None], mean, std).to(device)
            out.append(net(xt).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 2), np.float32)

    def validate():
        order_state["order"] = None  # every epoch starts a fresh permutation
        losses, metrics = [], {}
        for tag, xv, yv in vsets:
            lg = logits_of(xv)
            losses.append(float(F.cross_entropy(torch.from_numpy(lg),
                                                torch.from_numpy(yv)).item()))
            m = binary_metrics(softmax(lg)[:, 1], yv)
            sfx = f"_{tag}" if tag else ""
            metrics.update({f"val_accuracy{sfx}": m["accuracy"], f"val_auc{sfx}": m["auc"]})
        return float(np.mean(losses)), metrics

    def make_checkpoint():
        ck = {
            "kind": "classifier", "arch": arch, "state_dict": {k: v.detach().cpu().clone()
                                                               for k, v in net.state_dict().items()},
            "normalisation": {"mean": mean, "std": std},
            "window": {"level_hu": D.WINDOW_LEVEL_HU, "width_hu": D.WINDOW_WIDTH_HU},
            "classes": CLS_CLASSES, "cutoff_mm": cfg.cutoff_mm, "config": _config_dict(cfg),
            "split": {"index": cfg.split, "train": split[0], "val": split[1]},
            "training_data": statement, "c2net_version": __version__, "temperature": 1.0,
            "view": view,
            "warm_start": None if not init else {"checkpoint": str(cfg.init_from),
                                                 "epoch": init.get("epoch"),
                                                 "warm_start": init.get("warm_start")},
        }
        ck.update(extra_checkpoint or {})
        return ck

    summary = fit(net, train_step, validate, steps, cfg, out_dir, make_checkpoint, opt,
                  f"C3D {tuple(arch['widths'])}, split {cfg.split}")
    # temperature scaling on the validation logits of the best weights
    best = torch.load(out_dir / "best.pt", map_location="cpu", weights_only=False)
    net.load_state_dict(best["state_dict"])
    net.eval()
    with torch.no_grad():
        lg = np.concatenate([logits_of(xv) for _, xv, _ in vsets])
    yv = np.concatenate([v[2] for v in vsets])
    t = fit_temperature(lg, yv)
    best["temperature"] = t
    best["val_calibration"] = {
        "brier_uncalibrated": brier_score(softmax(lg)[:, 1], yv),
        "brier_calibrated": brier_score(softmax(lg, t)[:, 1], yv),
        "sets": [tag or "clean" for tag, _, _ in vsets],
        **{f"val_{k}": v for k, v in binary_metrics(softmax(lg, t)[:, 1], yv).items()},
    }
    _atomic_save(best, out_dir / "best.pt")
    summary.update(kind="classifier", parameters=count_parameters(net), steps_per_epoch=steps,
                   device=str(device), training_data=statement, n_train=len(tr), n_val=len(va),
                   temperature=t, val_calibration=best["val_calibration"])
    return summary


def _train_cls_slabs(manifest: Path, out_dir: Path, cfg: TrainConfig) -> dict:
    """Classifier training on items re-cut at the measured isthmus (see :func:`train_cls`)."""
    device = _setup(cfg)
    out_dir = Path(out_dir)
    cache = Path(cfg.cache_dir) if cfg.cache_dir else out_dir / "cache"
    sl = D.build_cls_slabs(manifest, cache, cfg.cutoff_mm)
    split = patient_splits(sl.patient_ids, cfg.n_repeats, cfg.val_fraction, cfg.seed)[cfg.split]
    tr, va = split_indices(sl.patient_ids, split)
    trs = set(int(i) for i in tr)
    err = sl.centre_error()
    err_tr = (sl.centre - sl.truth_centre)[[i for i in range(len(sl.y)) if i in trs
                                            and sl.measured[i]
                                            and np.all(np.isfinite(sl.truth_centre[i]))]]
    if cfg.centre_jitter_mm is None:
        jitter = D.robust_spread(err_tr)
    else:
        jitter = (float(cfg.centre_jitter_mm),) * 3
    aug = D.ClsAugment(centre_jitter_mm=jitter, domain_randomisation=cfg.domain_randomisation,
                       p_randomise=cfg.p_randomise)
    clean = np.stack([D.cut_cls_item(sl, i) for i in range(len(sl.y))])
    mean, std = D.mean_std([clean[tr]])
    net, arch, init, mean, std = _cls_net(cfg, list(clean.shape[1:]), mean, std)
    net = net.to(device)

    def batch(idx, rng):
        return np.stack([D.cut_cls_item(sl, int(i), rng, aug) for i in idx])

    def val_set():
        sets = [("", clean[va], sl.y[va])]
        if cfg.domain_randomisation:
            rng = np.random.default_rng([cfg.seed, 99])
            vaug = D.ClsAugment(centre_jitter_mm=jitter, domain_randomisation=True, p_randomise=1.0)
            xr = np.stack([D.cut_cls_item(sl, int(i), rng, vaug) for i in va])
            sets.append(("randomised", xr, sl.y[va]))
        return sets

    n_meas = int(sl.measured.sum())
    statement = (_data_statement(manifest, len(set(sl.patient_ids)), len(set(split[0])),
                                 len(set(split[1])))
                 + f"; isthmus slices re-cut around the isthmus measured by c2net.measure on the "
                   f"true masks ({n_meas} of {len(sl.y)} sides; the rest at the true isthmus), "
                   f"centre jittered by sd {', '.join(f'{v:.2f}' for v in jitter)} mm (x, y, z)")
    if cfg.p_mirror > 0:
        statement += (f"; {100 * cfg.p_mirror:.0f} % of the patches mirrored left-right with "
                      "the pedicle sides swapped")
    if cfg.domain_randomisation:
        statement += (f"; SynthSeg-style domain randomisation of {100 * cfg.p_randomise:.0f} % "
                      "of the items (c2net.training.randomise)")
    centre_error = {"n": int(len(err)),
                    "median_abs_mm": [float(v) for v in np.median(np.abs(err), axis=0)]
                    if len(err) else None,
                    "robust_sd_mm": list(D.robust_spread(err)) if len(err) else None,
                    "max_norm_mm": float(np.linalg.norm(err, axis=1).max()) if len(err) else None}
    summary = _fit_cls(net, arch, init, mean, std, sl.y, tr, va, batch, val_set, split, statement,
                       D.CLS_VIEW, cfg, out_dir, device,
                       {"centre_jitter_mm": list(jitter), "measured_centre_error": centre_error})
    summary.update(class_balance={"high_risk": int(sl.y.sum()), "low_risk": int((1 - sl.y).sum())},
                   centre_jitter_mm=list(jitter), measured_centre_error=centre_error,
                   n_measured_sides=n_meas)
    _write_summary(summary, out_dir)
    return summary
