"""C2 pedicle segmentation with the U-Net (ONNX Runtime), mapped back onto the input grid.

Steps (:func:`segment_pedicles`):

1. Crop a canonical 1 mm ROI around the C2 centre (size from the model metadata, 96 x 96 mm
   in-plane x 48 mm by default; air, -1024 HU, outside the scan).
2. Window W2000/L800, standardise with the model's training mean/std, three identical channels.
3. Run the U-Net on every axial slice of the ROI (:data:`BATCH` slices per call): softmax
   probabilities of background / left / right.
4. Per side keep the largest 3D connected component of the 1 mm argmax whose centroid lies on
   that side of the ROI's midline (patient left = +x in LPS) and that is at least
   ``min_voxels`` mm^3.
5. Map back onto the input CT's own grid **through the probabilities**: each side's
   probability, kept on its component and the 26 neighbours, is interpolated linearly onto
   the CT's voxels and thresholded at :data:`SURFACE_PROBABILITY`, so the surface lands
   between 1 mm voxels instead of on their staircase (nearest-neighbour 1 mm labels alone cap
   the Dice on a 0.5 mm CT near 0.93). ``c2net train seg`` teaches the network the share of
   each 1 mm voxel the pedicle covers (:func:`c2net.training.data.preprocess_seg_case`),
   which is what this interpolation assumes; a network trained on whole-voxel labels gains too.

Result: a uint8 ``sitk.Image`` with the CT's geometry: 0 background, 1 C2 pedicle left,
2 C2 pedicle right (patient sides; the network's classes are trained on patient-left/right
labels in the canonical LPS frame, which never flips: see :mod:`c2net.geometry`).

Two segmenters (:func:`segment_pedicles_checked`, what ``c2net assess`` runs): the U-Net
above and the training-free anatomical finder (:mod:`c2net.pedicle_finder`, on a worker thread
beside the U-Net: it needs none of its answer). A side the U-Net
leaves empty, implausibly small, a fragment of the pedicle corridor the finder found
(:data:`MIN_SHARE_OF_FINDER_VOLUME`), or off the pedicle (further than
:data:`MAX_UNET_TO_FINDER_ISTHMUS_MM` from the isthmus the finder found) takes the finder's mask; every side the U-Net segments is
checked against the finder's (:func:`apply_segmentation_check`, after measurement). Each side
says which segmenter produced its mask (``"unet"`` / ``"anatomical_finder"``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .background import Background
from .errors import InputError, SegmentationError
from .geometry import AIR_HU, canonical_crop, input_region, paste_region, resample_like, sub_grid
from .models import OnnxModel, load_model
from .progress import ProgressCallback, null_progress
from .results import PedicleMeasurement

UNET, FINDER = "unet", "anatomical_finder"

LEFT, RIGHT = 1, 2
DEFAULT_ROI_MM = (96, 96, 48)
MIN_PEDICLE_VOXELS = 15   # mm^3 at 1 mm; a C2 pedicle is several hundred
#: Probability at which the interpolated pedicle surface is drawn on the CT's grid. The
#: 1 mm covered-share map of a round 3-8 mm pedicle, linearly interpolated, crosses 0.5
#: slightly inside the true surface (the box-averaged profile is rounded at the rim): 0.45
#: keeps the area within about 2 % on average over sub-voxel positions for radii 1.5-4 mm.
SURFACE_PROBABILITY = 0.45
#: Slices per ONNX Runtime call: 16 of 96 x 96 run the 48-slice C2 box in 0.27-0.28 s on two
#: threads against 0.33-0.36 s in batches of 4 (identical outputs); progress still reports
#: three times per box.
BATCH = 16


def roi_size_mm(model: OnnxModel) -> Sequence[int]:
    """(x, y, z) ROI size in mm from the model metadata (multiples of 16 in-plane)."""
    roi = model.metadata.get("input", {}).get("roi_mm")
    if isinstance(roi, dict):
        return (int(roi["x_left"]), int(roi["y_posterior"]), int(roi["z_superior"]))
    return DEFAULT_ROI_MM


def standardise_slices(hu_szyx: np.ndarray, model: OnnxModel) -> np.ndarray:
    """(S, H, W) HU -> (S, 3, H, W) float32 network input (window, mean/std, 3 channels)."""
    level, width = model.window
    mean, std = model.mean_std
    x = np.clip((hu_szyx.astype(np.float32) - (level - width / 2.0)) / width, 0.0, 1.0)
    x = (x - mean) / std
    return np.repeat(x[:, None], 3, axis=1).astype(np.float32)


def predict_probabilities(hu_szyx: np.ndarray, model: OnnxModel,
                          progress: ProgressCallback = null_progress) -> np.ndarray:
    """Per-slice U-Net softmax (S, 3, H, W) float32 of a canonical ROI array."""
    x = standardise_slices(hu_szyx, model)
    out = np.zeros((x.shape[0], 3) + x.shape[2:], np.float32)
    name = model.session.get_inputs()[0].name
    n = x.shape[0]
    for i in range(0, n, BATCH):
        logits = model.session.run(None, {name: x[i:i + BATCH]})[0].astype(np.float32)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        out[i:i + BATCH] = e / e.sum(axis=1, keepdims=True)
        progress("segment", min(1.0, (i + BATCH) / n), f"slice {min(i + BATCH, n)}/{n}")
    return out


def predict_roi(hu_szyx: np.ndarray, model: OnnxModel,
                progress: ProgressCallback = null_progress) -> np.ndarray:
    """Per-slice U-Net argmax labels (S, H, W) uint8 of a canonical ROI array."""
    return np.argmax(predict_probabilities(hu_szyx, model, progress), axis=1).astype(np.uint8)


def keep_plausible_components(labels: np.ndarray, min_voxels: int = MIN_PEDICLE_VOXELS
                              ) -> np.ndarray:
    """Largest 3D component per side whose centroid is on that side of the ROI midline.

    ``labels`` is a canonical [S, P, L] array whose column axis runs patient right -> left and
    whose centre column is the C2 centre's sagittal plane.
    """
    out = np.zeros_like(labels)
    mid = (labels.shape[2] - 1) / 2.0
    struct = ndimage.generate_binary_structure(3, 1)
    for cls in (LEFT, RIGHT):
        comp, n = ndimage.label(labels == cls, structure=struct)
        if n == 0:
            continue
        flat = comp.ravel()
        sizes = np.bincount(flat, minlength=n + 1)[1:]
        # each component's mean column (sums of whole column numbers: exact in float64)
        column = np.broadcast_to(np.arange(comp.shape[2], dtype=np.float64), comp.shape)
        cols = np.bincount(flat, weights=column.ravel(), minlength=n + 1)[1:] / np.maximum(sizes, 1)
        best, best_size = 0, 0
        for k in range(n):
            on_side = cols[k] >= mid - 2 if cls == LEFT else cols[k] <= mid + 2
            if on_side and sizes[k] >= min_voxels and sizes[k] > best_size:
                best, best_size = k + 1, sizes[k]
        if best:
            out[comp == best] = cls
    return out


def segment_pedicles(ct: sitk.Image, c2_center_lps_mm: Sequence[float],
                     model: Optional[OnnxModel] = None, model_dir=None,
                     threads: Optional[int] = None,
                     progress: Optional[ProgressCallback] = None,
                     grid: Optional[sitk.Image] = None) -> sitk.Image:
    """Segment both C2 pedicles; returns a uint8 label image on ``ct``'s own grid (or on
    ``grid``, a part of it: :func:`c2net.geometry.sub_grid`).

    ``ct``: float HU image (any orientation/spacing). ``c2_center_lps_mm``: the C2 centre
    (LPS mm) from :func:`c2net.locate.locate_c2`. Labels: 0 background, 1 C2 pedicle left,
    2 C2 pedicle right (patient sides). Raises :class:`SegmentationError` when neither side
    yields a plausible pedicle.
    """
    progress = progress or null_progress
    if ct.GetDimension() != 3:
        raise InputError("segmentation needs a 3D CT image")
    centre = np.asarray(c2_center_lps_mm, dtype=float).reshape(-1)
    if centre.shape != (3,) or not np.all(np.isfinite(centre)):
        raise InputError(f"C2 centre {c2_center_lps_mm!r} is not a finite LPS point")
    model = model or load_model("segmentation", model_dir=model_dir, threads=threads)
    size = roi_size_mm(model)
    progress("segment", 0.0, "cropping the C2 region at 1 mm")
    roi = canonical_crop(ct, centre, size)    # only the CT under the ROI is read
    hu = sitk.GetArrayFromImage(roi)
    if float(np.mean(hu <= AIR_HU + 1)) > 0.9:
        raise SegmentationError("the C2 region lies (almost) entirely outside the scan",
                                "Check the C2 location (seed point) and the field of view.")
    prob = predict_probabilities(hu, model, progress)
    clean = keep_plausible_components(np.argmax(prob, axis=1).astype(np.uint8))
    if not clean.any():
        raise SegmentationError(
            "the network found no plausible C2 pedicle on either side",
            "Check that the C2 centre is right (give a seed point) and that the scan is a "
            "bone-window-capable CT of the cervical spine; or segment the pedicles manually "
            "and run 'c2net measure' on the mask.")
    out = labels_on_input_grid(prob, clean, roi, ct if grid is None else grid)
    progress("segment", 1.0, "pedicles segmented")
    return out


def labels_on_input_grid(prob: np.ndarray, clean: np.ndarray, roi: sitk.Image,
                         ct: sitk.Image, threshold: float = SURFACE_PROBABILITY) -> sitk.Image:
    """Left/right labels on ``ct``'s grid from the 1 mm softmax ``prob`` (S, 3, H, W) on ``roi``.

    Each side's probability, zeroed beyond the 26 neighbours of its kept component ``clean``, is
    interpolated linearly onto the CT voxels around the pedicles; a voxel takes the side whose
    probability exceeds ``threshold`` (and the other side's). Per side the largest connected
    piece is kept.
    """
    if not clean.any():
        return paste_region(np.zeros((1, 1, 1), np.uint8), np.zeros(3, int), np.zeros(3, int), ct)
    cube = np.ones((3, 3, 3), bool)      # the 26 neighbours: edge voxels touch diagonally too
    near = [ndimage.binary_dilation(clean == cls, structure=cube) for cls in (LEFT, RIGHT)]
    # only the box around both pedicles (+1 voxel) is interpolated onto the CT's grid
    box = ndimage.find_objects((near[0] | near[1]).astype(np.uint8))[0]
    box = tuple(slice(max(b.start - 1, 0), min(b.stop + 1, n))
                for b, n in zip(box, clean.shape))
    start = [b.start for b in box[::-1]]           # (i, j, k) of the box's first voxel

    def on_box(values: np.ndarray) -> sitk.Image:
        img = sitk.GetImageFromArray(values.astype(np.float32))
        img.SetSpacing(roi.GetSpacing())
        img.SetDirection(roi.GetDirection())
        img.SetOrigin(roi.TransformIndexToPhysicalPoint(start))
        return img

    maps = [on_box(np.where(nb, prob[:, cls], 0.0)[box]) for cls, nb in zip((LEFT, RIGHT), near)]
    region, i0, i1 = input_region(maps[0], ct)
    left, right = (sitk.GetArrayFromImage(resample_like(m, region, "linear", default_value=0.0))
                   for m in maps)
    labels = np.zeros(left.shape, np.uint8)
    labels[(left > threshold) & (left >= right)] = LEFT
    labels[(right > threshold) & (right > left)] = RIGHT
    for cls in (LEFT, RIGHT):
        comp, n = ndimage.label(labels == cls)
        if n > 1:
            sizes = np.bincount(comp.ravel())[1:]
            labels[(comp > 0) & (comp != 1 + int(np.argmax(sizes)))] = 0
    return paste_region(labels, i0, i1, ct, 0)


# ----------------------------------------------------------------------------- two segmenters
@dataclass
class SegmentationOutcome:
    """The pedicle labels (CT grid, 1 left / 2 right) and which segmenter produced each side."""

    labels: sitk.Image
    segmenter: Dict[str, Optional[str]]       # side -> UNET, FINDER or None (no mask)
    finder: object                            # c2net.pedicle_finder.FinderResult
    notes: List[str] = field(default_factory=list)
    finder_time_s: float = 0.0


#: A U-Net side whose mask lies further than this (mm) from the isthmus the anatomical finder
#: found on that side is not on the pedicle (it segmented something else: a facet, the body's
#: rim, C3): implausible, and the finder's mask stands in. A mask on the right pedicle always
#: contains or touches its isthmus.
MAX_UNET_TO_FINDER_ISTHMUS_MM = 5.0
#: A U-Net side holding less than this share of the volume of the finder's mask on that side
#: (the bone of the corridor within ~2 mm of its clearance over 13 mm: the isthmus's whole
#: cross-section) is a fragment, not a pedicle: a mask that spans the isthmus covers most of it.
MIN_SHARE_OF_FINDER_VOLUME = 0.25


def _side_volume_mm3(labels: Optional[sitk.Image], value: int) -> float:
    if labels is None:
        return 0.0
    n = int(np.count_nonzero(sitk.GetArrayViewFromImage(labels) == value))
    return n * float(np.prod(labels.GetSpacing()))


def _distance_to_mask_mm(labels: sitk.Image, value: int, point_lps: Sequence[float]) -> float:
    """Distance (mm) from an LPS point to the nearest voxel centre of label ``value``."""
    from .geometry import index_to_lps

    kji = np.argwhere(sitk.GetArrayViewFromImage(labels) == value)
    if kji.size == 0:
        return float("inf")
    pts = index_to_lps(labels, kji[:, ::-1].astype(float))
    return float(np.min(np.linalg.norm(pts - np.asarray(point_lps, float), axis=1)))


def analysis_grid(ct: sitk.Image, c2_center_lps_mm: Sequence[float], unet_roi_mm: Sequence[float],
                  spine_frame: Optional[dict] = None) -> sitk.Image:
    """The part of ``ct``'s grid that both segmenters' crops cover around the C2 centre (the
    U-Net's canonical ROI and the finder's box in the vertebra's frame): the pedicle labels
    live there, on the CT's own voxels, instead of on an input-sized array."""
    from .pedicle_finder import (
        FINDER_ROI_MM,
        MAX_ROLL_DEG,
        roll_about_posterior,
        spine_frame_matrix,
    )

    centre = np.asarray(c2_center_lps_mm, dtype=float).reshape(3)
    signs = np.array([[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)], float)
    rot = spine_frame_matrix(spine_frame)
    # the finder's box, in the frame rolled however far its symmetry search may roll it
    finder = np.vstack([centre + (signs * (np.asarray(FINDER_ROI_MM, float) / 2.0))
                        @ roll_about_posterior(rot, roll).T
                        for roll in np.arange(-MAX_ROLL_DEG, MAX_ROLL_DEG + 1e-9, 5.0)])
    unet = centre + signs * (np.asarray(unet_roi_mm, float) / 2.0)
    pts = np.vstack([finder, unet])
    return sub_grid(ct, pts.min(axis=0) - 1.0, pts.max(axis=0) + 1.0, margin=2)


def segment_pedicles_checked(ct: sitk.Image, c2_center_lps_mm: Sequence[float],
                             model: Optional[OnnxModel] = None, model_dir=None,
                             threads: Optional[int] = None,
                             progress: Optional[ProgressCallback] = None,
                             spine_frame: Optional[dict] = None,
                             dens_tip_lps_mm: Optional[Sequence[float]] = None
                             ) -> SegmentationOutcome:
    """U-Net segmentation with the anatomical finder as fallback per side (and for the check).

    ``spine_frame``: the localiser's ``evidence["spine_frame"]``; the finder searches in the
    vertebra's own frame with it. ``dens_tip_lps_mm``: the localiser's dens tip (the finder
    then tells C1's ring from C2's).

    Raises :class:`SegmentationError` only when neither segmenter finds a pedicle on any side.
    """
    from .pedicle_finder import LABELS as FINDER_LABELS
    from .pedicle_finder import find_pedicles

    progress = progress or null_progress
    unet: Optional[sitk.Image] = None
    notes: List[str] = []
    model = model or load_model("segmentation", model_dir=model_dir, threads=threads)
    grid = analysis_grid(ct, c2_center_lps_mm, roi_size_mm(model), spine_frame)

    def timed_finder():
        t0 = time.perf_counter()
        found = find_pedicles(ct, c2_center_lps_mm, spine_frame=spine_frame, grid=grid,
                              dens_tip_lps_mm=dens_tip_lps_mm)
        return found, time.perf_counter() - t0

    # The finder does not need the U-Net's answer: it runs on a worker thread while ONNX
    # Runtime (outside the interpreter lock) runs the U-Net here; its answer is waited for
    # before either is used, so the outcome is the same as one after the other.
    finder_job = Background(timed_finder, name="c2net-finder")
    try:
        unet = segment_pedicles(ct, c2_center_lps_mm, model=model, model_dir=model_dir,
                                threads=threads, progress=progress, grid=grid)
    except SegmentationError as exc:
        if "outside the scan" in exc.message:
            finder_job.join()
            raise
        notes.append(f"U-Net: {exc.message}")
    except BaseException:
        finder_job.join()   # never leave the worker running past this call
        raise
    if unet is not None and unet.GetSize() != grid.GetSize():   # a caller's own segmenter
        unet = resample_like(unet, grid, "nearest")
    progress("segment", 1.0, "anatomical pedicle finder")
    finder, finder_s = finder_job.result()
    segmenter: Dict[str, Optional[str]] = {}
    unet_arr = None if unet is None else sitk.GetArrayFromImage(unet)
    finder_arr = None
    out = np.zeros(sitk.GetArrayViewFromImage(finder.labels).shape, np.uint8)
    for side, value in (("left", LEFT), ("right", RIGHT)):
        plausible = _side_volume_mm3(unet, value) >= MIN_PEDICLE_VOXELS
        if plausible and finder.found(side):
            gap = _distance_to_mask_mm(unet, value, finder.sides[side].isthmus_center_lps_mm)
            share = _side_volume_mm3(unet, value) / max(
                _side_volume_mm3(finder.labels, FINDER_LABELS[side]), 1e-6)
            if share < MIN_SHARE_OF_FINDER_VOLUME:
                plausible = False
                notes.append(f"{side}: the U-Net mask is a fragment ({100 * share:.0f} % of the "
                             "bone of the pedicle corridor the anatomical finder found)")
            elif gap > MAX_UNET_TO_FINDER_ISTHMUS_MM:
                plausible = False
                notes.append(f"{side}: the U-Net mask lies {gap:.0f} mm from the pedicle "
                             "isthmus the anatomical finder found (between the canal and the "
                             "foramen transversarium): not on the pedicle")
        if plausible:
            out[unet_arr == value] = value
            segmenter[side] = UNET
        elif finder.found(side):
            if finder_arr is None:
                finder_arr = sitk.GetArrayFromImage(finder.labels)
            out[finder_arr == FINDER_LABELS[side]] = value
            segmenter[side] = FINDER
            notes.append(f"{side}: the U-Net found no plausible pedicle; the anatomical "
                         "finder's mask is used")
        else:
            segmenter[side] = None
            notes.append(f"{side}: no pedicle found (U-Net: none; anatomical finder: "
                         f"{finder.reasons.get(side, 'none')})")
    if not any(segmenter.values()):
        raise SegmentationError(
            "neither the U-Net nor the anatomical finder found a C2 pedicle on either side ("
            + "; ".join(f"{s}: {finder.reasons.get(s, '')}" for s in ("left", "right")) + ")",
            "Check that the C2 centre is right (give a seed point) and that the scan is a "
            "bone-window-capable CT of the cervical spine; or segment the pedicles manually "
            "and run 'c2net measure' on the mask.")
    labels = sitk.GetImageFromArray(out)
    labels.CopyInformation(grid)
    return SegmentationOutcome(labels=labels, segmenter=segmenter, finder=finder, notes=notes,
                               finder_time_s=finder_s)


def finder_corridor_measurement(ct: sitk.Image, outcome: SegmentationOutcome, side: str,
                                cortical_density_hu: Optional[float] = None,
                                scan_blur_mm: Optional[float] = None
                                ) -> Tuple[Optional[PedicleMeasurement], str]:
    """The check's own measurement of ``side`` (a U-Net side whose finder found a pedicle):
    the finder's answer measured along its corridor
    (:func:`c2net.pedicle_finder.check.measure_corridor`, with the U-Net mask's measured
    ``cortical_density_hu`` and ``scan_blur_mm`` when there are). Returns ``(measurement or
    None, reason)``; safe to run on a worker thread beside the main measurement."""
    from .errors import MeasurementError
    from .pedicle_finder.check import measure_corridor

    reason = outcome.finder.reasons.get(side, "")
    found = outcome.finder.sides.get(side)
    if outcome.segmenter.get(side) != UNET or found is None:
        return None, reason
    try:
        return measure_corridor(ct, found, cortical_density_hu, scan_blur_mm), reason
    except MeasurementError as exc:
        return None, f"its corridor could not be measured: {exc.message}"


def finder_corridor_in_place_of_mask(ct: sitk.Image, outcome: Optional[SegmentationOutcome],
                                     side: str, lr_direction_lps=None
                                     ) -> Optional[PedicleMeasurement]:
    """The side measured along the finder's corridor, for a side whose mask could not be
    measured (a U-Net or finder mask that is no elongated pedicle, too small, ...): the
    image's edges on the line through the finder's isthmus along its tube axis, over its
    mask's length either side (:data:`c2net.pedicle_finder.tube.MASK_HALF_LENGTH_MM`) - the
    mask only seeds the axis, and the finder's answer is an axis. None when the finder found
    no pedicle on that side or its corridor cannot be measured either. Safe on a worker
    thread."""
    from .errors import MeasurementError
    from .measure import measure_trajectory
    from .pedicle_finder.check import corridor_ends
    from .pedicle_finder.tube import MASK_HALF_LENGTH_MM

    found = None if outcome is None else outcome.finder.sides.get(side)
    if found is None:
        return None
    try:
        return measure_trajectory(ct, *corridor_ends(found, MASK_HALF_LENGTH_MM), side,
                                  lr_direction_lps=lr_direction_lps)
    except MeasurementError:
        return None


def apply_segmentation_check(result, corridors: Optional[Dict[str, tuple]] = None,
                             in_place_of_mask: Optional[Dict[str, str]] = None) -> None:
    """Set ``segmenter`` and ``segmentation_check`` on each side of ``result`` (an
    :class:`c2net.results.Assessment` whose sides are measured).

    A U-Net side is compared with the finder's answer measured by the same measurement
    (:func:`c2net.pedicle_finder.check.compare_measurements`): the image's edges along the
    finder's own corridor around its isthmus (:func:`finder_corridor_measurement`; pass them
    as ``corridors`` when they were measured already, ``{side: (measurement, reason)}``). A
    side whose mask came from the finder is flagged: the U-Net saw no pedicle there, so
    nothing independent confirms it. ``in_place_of_mask``: ``{side: why its mask could not be
    measured}`` for the sides measured along the finder's corridor instead
    (:func:`finder_corridor_in_place_of_mask`): they are the finder's answers, flagged.
    """
    from .pedicle_finder import check

    outcome = getattr(result, "segmentation_sources", None)
    if outcome is None:
        return
    for side, sa in result.sides.items():
        src = outcome.segmenter.get(side)
        sa.segmenter = src
        if side in (in_place_of_mask or {}):
            mask_source = "U-Net" if src == UNET else "anatomical finder"
            sa.segmenter = FINDER
            sa.segmentation_check = check.SegmentationCheck(
                check.CHECK, f"the {mask_source}'s mask could not be measured "
                f"({in_place_of_mask[side]}); the anatomical finder's corridor was measured "
                "instead and nothing independent confirms it: check the segmentation")
        elif src is None:
            sa.segmentation_check = check.SegmentationCheck(check.NOT_CHECKED, "no mask on this side")
        elif src == FINDER:
            sa.segmentation_check = check.SegmentationCheck(
                check.CHECK, "the U-Net found no pedicle here; the anatomical finder's mask is used "
                "and nothing independent confirms it: check the segmentation")
        else:
            finder_m, reason = (corridors or {}).get(side) or \
                finder_corridor_measurement(result.ct, outcome, side)
            sa.segmentation_check = check.compare_measurements(sa.measurement, finder_m, reason)
