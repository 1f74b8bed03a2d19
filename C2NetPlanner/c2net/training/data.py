"""Training data: manifest readers, preprocessing into cached arrays, augmentation, batches.

Two manifest forms are read:

* **CT manifest** (``c2net phantom --cohort N DIR`` writes ``DIR/manifest.csv``): one row per
  patient with columns ``patient_id, ct, labels, truth`` (paths, relative to the manifest's
  folder or absolute) and optionally ``mpd_left_mm, mpd_right_mm``. ``labels`` holds the label
  values of docs/ARCHITECTURE.md (2 = left C2 pedicle, 3 = right C2 pedicle) and ``truth`` a
  JSON with at least ``c2_center_lps_mm`` (and per-side MPD / isthmus centre).
* **Slice manifest** (the paper's own form): one row per pedicle with columns
  ``patient_id, side, label, slice1, ..., slice5`` - five JPEG/PNG slices (already windowed
  grey images, 0..255) ordered wide -> narrow, ``label`` 1 = high risk, 0 = low risk.

All network inputs use the window W2000/L800: HU -200..1800 -> 0..1 ("window units"); greyscale
images of the paper's form are taken as already windowed (pixel / 255). Preprocessed arrays are
cached as ``.npz`` files keyed by the source paths, their modification times and the
preprocessing parameters, so epochs after the first cost no I/O or resampling.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..classifier_view import APERTURE_RADIUS_MM, aperture_radius_mm, own_side_view
from ..errors import InputError

WINDOW_LEVEL_HU = 800.0
WINDOW_WIDTH_HU = 2000.0
HIGH_RISK_CUTOFF_MM = 4.78
#: canonical ROI of the segmentation network, (x = L, y = P, z = S) in mm at 1 mm spacing
SEG_ROI_MM = (96, 96, 48)
SEG_JITTER_MM = 6
CLS_SLICE_SHAPE = (5, 64, 64)
#: What the classifier is shown of a CT case: the own-side aperture (c2net.classifier_view).
#: Items given as the paper's five JPEG slices are shown as they are ("full_crop").
CLS_VIEW = "own_side_aperture"
LEFT_PEDICLE_LABEL, RIGHT_PEDICLE_LABEL = 2, 3


def window_unit(hu: np.ndarray, level: float = WINDOW_LEVEL_HU,
                width: float = WINDOW_WIDTH_HU) -> np.ndarray:
    """HU -> 0..1 with the W/L window (float32)."""
    lo = level - width / 2.0
    return np.clip((np.asarray(hu, dtype=np.float32) - lo) / width, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------- manifests
@dataclass
class CTCase:
    """One patient of a CT manifest (paths absolute)."""

    patient_id: str
    ct: Path
    labels: Path
    truth: Path
    mpd_mm: Dict[str, Optional[float]] = field(default_factory=dict)  # side -> MPD (mm)

    def load_truth(self) -> dict:
        with open(self.truth, encoding="utf-8") as f:
            return json.load(f)


@dataclass
class SliceItem:
    """One pedicle of the paper's slice form."""

    patient_id: str
    side: str
    label: int
    slices: List[Path]


def _read_rows(path: Path) -> List[dict]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"manifest {path} does not exist",
                         "Give a CSV written by 'c2net phantom --cohort N DIR' (DIR/manifest.csv) "
                         "or a slice manifest (patient_id, side, label, slice1..slice5).")
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise InputError(f"manifest {path} has no rows", "Add one row per patient (or pedicle).")
    return rows


def _resolve(base: Path, value: str) -> Path:
    p = Path(value.strip())
    return p if p.is_absolute() else (base / p)


def manifest_format(path: Path) -> str:
    """``"ct"`` or ``"slices"`` from the manifest's columns."""
    cols = set(_read_rows(path)[0].keys())
    if {"ct", "labels", "truth"} <= cols:
        return "ct"
    if {"side", "label", "slice1"} <= cols:
        return "slices"
    raise InputError(f"manifest {path} has neither CT columns (ct, labels, truth) nor slice "
                     f"columns (side, label, slice1..slice5); it has {sorted(cols)}",
                     "See 'c2net train --help' for the two manifest forms.")


def _float_or_none(v: Optional[str]) -> Optional[float]:
    try:
        return None if v is None or str(v).strip() == "" else float(v)
    except ValueError:
        return None


def read_ct_manifest(path: Path) -> List[CTCase]:
    rows = _read_rows(path)
    base = Path(path).resolve().parent
    out = []
    for i, r in enumerate(rows):
        missing = [c for c in ("ct", "labels", "truth") if not r.get(c)]
        if missing:
            raise InputError(f"manifest row {i + 2} lacks {missing}", "Fill in every path column.")
        pid = (r.get("patient_id") or f"row{i + 2}").strip()
        case = CTCase(pid, _resolve(base, r["ct"]), _resolve(base, r["labels"]),
                      _resolve(base, r["truth"]),
                      {"left": _float_or_none(r.get("mpd_left_mm")),
                       "right": _float_or_none(r.get("mpd_right_mm"))})
        for p in (case.ct, case.labels, case.truth):
            if not p.exists():
                raise InputError(f"manifest row {i + 2}: {p} does not exist",
                                 "Paths are relative to the manifest's folder.")
        out.append(case)
    return out


def read_slice_manifest(path: Path) -> List[SliceItem]:
    rows = _read_rows(path)
    base = Path(path).resolve().parent
    out = []
    for i, r in enumerate(rows):
        side = (r.get("side") or "").strip().lower()
        if side not in ("left", "right"):
            raise InputError(f"slice manifest row {i + 2}: side {side!r} is not left/right",
                             "Write 'left' or 'right' (patient sides).")
        try:
            label = int(float(r["label"]))
        except (KeyError, ValueError):
            raise InputError(f"slice manifest row {i + 2}: label must be 0 or 1",
                             "1 = high risk (MPD < 4.78 mm), 0 = low risk.") from None
        paths = [_resolve(base, r.get(f"slice{k}", "")) for k in range(1, 6)]
        for p in paths:
            if not p.is_file():
                raise InputError(f"slice manifest row {i + 2}: {p} does not exist",
                                 "Give five slice images per pedicle (slice1..slice5).")
        out.append(SliceItem(str(r.get("patient_id", f"row{i + 2}")).strip(), side, label, paths))
    return out


# --------------------------------------------------------------------------- caching
def _cache_key(paths: Sequence[Path], params: dict) -> str:
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{Path(p).resolve()}|{st.st_mtime_ns}|{st.st_size}".encode())
    return h.hexdigest()[:20]


def _cached(cache_dir: Optional[Path], name: str, paths: Sequence[Path], params: dict, build):
    if cache_dir is None:
        return build()
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    f = cache_dir / f"{name}_{_cache_key(paths, params)}.npz"
    if f.exists():
        with np.load(f) as z:
            return {k: z[k] for k in z.files}
    out = build()
    tmp = f.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **out)
    os.replace(tmp, f)
    return out


def _progress(i: int, n: int, what: str) -> None:
    if sys.stderr.isatty() or i == n or i % max(1, n // 10) == 0:
        sys.stderr.write(f"\r{what}: {i}/{n}" + ("\n" if i == n else ""))
        sys.stderr.flush()


# --------------------------------------------------------------------------- segmentation
def canonical_roi(ct: sitk.Image, center_lps: Sequence[float], size_mm: Sequence[float] = SEG_ROI_MM,
                  margin_mm: float = 0.0, interpolator: str = "linear") -> sitk.Image:
    """Canonical 1 mm crop of ``size_mm`` (+ margin on every side) around ``center_lps``,
    exactly as the run-time segmentation and classifier inputs are cropped
    (:func:`c2net.geometry.canonical_crop`)."""
    from ..geometry import canonical_crop

    size = np.asarray(size_mm, dtype=float) + 2.0 * margin_mm
    return canonical_crop(ct, center_lps, size, interpolator)


def preprocess_seg_case(case: CTCase, roi_mm: Sequence[int] = SEG_ROI_MM,
                        margin_mm: int = SEG_JITTER_MM, cache_dir: Optional[Path] = None) -> dict:
    """Canonical 1 mm crop of one case for the U-Net.

    Returns ``hu`` int16 [S, P, L]; ``fraction`` uint8 [2, S, P, L], the share (0-255) of each
    1 mm voxel covered by the left / right pedicle label (partial volume: the label is
    resampled like the CT, anti-aliased, not nearest-neighbour); and ``target`` uint8
    [S, P, L] (0 background, 1 left, 2 right), the side covering at least half of the voxel.

    Why fractions: the truth lives on the CT's own, often finer grid. A nearest-neighbour
    1 mm label aliases the pedicle surface by up to half a voxel, which alone caps the Dice
    back on the CT grid near 0.93 for a 5 mm pedicle; a network taught the covered share
    can be resampled back smoothly (:func:`c2net.segment.segment_pedicles`).

    The crop is the ROI around the true C2 centre enlarged by ``margin_mm`` on every side, so
    training can jitter the ROI by up to ``margin_mm`` (mimicking localisation error).
    """
    params = {"v": 2, "roi": list(roi_mm), "margin": margin_mm}

    def build():
        truth = case.load_truth()
        center = truth["c2_center_lps_mm"]
        ct = sitk.ReadImage(str(case.ct), sitk.sitkFloat32)
        lab = sitk.ReadImage(str(case.labels))
        hu = sitk.GetArrayFromImage(canonical_roi(ct, center, roi_mm, margin_mm))
        fractions = []
        for value in (LEFT_PEDICLE_LABEL, RIGHT_PEDICLE_LABEL):
            side = sitk.Cast(lab == value, sitk.sitkFloat32)
            f = sitk.GetArrayFromImage(canonical_roi(side, center, roi_mm, margin_mm))
            fractions.append(np.clip(np.round(f * 255.0), 0, 255).astype(np.uint8))
        fraction = np.stack(fractions)
        return {"hu": np.clip(np.round(hu), -32768, 32767).astype(np.int16),
                "fraction": fraction, "target": hard_target(fraction)}

    return _cached(cache_dir, "seg", [case.ct, case.labels, case.truth], params, build)


def hard_target(fraction: np.ndarray) -> np.ndarray:
    """[2, ...] uint8 side fractions (0-255) -> labels: the side covering >= half the voxel."""
    left, right = fraction[0].astype(np.int16), fraction[1].astype(np.int16)
    out = np.zeros(fraction.shape[1:], np.uint8)
    out[(left >= 128) & (left >= right)] = 1
    out[(right >= 128) & (right > left)] = 2
    return out


def soft_target(fraction: np.ndarray) -> np.ndarray:
    """[2, ...] uint8 side fractions -> [3, ...] float32 class shares (background, left, right)."""
    f = fraction.astype(np.float32) / 255.0
    total = f.sum(axis=0)
    f = np.where(total > 1.0, f / np.maximum(total, 1e-6), f)
    return np.concatenate([(1.0 - f.sum(axis=0))[None], f]).astype(np.float32)


# --------------------------------------------------------------------------- classification
def _truth_side(truth: dict, side: str) -> dict:
    """Per-side truth entry, whatever nesting the phantom uses."""
    for key in ("sides", "pedicles"):
        if isinstance(truth.get(key), dict) and side in truth[key]:
            return truth[key][side]
    if isinstance(truth.get(side), dict):
        return truth[side]
    return {}


def truth_isthmus_centre(truth: dict, side: str) -> Optional[Sequence[float]]:
    """The true isthmus centre (LPS mm) of one side, whatever nesting the truth uses, or None."""
    return (_truth_side(truth, side).get("isthmus_center_lps_mm")
            or truth.get(f"isthmus_center_{side}_lps_mm"))


def truth_mpd(case: CTCase, truth: dict, side: str) -> float:
    """The true MPD of one side (manifest column first, then truth.json)."""
    v = case.mpd_mm.get(side)
    if v is None:
        st = _truth_side(truth, side)
        v = st.get("mpd_mm", truth.get(f"mpd_{side}_mm"))
    if v is None:
        raise InputError(f"case {case.patient_id}: no MPD for the {side} side",
                         "Give mpd_left_mm / mpd_right_mm columns or MPD in truth.json.")
    return float(v)


def fallback_isthmus_crop(ct: sitk.Image, isthmus_center_lps: Sequence[float],
                          pedicle_mask: Optional[sitk.Image] = None,
                          shape: Sequence[int] = CLS_SLICE_SHAPE) -> Tuple[np.ndarray, List]:
    """The classifier input at the phantom's *true* isthmus (``--no-measure``, or when the
    measurement fails on a case).

    Five consecutive canonical 1 mm axial slices (S, P, L) centred on the true isthmus centre,
    in-plane crop ``shape[1:]``. Slices are ordered wide -> narrow by the pedicle mask's area
    the way ``c2net.measure.isthmus_slices`` does it: the stack is reversed when
    the superior end has the larger area (inferior -> superior otherwise). Returns
    (hu (5, H, W), slice centres LPS).
    """
    d, h, w = (int(s) for s in shape)
    size = (w, h, d)
    img = canonical_roi(ct, isthmus_center_lps, size)
    hu = sitk.GetArrayFromImage(img).astype(np.float32)[:d, :h, :w]
    centres = [tuple(np.asarray(isthmus_center_lps, float) + np.array([0, 0, k - (d - 1) / 2]))
               for k in range(d)]
    order = list(range(d))
    if pedicle_mask is not None:
        m = sitk.GetArrayFromImage(canonical_roi(pedicle_mask, isthmus_center_lps, size, 0.0,
                                                 "label"))[:d, :h, :w]
        area = (m > 0).reshape(d, -1).sum(axis=1)
        if area[0] < area[-1]:
            order = order[::-1]
    return hu[order], [centres[k] for k in order]


def _isthmus_slices_from_measure(ct: sitk.Image, mask: sitk.Image, side: str):
    """The run-time classifier input: the isthmus found by c2net.measure on ``mask``."""
    from .. import measure

    m = measure.measure_pedicle(ct, mask, side)
    s = measure.isthmus_slices(ct, m, mask)
    return np.asarray(s.hu, dtype=np.float32)


def preprocess_cls_case(case: CTCase, cache_dir: Optional[Path] = None,
                        use_measure: bool = True) -> dict:
    """Both sides of one case: ``x`` (2, 5, 64, 64) window units, ``mpd`` (2,), ``source``.

    Uses ``c2net.measure.measure_pedicle`` + ``isthmus_slices`` on the true pedicle mask when
    that module exists (the run-time path), else :func:`fallback_isthmus_crop` at the true
    isthmus centre.
    """
    params = {"v": 2, "shape": list(CLS_SLICE_SHAPE), "measure": bool(use_measure),
              "view": CLS_VIEW}

    def build():
        truth = case.load_truth()
        ct = sitk.ReadImage(str(case.ct), sitk.sitkFloat32)
        lab = sitk.ReadImage(str(case.labels))
        xs, mpds, sources = [], [], []
        centres = {sd: truth_isthmus_centre(truth, sd) for sd in ("left", "right")}
        for side, value in (("left", LEFT_PEDICLE_LABEL), ("right", RIGHT_PEDICLE_LABEL)):
            mask = sitk.Cast(lab == value, sitk.sitkUInt8)
            src = "measure"
            try:
                hu = _isthmus_slices_from_measure(ct, mask, side) if use_measure else None
            except Exception as exc:  # noqa: BLE001 - measured, recorded, then the fallback
                hu, src = None, f"fallback_truth_isthmus after measure {type(exc).__name__}"
            if hu is None:
                centre = centres[side]
                if centre is None:
                    raise InputError(f"case {case.patient_id}: no isthmus centre for the {side} side",
                                     "The fallback crop needs isthmus_center_lps_mm in truth.json.")
                hu, _ = fallback_isthmus_crop(ct, centre, mask)
                src = "fallback_truth_isthmus" if src == "measure" else src
            if hu.shape != CLS_SLICE_SHAPE:
                raise InputError(f"isthmus slices have shape {hu.shape}, expected {CLS_SLICE_SHAPE}")
            own, other = centres[side], centres["right" if side == "left" else "left"]
            radius = aperture_radius_mm(own, other) if own is not None else APERTURE_RADIUS_MM
            xs.append(window_unit(own_side_view(hu, radius)))
            mpds.append(truth_mpd(case, truth, side))
            sources.append(src)
        return {"x": np.stack(xs).astype(np.float32), "mpd": np.asarray(mpds, np.float32),
                "source": np.asarray(sources)}

    return _cached(cache_dir, "cls", [case.ct, case.labels, case.truth], params, build)


def load_slice_item(item: SliceItem, shape: Sequence[int] = CLS_SLICE_SHAPE) -> np.ndarray:
    """Five greyscale images -> (5, H, W) window units (pixel / 255), resized to ``shape[1:]``."""
    from PIL import Image

    out = []
    for p in item.slices:
        with Image.open(p) as im:
            g = im.convert("L")
            if g.size != (shape[2], shape[1]):
                g = g.resize((shape[2], shape[1]), Image.BILINEAR)
            out.append(np.asarray(g, dtype=np.float32) / 255.0)
    return np.stack(out)


@dataclass
class ClsDataset:
    """Classifier items: x (N, 5, H, W) window units, y (N,) 1 = high risk, ids, sides, mpd."""

    x: np.ndarray
    y: np.ndarray
    patient_ids: List[str]
    sides: List[str]
    mpd_mm: np.ndarray
    source: str


def build_cls_dataset(manifest: Path, cache_dir: Optional[Path] = None,
                      cutoff_mm: float = HIGH_RISK_CUTOFF_MM, use_measure: bool = True) -> ClsDataset:
    fmt = manifest_format(manifest)
    xs, ys, pids, sides, mpds, srcs = [], [], [], [], [], set()
    if fmt == "ct":
        cases = read_ct_manifest(manifest)
        for i, case in enumerate(cases):
            d = preprocess_cls_case(case, cache_dir, use_measure)
            for k, side in enumerate(("left", "right")):
                xs.append(d["x"][k])
                mpds.append(float(d["mpd"][k]))
                ys.append(int(d["mpd"][k] < cutoff_mm))
                pids.append(case.patient_id)
                sides.append(side)
            srcs.update(str(s) for s in d["source"])
            _progress(i + 1, len(cases), "preparing classifier data")
    else:
        for item in read_slice_manifest(manifest):
            xs.append(load_slice_item(item))
            ys.append(item.label)
            pids.append(item.patient_id)
            sides.append(item.side)
            mpds.append(float("nan"))
        srcs.add("slice_images")
    return ClsDataset(np.stack(xs).astype(np.float32), np.asarray(ys, np.int64), pids, sides,
                      np.asarray(mpds, np.float32), "+".join(sorted(srcs)))


# --------------------------------------------------------------------------- augmentation
def _affine_2d(img: np.ndarray, center_rc: Sequence[float], out_hw: Sequence[int], angle_deg: float,
               scale: float, order: int, cval: float,
               displacement: Optional[np.ndarray] = None) -> np.ndarray:
    """Crop ``out_hw`` around ``center_rc`` of a 2D array after rotation/scaling about it;
    ``displacement`` (2, *out_hw) pixels, when given, deforms it elastically on top."""
    a = np.deg2rad(angle_deg)
    m = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) / scale
    oc = (np.asarray(out_hw, float) - 1) / 2.0
    offset = np.asarray(center_rc, float) - m @ oc
    if displacement is None:
        return ndimage.affine_transform(img, m, offset=offset, output_shape=tuple(out_hw),
                                        order=order, cval=cval, mode="constant")
    rr, cc = np.mgrid[0:out_hw[0], 0:out_hw[1]].astype(float)
    rr, cc = rr + displacement[0], cc + displacement[1]
    coords = np.stack([m[0, 0] * rr + m[0, 1] * cc + offset[0],
                       m[1, 0] * rr + m[1, 1] * cc + offset[1]])
    return ndimage.map_coordinates(img, coords, order=order, cval=cval, mode="constant")


@dataclass
class SegAugment:
    """In-plane CT augmentations for the U-Net.

    A plain left-right flip would be wrong (the classes are patient sides); ``p_mirror``
    instead mirrors the whole volume across the sagittal plane through the ROI centre **and
    swaps the two pedicle classes** with it, so "left" stays the patient's left: a mirrored
    neck is a plausible neck whose left pedicle is the original right one. It doubles the
    pedicles each side learns from (useful when a few real scans are all there is).
    """

    max_rotation_deg: float = 10.0
    scale_range: Tuple[float, float] = (0.9, 1.1)
    intensity_shift_hu: float = 50.0
    intensity_scale: Tuple[float, float] = (0.95, 1.05)
    max_noise_hu: float = 30.0
    #: SynthSeg-style randomised tissue intensities, bias field, blur, noise and gamma per
    #: patch (:mod:`c2net.training.randomise`) instead of the shift/scale/noise above; off by
    #: default (c2net-unet 1.0.0 was trained without it; 2.0.0 with it).
    domain_randomisation: bool = False
    #: With domain randomisation: the share of patches randomised (the rest keep the source's
    #: own look with the light shift/scale/noise above), and whether they are also
    #: elastically deformed and given a drawn slice profile.
    p_randomise: float = 1.0
    elastic: bool = True
    #: Share of patches mirrored left-right with the sides swapped (0: never; c2net-unet
    #: 1.0.0 and 2.0.0 were trained without it). No random draw is made when 0, so runs
    #: without it stay identical.
    p_mirror: float = 0.0


class SegSampler:
    """Random training patches from cached canonical crops (see :func:`preprocess_seg_case`).

    Each patch: a volume (uniformly, or by ``weights``: e.g. the few real scans oversampled
    beside many phantoms), a jittered ROI (±margin mm, mimicking localisation error), an axial
    slice that contains pedicle with probability ``p_pedicle`` (else any ROI slice), an
    in-plane patch of ``patch`` pixels near the pedicle, rotated/scaled, intensity-shifted and
    noised in HU, then windowed. With domain randomisation a patch (share ``p_randomise``)
    instead gets a drawn scanner's slice profile across the neighbouring slices, an elastic
    deformation and the randomised look of :mod:`c2net.training.randomise`. Returns ``(x (B, 1, P, P) window units, y (B, 3, P, P) float32)``: ``y`` holds the
    class shares (background, left, right) of each pixel (see :func:`soft_target`).
    """

    def __init__(self, volumes: Sequence[dict], roi_mm: Sequence[int] = SEG_ROI_MM,
                 margin_mm: int = SEG_JITTER_MM, patch: int = 64, p_pedicle: float = 0.8,
                 augment: Optional[SegAugment] = None,
                 weights: Optional[Sequence[float]] = None):
        self.volumes = list(volumes)
        if weights is not None:
            w = np.asarray(weights, float)
            if w.shape != (len(self.volumes),) or np.any(w < 0) or w.sum() <= 0:
                raise ValueError("weights: one non-negative weight per volume, not all zero")
            self.weights = w / w.sum()
        else:
            self.weights = None
        self.roi = (int(roi_mm[2]), int(roi_mm[1]), int(roi_mm[0]))  # S, P, L
        self.margin = int(margin_mm)
        self.patch = int(patch)
        self.p_pedicle = p_pedicle
        self.augment = augment if augment is not None else SegAugment()
        self._ped_slices = [np.flatnonzero(v["target"].reshape(v["target"].shape[0], -1).any(1))
                            for v in self.volumes]
        self._levels = None
        if self.augment.domain_randomisation:
            from .randomise import source_levels
            self._levels = [source_levels(v["hu"]) for v in self.volumes]

    def sample(self, rng: np.random.Generator, batch: int) -> Tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        a = self.augment
        for _ in range(batch):
            if self.weights is None:
                k = int(rng.integers(len(self.volumes)))
            else:
                k = int(rng.choice(len(self.volumes), p=self.weights))
            hu, tg = self.volumes[k]["hu"], self.volumes[k]["target"]
            fr = self.volumes[k]["fraction"]
            if a.p_mirror > 0 and rng.random() < a.p_mirror:
                # mirror L (the last axis, symmetric margins) and swap left <-> right
                hu, tg, fr = hu[..., ::-1], tg[..., ::-1], fr[::-1, ..., ::-1]
            j = rng.integers(-self.margin, self.margin + 1, size=3)
            s0, p0, l0 = (self.margin + j)
            ped = self._ped_slices[k]
            ped = ped[(ped >= s0) & (ped < s0 + self.roi[0])]
            if len(ped) and rng.random() < self.p_pedicle:
                z = int(rng.choice(ped))
            else:
                z = int(s0 + rng.integers(self.roi[0]))
            rand = self._levels is not None and rng.random() < a.p_randomise
            scanner = None
            if rand:
                from .randomise import SLAB_HALF, DomainRandomisation, draw_scanner, slab_weights
                dr = DomainRandomisation()
                scanner = draw_scanner(rng, dr)
                w = slab_weights(scanner["slice_mm"])
                zs = np.clip(np.arange(z - SLAB_HALF, z + SLAB_HALF + 1), 0, hu.shape[0] - 1)
                slab = hu[zs, p0:p0 + self.roi[1], l0:l0 + self.roi[2]].astype(np.float32)
                img = np.tensordot(w.astype(np.float32), slab, axes=1)
            else:
                img = hu[z, p0:p0 + self.roi[1], l0:l0 + self.roi[2]].astype(np.float32)
            lab = tg[z, p0:p0 + self.roi[1], l0:l0 + self.roi[2]]
            frac = fr[:, z, p0:p0 + self.roi[1], l0:l0 + self.roi[2]].astype(np.float32)
            fg = np.argwhere(lab > 0)
            if len(fg):
                c = fg[int(rng.integers(len(fg)))] + rng.uniform(-16, 16, size=2)
            else:
                c = rng.uniform(self.patch / 2, np.asarray(lab.shape) - self.patch / 2)
            half = self.patch / 2.0
            c = np.clip(c, half - 0.5, np.asarray(lab.shape) - half - 0.5)
            ang = rng.uniform(-a.max_rotation_deg, a.max_rotation_deg)
            sc = rng.uniform(*a.scale_range)
            out = (self.patch, self.patch)
            disp = None
            if rand and a.elastic:
                from .randomise import elastic_field
                disp = elastic_field(rng, out, dr)
            img = _affine_2d(img, c, out, ang, sc, 1, -1024.0, disp)
            frac = np.stack([_affine_2d(f, c, out, ang, sc, 1, 0.0, disp) for f in frac])
            if rand:
                from .randomise import randomise_patch
                img = randomise_patch(img, rng, self._levels[k], dr, scanner)
            else:
                img = img * rng.uniform(*a.intensity_scale) + rng.uniform(-a.intensity_shift_hu,
                                                                          a.intensity_shift_hu)
                img = img + rng.normal(0.0, rng.uniform(0, a.max_noise_hu), size=img.shape)
            xs.append(window_unit(img)[None])
            ys.append(soft_target(np.clip(np.round(frac), 0, 255).astype(np.uint8)))
        return np.stack(xs).astype(np.float32), np.stack(ys)


def seg_validation_set(volumes: Sequence[dict], roi_mm: Sequence[int] = SEG_ROI_MM,
                       margin_mm: int = SEG_JITTER_MM, max_slices: int = 192,
                       seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Fixed validation slices: full ROI slices (jittered deterministically) containing pedicle
    plus two background slices per case, evenly capped at ``max_slices``.

    Returns ``(x (N, 1, H, W), y (N, 3, H, W) float32 class shares)``; the hard labels are
    ``y.argmax(1)`` wherever a class covers more than half the pixel."""
    rng = np.random.default_rng([seed, 7])
    roi = (int(roi_mm[2]), int(roi_mm[1]), int(roi_mm[0]))
    per_case = max(3, int(np.ceil(max_slices / max(len(volumes), 1))))
    xs, ys = [], []
    for v in volumes:
        j = rng.integers(-margin_mm, margin_mm + 1, size=3)
        s0, p0, l0 = margin_mm + j
        hu = v["hu"][s0:s0 + roi[0], p0:p0 + roi[1], l0:l0 + roi[2]]
        tg = v["target"][s0:s0 + roi[0], p0:p0 + roi[1], l0:l0 + roi[2]]
        fr = v["fraction"][:, s0:s0 + roi[0], p0:p0 + roi[1], l0:l0 + roi[2]]
        ped = np.flatnonzero(tg.reshape(roi[0], -1).any(1))
        bg = np.setdiff1d(np.arange(roi[0]), ped)
        take = list(ped[np.linspace(0, len(ped) - 1, min(len(ped), per_case - 2)).astype(int)]) \
            if len(ped) else []
        if len(bg):
            take += list(rng.choice(bg, size=min(2, len(bg)), replace=False))
        for z in take:
            xs.append(window_unit(hu[z].astype(np.float32))[None])
            ys.append(soft_target(fr[:, z]))
    x, y = np.stack(xs), np.stack(ys)
    if len(x) > max_slices:
        keep = np.linspace(0, len(x) - 1, max_slices).astype(int)
        x, y = x[keep], y[keep]
    return x.astype(np.float32), y


def augment_cls(x: np.ndarray, rng: np.random.Generator, max_rotation_deg: float = 15.0,
                max_shift_px: float = 3.0, intensity_shift: float = 0.025,
                max_noise: float = 0.015, flip: bool = True) -> np.ndarray:
    """Augment classifier items (B, 5, H, W) in window units.

    Rotation and shift in-plane (same for the five slices), intensity shift, noise, and a
    left-right mirror (the risk label does not depend on the side). No scaling: the label is
    an absolute width in mm.
    """
    out = np.empty_like(x)
    b, d, h, w = x.shape
    for i in range(b):
        ang = rng.uniform(-max_rotation_deg, max_rotation_deg)
        c = (np.array([h, w], float) - 1) / 2 + rng.uniform(-max_shift_px, max_shift_px, 2)
        for s in range(d):
            out[i, s] = _affine_2d(x[i, s], c, (h, w), ang, 1.0, 1, 0.0)
        if flip and rng.random() < 0.5:
            out[i] = out[i, :, :, ::-1]
        out[i] += rng.uniform(-intensity_shift, intensity_shift)
        out[i] += rng.normal(0, rng.uniform(0, max_noise), size=out[i].shape)
    return np.clip(out, 0.0, 1.0)


def mean_std(arrays: Sequence[np.ndarray]) -> Tuple[float, float]:
    """Mean and standard deviation over all voxels of the given window-unit arrays."""
    n = sum(a.size for a in arrays)
    s = sum(float(np.sum(a, dtype=np.float64)) for a in arrays)
    ss = sum(float(np.sum(np.square(a, dtype=np.float64))) for a in arrays)
    mean = s / n
    return mean, float(np.sqrt(max(ss / n - mean * mean, 1e-12)))


# --------------------------------------------------------------------------- classifier slabs
#: Slices kept above and below the five classifier slices in a training slab: up to 2 for a
#: jitter of the centre along z and 2 (:data:`c2net.training.randomise.SLAB_HALF`) for a drawn
#: scanner's slice profile.
CLS_SLAB_HALO = 4
CLS_Z_JITTER_MAX = 2


def _measured_centre(ct: sitk.Image, mask: sitk.Image, side: str):
    """Isthmus centre (LPS mm) measured by ``c2net.measure`` on ``mask`` (the run-time
    path), or ``(None, reason)`` when the measurement refuses."""
    from .. import measure

    try:
        m = measure.measure_pedicle(ct, mask, side)
    except Exception as exc:  # noqa: BLE001 - recorded; the caller falls back to the truth
        return None, f"{type(exc).__name__}: {exc}"
    return np.asarray(m.isthmus_center_lps_mm, float), "measure"


def preprocess_cls_slab(case: CTCase, cache_dir: Optional[Path] = None) -> dict:
    """Both sides of one case as re-cuttable training slabs for the classifier.

    Per side (left, right): the isthmus is **measured** once with ``c2net.measure`` on the
    true pedicle mask (as at run time, where the mask comes from the segmenter), and the
    canonical 1 mm CT around that centre is kept as ``hu`` (2, 5 + 2 * CLS_SLAB_HALO, 64, 64)
    int16: its middle five slices are exactly the run-time crop
    (:func:`c2net.measure.isthmus_slices`), the halo lets training move the centre along z
    and apply a drawn slice profile. Also: ``area`` (2, Z) the true mask's area per slab
    slice (orders the five slices wide -> narrow like the run time), ``centre`` (2, 3) the
    measured centres, ``truth_centre`` (2, 3), ``mpd`` (2,), ``measured`` (2,) bool (False:
    the measurement refused and the slab is centred on the true isthmus), ``levels`` (4,)
    the case's own tissue levels (fat, soft, cancellous, cortex HU;
    :func:`c2net.training.randomise.source_levels` over the C2 box) for the domain
    randomisation. Cached: the measurement runs once per case.
    """
    from .randomise import source_levels

    z = CLS_SLICE_SHAPE[0] + 2 * CLS_SLAB_HALO
    size = (CLS_SLICE_SHAPE[2], CLS_SLICE_SHAPE[1], z)
    params = {"v": 1, "size": list(size)}

    def build():
        truth = case.load_truth()
        ct = sitk.ReadImage(str(case.ct), sitk.sitkFloat32)
        lab = sitk.ReadImage(str(case.labels))
        hus, areas, centres, tcs, mpds, measured, why = [], [], [], [], [], [], []
        for side, value in (("left", LEFT_PEDICLE_LABEL), ("right", RIGHT_PEDICLE_LABEL)):
            mask = sitk.Cast(lab == value, sitk.sitkUInt8)
            tc = truth_isthmus_centre(truth, side)
            c, reason = _measured_centre(ct, mask, side)
            if c is None:
                if tc is None:
                    raise InputError(f"case {case.patient_id}: the {side} isthmus could not be "
                                     f"measured ({reason}) and truth.json has no isthmus centre",
                                     "Give isthmus_center_lps_mm in truth.json.")
                c = np.asarray(tc, float)
            hu = sitk.GetArrayFromImage(canonical_roi(ct, c, size))[:z]
            m = sitk.GetArrayFromImage(canonical_roi(mask, c, size, 0.0, "label"))[:z]
            hus.append(np.clip(np.round(hu), -32768, 32767).astype(np.int16))
            areas.append((m > 0).reshape(z, -1).sum(axis=1).astype(np.int32))
            centres.append(c)
            tcs.append(np.asarray(tc, float) if tc is not None else np.full(3, np.nan))
            mpds.append(truth_mpd(case, truth, side))
            measured.append(reason == "measure")
            why.append(reason)
        box = sitk.GetArrayFromImage(canonical_roi(ct, truth["c2_center_lps_mm"], SEG_ROI_MM))
        return {"hu": np.stack(hus), "area": np.stack(areas), "centre": np.stack(centres),
                "truth_centre": np.stack(tcs), "mpd": np.asarray(mpds, np.float32),
                "measured": np.asarray(measured), "reason": np.asarray(why),
                "levels": np.asarray(source_levels(box), np.float32)}

    return _cached(cache_dir, "clsslab", [case.ct, case.labels, case.truth], params, build)


@dataclass
class ClsSlabs:
    """Classifier training slabs (see :func:`preprocess_cls_slab`), one row per pedicle."""

    hu: np.ndarray            # (N, Z, 64, 64) int16
    area: np.ndarray          # (N, Z)
    centre: np.ndarray        # (N, 3) measured isthmus centre
    other_centre: np.ndarray  # (N, 3) the other side's measured centre
    truth_centre: np.ndarray  # (N, 3)
    levels: np.ndarray        # (N, 4)
    measured: np.ndarray      # (N,) bool
    y: np.ndarray
    mpd_mm: np.ndarray
    patient_ids: List[str]
    sides: List[str]

    def centre_error(self) -> np.ndarray:
        """(n, 3) measured - true isthmus centre (mm) of the measured sides with a truth."""
        ok = self.measured & np.all(np.isfinite(self.truth_centre), axis=1)
        return (self.centre - self.truth_centre)[ok]


def build_cls_slabs(manifest: Path, cache_dir: Optional[Path] = None,
                    cutoff_mm: float = HIGH_RISK_CUTOFF_MM) -> ClsSlabs:
    """The slabs of every case of a CT manifest (measured once, cached)."""
    if manifest_format(manifest) != "ct":
        raise InputError("domain-randomised classifier training needs a CT manifest "
                         "(ct, labels, truth)",
                         "Give the manifest written by 'c2net phantom --cohort N DIR', or leave "
                         "--domain-randomisation out for the paper's slice form.")
    cases = read_ct_manifest(manifest)
    cols: Dict[str, list] = {k: [] for k in ("hu", "area", "centre", "other", "truth", "levels",
                                             "measured", "y", "mpd", "pid", "side")}
    for i, case in enumerate(cases):
        d = preprocess_cls_slab(case, cache_dir)
        for k, side in enumerate(("left", "right")):
            cols["hu"].append(d["hu"][k])
            cols["area"].append(d["area"][k])
            cols["centre"].append(d["centre"][k])
            cols["other"].append(d["centre"][1 - k])
            cols["truth"].append(d["truth_centre"][k])
            cols["levels"].append(d["levels"])
            cols["measured"].append(bool(d["measured"][k]))
            cols["mpd"].append(float(d["mpd"][k]))
            cols["y"].append(int(d["mpd"][k] < cutoff_mm))
            cols["pid"].append(case.patient_id)
            cols["side"].append(side)
        _progress(i + 1, len(cases), "measuring isthmi for the classifier")
    return ClsSlabs(np.stack(cols["hu"]), np.stack(cols["area"]), np.stack(cols["centre"]),
                    np.stack(cols["other"]), np.stack(cols["truth"]), np.stack(cols["levels"]),
                    np.asarray(cols["measured"]), np.asarray(cols["y"], np.int64),
                    np.asarray(cols["mpd"], np.float32), cols["pid"], cols["side"])


@dataclass
class ClsAugment:
    """How a classifier training item is re-cut from its slab (:func:`cut_cls_item`).

    ``centre_jitter_mm``: standard deviation (x, y, z in mm) of a normal shift of the
    measured isthmus centre, mimicking the measurement's own error (the trainer sets it from
    the measured-vs-true centres of the training cases); z is rounded to whole 1 mm slices
    and capped at :data:`CLS_Z_JITTER_MAX`. ``domain_randomisation``: with probability
    ``p_randomise`` the item gets a drawn scanner's slice profile and the SynthSeg-style look
    of :func:`c2net.training.randomise.randomise_stack`; otherwise (and always without it) a
    light intensity scale/shift and noise in HU. Rotation in-plane about the centre and a
    left-right mirror (the risk label does not depend on the side) apply to every item.
    """

    centre_jitter_mm: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    domain_randomisation: bool = False
    p_randomise: float = 1.0
    max_rotation_deg: float = 15.0
    flip: bool = True
    intensity_shift_hu: float = 50.0
    intensity_scale: Tuple[float, float] = (0.95, 1.05)
    max_noise_hu: float = 30.0


def cut_cls_item(slabs: ClsSlabs, i: int, rng: Optional[np.random.Generator] = None,
                 aug: Optional[ClsAugment] = None, as_hu: bool = False) -> np.ndarray:
    """Classifier input (5, 64, 64) window units of pedicle ``i`` cut from its slab.

    Without ``rng`` the run-time input exactly: the five middle slices (the measured centre),
    ordered wide -> narrow by the mask's area as :func:`c2net.measure.isthmus_slices` does,
    through the own-side aperture, windowed. With ``rng``: the centre moved (``aug``), the
    slices (re-)rendered from the slab - a drawn slice profile and the randomised look when
    randomised - rotated about the moved centre, then the same ordering, aperture and window,
    so that the aperture stays centred where the run time centres it. ``as_hu``: the ordered
    (5, 64, 64) HU slices before the aperture and the window (what
    :func:`c2net.classify.predict_risk` takes), no mirror.
    """
    from .randomise import (
        SLAB_HALF,
        DomainRandomisation,
        draw_scanner,
        randomise_stack,
        slab_weights,
    )

    hu = slabs.hu[i]
    n = CLS_SLICE_SHAPE[0]
    h0 = CLS_SLAB_HALO
    dxy = np.zeros(2)
    rand = False
    if rng is not None:
        aug = aug or ClsAugment()
        sx, sy, sz = aug.centre_jitter_mm
        jz = int(np.clip(np.round(rng.normal(0.0, sz)) if sz > 0 else 0,
                         -CLS_Z_JITTER_MAX, CLS_Z_JITTER_MAX))
        dxy = np.array([rng.normal(0.0, sy) if sy > 0 else 0.0,     # rows = P (y)
                        rng.normal(0.0, sx) if sx > 0 else 0.0])    # columns = L (x)
        rand = aug.domain_randomisation and rng.random() < aug.p_randomise
    else:
        jz = 0
    idx = np.arange(n) + h0 + jz
    if rand:
        dr = DomainRandomisation()
        scanner = draw_scanner(rng, dr)
        w = slab_weights(scanner["slice_mm"]).astype(np.float32)
        src = hu.astype(np.float32)
        stack = np.stack([np.tensordot(w, src[k - SLAB_HALF:k + SLAB_HALF + 1], axes=1)
                          for k in idx])
    else:
        stack = hu[idx].astype(np.float32)
    if rng is not None:
        ang = rng.uniform(-aug.max_rotation_deg, aug.max_rotation_deg)
        hw = stack.shape[1:]
        c = (np.asarray(hw, float) - 1) / 2.0 + dxy
        stack = np.stack([_affine_2d(s, c, hw, ang, 1.0, 1, -1024.0) for s in stack])
        if rand:
            stack = randomise_stack(stack, rng, tuple(float(v) for v in slabs.levels[i]), dr,
                                    scanner)
        else:
            body = stack > -500.0
            stack = np.where(body, stack * rng.uniform(*aug.intensity_scale)
                             + rng.uniform(-aug.intensity_shift_hu, aug.intensity_shift_hu),
                             stack)
            stack = stack + rng.normal(0.0, rng.uniform(0, aug.max_noise_hu), size=stack.shape)
    area = slabs.area[i][idx]
    if area[0] != area[-1] and area[0] < area[-1]:       # wide end first, as at run time
        stack = stack[::-1]
    if as_hu:
        return np.ascontiguousarray(stack, dtype=np.float32)
    radius = aperture_radius_mm(slabs.centre[i], slabs.other_centre[i])
    x = window_unit(own_side_view(stack, radius))
    if rng is not None and aug.flip and rng.random() < 0.5:
        x = x[:, :, ::-1]
    return np.ascontiguousarray(x, dtype=np.float32)


def robust_spread(err: np.ndarray, floor_mm: float = 0.5) -> Tuple[float, float, float]:
    """Per-axis robust standard deviation (1.4826 x MAD about the median), at least
    ``floor_mm``: the typical error of the measured isthmus centre."""
    e = np.asarray(err, float).reshape(-1, 3)
    if len(e) < 3:
        return (floor_mm,) * 3
    mad = 1.4826 * np.median(np.abs(e - np.median(e, axis=0)), axis=0)
    return tuple(float(max(v, floor_mm)) for v in mad)
