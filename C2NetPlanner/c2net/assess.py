"""Assess C2: the whole pipeline from a CT to the report, as one function.

    from c2net.assess import assess
    result = assess("neck_ct/", out_dir="out/case001")     # -> c2net.results.Assessment
    result.sides["left"].measurement.mpd_mm, result.sides["left"].prediction.p_high_risk

Stages (one direction): load -> normalise geometry -> locate C2 -> segment pedicles (U-Net,
ONNX) -> measure each isthmus -> classify (C3D, ONNX) -> explain (Grad-CAM in CT space) ->
decide -> report. :func:`remeasure` re-runs measure..report on an edited segmentation (the
Slicer module's "Recompute from edited segmentation").

Errors that the user can act on are :class:`c2net.errors.C2NetError`; with ``out_dir`` set a
``report.json`` with status "error" (code, message, hint) is written before the error is
raised (or returned with ``raise_on_error=False``). The input is never modified.
"""

from __future__ import annotations

import datetime as _dt
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Sequence, Union

import numpy as np
import SimpleITK as sitk

from . import __version__, geometry
from .background import Background
from .errors import C2NetError, InputError, MeasurementError, OutputError
from .explain import attention_volume
from .load import LoadedCT, load_ct
from .models import OnnxModel, load_model
from .output_folder import check_output_folder
from .progress import ProgressCallback, null_progress
from .results import SIDES, Assessment, SideAssessment
from .sheared_grid import refuse_sheared
from .verdict import DecisionSettings, agreement, mpd_verdict, network_verdict, screw_fit

SEGMENT_LABELS = {"left": 1, "right": 2}
#: Threads that measure both sides and the finder's check of each side at once (the
#: machines this runs on have two cores or more).
MEASURE_WORKERS = 2
PathLike = Union[str, Path]


class _Stopwatch:
    def __init__(self, timings: Dict[str, float], progress: ProgressCallback):
        self.timings = timings
        self.progress = progress

    @contextmanager
    def stage(self, name: str, message: str = "") -> Iterator[None]:
        self.progress(name, 0.0, message)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0
            self.progress(name, 1.0, "")


def _load_models(model_dir: Optional[Path], segmentation_model: Optional[Path],
                 classifier_model: Optional[Path], threads: Optional[int]) -> tuple:
    """Both models (sha256 check, ONNX Runtime session); also imports the pipeline's numerical
    modules. Run on a worker thread (:class:`c2net.background.Background`) while the CT is read
    and C2 located: reading and creating the sessions both run mostly outside the interpreter
    lock, so on two cores this hides most of the models' start-up. Its errors are raised where
    the models are asked for, the same place as loading them there would raise them."""
    from . import measure, segment  # noqa: F401 - imported here, off the main thread

    return (load_model("segmentation", model_dir=model_dir, path=segmentation_model,
                       threads=threads),
            load_model("classifier", model_dir=model_dir, path=classifier_model,
                       threads=threads))


def software_versions(models: Sequence[OnnxModel] = ()) -> Dict[str, Any]:
    """Versions of everything that shaped the numbers (for report.json)."""
    import onnxruntime

    providers = sorted({p for m in models for p in m.session.get_providers()}) or ["CPUExecutionProvider"]
    return {
        "c2netplanner": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "SimpleITK": sitk.Version.VersionString(),
        "onnxruntime": onnxruntime.__version__,
        "execution_providers": providers,
    }


def _loaded(input_ct: Union[PathLike, sitk.Image, LoadedCT], series_uid: Optional[str]) -> LoadedCT:
    if isinstance(input_ct, LoadedCT):
        return input_ct
    if isinstance(input_ct, sitk.Image):
        if input_ct.GetDimension() != 3:
            raise InputError("The CT image is not 3D.", hint="Give a 3D CT volume.")
        refuse_sheared(input_ct, "The CT image")
        img = sitk.Cast(input_ct, sitk.sitkFloat32)
        info = {"path": None, "format": "image", "size": list(img.GetSize()),
                "spacing_mm": list(img.GetSpacing()), "origin_lps_mm": list(img.GetOrigin()),
                "direction": list(img.GetDirection()),
                "orientation_code": geometry.orientation_code(img)}
        return LoadedCT(image=img, info=info, warnings=[])
    return load_ct(input_ct, series_uid=series_uid)


def _normalise_info(ct: sitk.Image) -> Dict[str, Any]:
    return {
        "orientation_code": geometry.orientation_code(ct),
        "obliquity_deg": round(geometry.obliquity_deg(ct), 3),
        "canonical_frame": "LPS, identity direction, 1.0 mm isotropic (arrays [S, P, L])",
    }


def assess(
    input_ct: Union[PathLike, sitk.Image, LoadedCT],
    out_dir: Optional[PathLike] = None,
    *,
    series_uid: Optional[str] = None,
    seed_lps_mm: Optional[Sequence[float]] = None,
    vertebra_mask: Union[PathLike, sitk.Image, None] = None,
    c2_label: Optional[int] = None,
    cutoff_mm: float = DecisionSettings.cutoff_mm,
    screw_mm: float = DecisionSettings.screw_mm,
    verdict_measure: str = "mpd",
    model_dir: Optional[PathLike] = None,
    segmentation_model: Optional[PathLike] = None,
    classifier_model: Optional[PathLike] = None,
    threads: Optional[int] = None,
    progress: Optional[ProgressCallback] = None,
    overwrite: bool = False,
    raise_on_error: bool = True,
    trajectories_lps_mm: Optional[dict] = None,
) -> Assessment:
    """Assess both C2 pedicles of a CT for a ``screw_mm`` pedicle screw.

    Parameters
    ----------
    input_ct : a path (DICOM folder/zip/tgz, NIfTI, NRRD, MHA), a SimpleITK image in HU, or a
        :class:`c2net.load.LoadedCT`.
    out_dir : where to write the report files (all or nothing); None writes nothing.
    seed_lps_mm : a point on C2 (LPS mm) that overrides automatic localisation.
    vertebra_mask, c2_label : an existing vertebra label map (e.g. TotalSegmentator) and the
        C2 label value; overrides automatic localisation.
    cutoff_mm, screw_mm, verdict_measure : decision settings (see :mod:`c2net.verdict`).
    model_dir : folder with ``models.json``; ``segmentation_model``/``classifier_model``: a
        user-given ONNX file each (verified against ``models.json`` when listed there).
    threads : ONNX Runtime threads per model.
    progress : ``callback(stage, fraction, message)``.
    trajectories_lps_mm : ``{"left": (entry, target), "right": ...}`` (LPS mm): a side given
        here is measured along the surgeon's entry -> target line instead of its mask.
    """
    progress = progress or null_progress
    settings = DecisionSettings(cutoff_mm=float(cutoff_mm), screw_mm=float(screw_mm),
                                verdict_measure=verdict_measure)
    inputs = _input_paths(input_ct, vertebra_mask)
    if out_dir is not None:   # the output folder is checked before any work (c2net.output_folder)
        check_output_folder(out_dir, overwrite, inputs)
    result = Assessment(settings=settings.to_dict(),
                        created_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    clock = _Stopwatch(result.timings_s, progress)
    t_start = time.perf_counter()
    models = Background(_load_models, _opt_path(model_dir), _opt_path(segmentation_model),
                        _opt_path(classifier_model), threads, name="c2net-models")
    try:
        with clock.stage("load", "reading the CT"):
            loaded = _loaded(input_ct, series_uid)
            result.ct = loaded.image
            result.input = dict(loaded.info)
            if isinstance(input_ct, (str, Path)):
                result.input.setdefault("path", str(input_ct))
            result.warnings.extend(loaded.warnings)
        with clock.stage("normalise", "patient frame"):
            result.input.update(_normalise_info(loaded.image))
        with clock.stage("locate", "finding C2"):
            from .locate import locate_c2

            location = locate_c2(loaded.image, seed_lps_mm=seed_lps_mm,
                                 vertebra_mask=vertebra_mask, c2_label=c2_label)
            result.localisation = location.to_dict()
            result.warnings.extend(location.warnings)
        seg_model, cls_model = models.result()
        result.models = [seg_model.describe(), cls_model.describe()]
        result.software = software_versions([seg_model, cls_model])
        with clock.stage("segment", "U-Net on the C2 region, anatomical finder beside it"):
            from .segment import segment_pedicles_checked

            outcome = segment_pedicles_checked(
                loaded.image, location.center_lps_mm, model=seg_model, progress=progress,
                spine_frame=location.evidence.get("spine_frame"),
                dens_tip_lps_mm=location.dens_tip_lps_mm)
            result.segmentation = outcome.labels
            result.segmentation_sources = outcome
            result.warnings.extend(outcome.notes)
        _measure_classify_explain(result, settings, cls_model, clock, trajectories_lps_mm)
        with clock.stage("report", "writing the report"):
            result.timings_s["total"] = time.perf_counter() - t_start
            if out_dir is not None:
                from .report import write_report

                write_report(result, out_dir, overwrite=overwrite, inputs=inputs)
    except C2NetError as exc:
        result.status = "error"
        result.error = exc.to_dict()
        result.timings_s["total"] = time.perf_counter() - t_start
        if out_dir is not None and not isinstance(exc, OutputError):
            _write_error_report(result, out_dir, overwrite, inputs)
        if raise_on_error:
            exc.assessment = result  # type: ignore[attr-defined]
            raise
    finally:
        # never leave ONNX Runtime half-way through creating a session on the worker thread
        # when this call ends early (an error, Ctrl-C): the process would abort on exit
        models.join()
    return result


def remeasure(
    ct: Union[sitk.Image, LoadedCT],
    segmentation: sitk.Image,
    out_dir: Optional[PathLike] = None,
    *,
    cutoff_mm: float = DecisionSettings.cutoff_mm,
    screw_mm: float = DecisionSettings.screw_mm,
    verdict_measure: str = "mpd",
    model_dir: Optional[PathLike] = None,
    classifier_model: Optional[PathLike] = None,
    threads: Optional[int] = None,
    progress: Optional[ProgressCallback] = None,
    overwrite: bool = False,
) -> Assessment:
    """Re-run measure -> classify -> explain -> decide on an (edited) segmentation.

    ``segmentation``: label map on the CT's patient space, 1 = C2 pedicle left, 2 = right.
    """
    progress = progress or null_progress
    settings = DecisionSettings(cutoff_mm=float(cutoff_mm), screw_mm=float(screw_mm),
                                verdict_measure=verdict_measure)
    if out_dir is not None:
        check_output_folder(out_dir, overwrite)
    loaded = _loaded(ct, None)
    result = Assessment(settings=settings.to_dict(), ct=loaded.image, input=dict(loaded.info),
                        created_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    result.input.update(_normalise_info(loaded.image))
    result.localisation = {"method": "segmentation given (remeasure)"}
    seg = geometry.resample_like(sitk.Cast(segmentation, sitk.sitkUInt8), loaded.image, "nearest")
    result.segmentation = sitk.Cast(seg, sitk.sitkUInt8)
    cls_model = load_model("classifier", model_dir=_opt_path(model_dir),
                           path=_opt_path(classifier_model), threads=threads)
    result.models = [cls_model.describe()]
    result.software = software_versions([cls_model])
    clock = _Stopwatch(result.timings_s, progress)
    _measure_classify_explain(result, settings, cls_model, clock)
    if out_dir is not None:
        from .report import write_report

        write_report(result, out_dir, overwrite=overwrite)
    return result


def _measure_classify_explain(result: Assessment, settings: DecisionSettings,
                              cls_model: OnnxModel, clock: _Stopwatch,
                              trajectories: Optional[dict] = None) -> None:
    from .classify import predict_risk
    from .measure import crop_to_mask, isthmus_slices, measure_pedicle, measure_trajectory
    from .segment import (
        apply_segmentation_check,
        finder_corridor_in_place_of_mask,
        finder_corridor_measurement,
    )

    ct = result.ct
    for side in SIDES:
        result.sides[side] = SideAssessment(side=side)
    outcome = getattr(result, "segmentation_sources", None)
    with clock.stage("measure", "isthmus cross-sections"):
        pedicles = crop_to_mask(result.segmentation)   # both pedicles' box, not the whole scan
        left_right = _left_right_direction(pedicles, trajectories)

        in_place_of_mask: Dict[str, str] = {}

        def measure_side(side: str):
            mask = sitk.Cast(pedicles == SEGMENT_LABELS[side], sitk.sitkUInt8)
            if trajectories and side in trajectories:
                m = measure_trajectory(ct, *trajectories[side], side, lr_direction_lps=left_right)
            else:
                try:
                    m = measure_pedicle(ct, mask, side, lr_direction_lps=left_right)
                except MeasurementError as exc:
                    # the mask only seeds the axis; the finder's answer is one
                    m = finder_corridor_in_place_of_mask(ct, outcome, side, left_right)
                    if m is None:
                        raise
                    in_place_of_mask[side] = exc.message
            return m, isthmus_slices(ct, m, mask)

        def timed_corridor(side: str, scanner: tuple):
            t0 = time.perf_counter()
            return (finder_corridor_measurement(ct, outcome, side, *scanner),
                    time.perf_counter() - t0)

        # both sides run side by side (the measurement's work is numpy / SciPy / ITK, partly
        # outside the interpreter lock); the finder's check of a side starts once that side's
        # own measurement has read the scan's cortical density and blur, which the check
        # reuses; no progress calls from workers
        with ThreadPoolExecutor(MEASURE_WORKERS, thread_name_prefix="c2net-measure") as pool:
            measured = {side: pool.submit(measure_side, side) for side in SIDES}
            checks = {}
            for side in SIDES:
                sa = result.sides[side]
                try:
                    sa.measurement, sa.slices = measured[side].result()
                except MeasurementError as exc:
                    sa.error = exc.to_dict()
                    result.warnings.append(f"{side} pedicle not measured: {exc.message}")
                if outcome is not None and side not in in_place_of_mask:
                    own = sa.measurement
                    scanner = ((None, None) if own is None
                               else (own.cortical_density_hu, own.scan_blur_mm))
                    checks[side] = pool.submit(timed_corridor, side, scanner)
            corridors = {side: job.result()[0] for side, job in checks.items()}
        # which segmenter, and the finder's check
        apply_segmentation_check(result, corridors, in_place_of_mask)
        if outcome is not None:
            # the check's own work (its measurement of the finder's corridors, done beside
            # the main measurement); the finder itself ran inside the segment stage and is
            # reported there as its part "finder"
            result.timings_s["segmentation_check"] = sum(j.result()[1] for j in checks.values())
            result.timings_s["finder"] = outcome.finder_time_s
        if all(result.sides[s].measurement is None for s in SIDES):
            errs = [result.sides[s].error for s in SIDES]
            raise MeasurementError(
                "Neither C2 pedicle could be measured: "
                + "; ".join(f"{s}: {e['message']}" for s, e in zip(SIDES, errs) if e),
                hint=(errs[0] or {}).get("hint") or "Check the segmentation overlay.")
    with clock.stage("classify", "C2-Net per side"):
        for side in SIDES:
            sa = result.sides[side]
            other = result.sides[SIDES[1 - SIDES.index(side)]].measurement
            if sa.slices is not None:
                sa.prediction = predict_risk(
                    sa.slices, model=cls_model,
                    other_isthmus_lps_mm=None if other is None else other.isthmus_center_lps_mm)
    with clock.stage("explain", "attention maps"):
        items = [(result.sides[s].slices, result.sides[s].prediction) for s in SIDES
                 if result.sides[s].prediction is not None]
        result.attention = attention_volume(ct, items, grid=result.segmentation)
    for side in SIDES:
        _decide(result.sides[side], settings)


def _left_right_direction(pedicles: sitk.Image, trajectories: Optional[dict] = None
                          ) -> Optional[np.ndarray]:
    """The vertebra's left-right direction for the transverse widths (LPS unit vector): the
    line from the right pedicle to the left one (each side's mask centroid, or its
    trajectory's midpoint); None when a side is missing (the scanner's x axis is used)."""
    shape = sitk.LabelShapeStatisticsImageFilter()
    shape.Execute(sitk.Cast(pedicles, sitk.sitkUInt8))
    centres = {}
    for side in SIDES:
        if trajectories and side in trajectories:
            centres[side] = np.mean(np.asarray(trajectories[side], float), axis=0)
        elif shape.HasLabel(SEGMENT_LABELS[side]):
            centres[side] = np.asarray(shape.GetCentroid(SEGMENT_LABELS[side]), float)
    if len(centres) < 2:
        return None
    d = centres["left"] - centres["right"]
    return d / np.linalg.norm(d) if np.linalg.norm(d) > 5.0 else None


def _decide(sa: SideAssessment, settings: DecisionSettings) -> None:
    if sa.measurement is not None:
        m = sa.measurement
        width = m.mpd_mm if settings.verdict_measure == "mpd" else m.inner_width_mm
        sa.verdict_mpd = mpd_verdict(width, m.mpd_uncertainty_mm, settings.cutoff_mm,
                                     no_medullary_canal=m.no_medullary_canal)
        sa.screw_fit = screw_fit(m.mpd_mm, m.inner_width_mm, m.mpd_uncertainty_mm, settings,
                                 no_medullary_canal=m.no_medullary_canal)
    if sa.prediction is not None:
        sa.verdict_network = network_verdict(sa.prediction.p_high_risk, settings.network_threshold)
    if sa.verdict_mpd and sa.verdict_network:
        sa.agreement = agreement(sa.verdict_mpd, sa.verdict_network)


def _write_error_report(result: Assessment, out_dir: PathLike, overwrite: bool,
                        inputs: Sequence[Optional[PathLike]]) -> None:
    from .report import write_report

    try:
        write_report(result, out_dir, overwrite=overwrite, inputs=inputs)
    except C2NetError as exc:  # e.g. the output folder itself is the problem
        result.warnings.append(f"error report not written: {exc.message}")


def _input_paths(*items: Any) -> list:
    """The inputs given as paths (an output folder must not hold them)."""
    return [Path(x) for x in items if isinstance(x, (str, Path))]


def _opt_path(p: Optional[PathLike]) -> Optional[Path]:
    return None if p is None else Path(p)
