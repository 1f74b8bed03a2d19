"""DICOM series discovery, slice-stack geometry and gantry-tilt / irregular-spacing correction.

Everything here works in **LPS millimetres** (the DICOM patient frame, which SimpleITK uses).

* :func:`scan_dicom_folder` finds every series under a folder (recursively) with GDCM
  (``sitk.ImageSeriesReader.GetGDCMSeriesIDs``) and reads each file's header with
  ``sitk.ImageFileReader.ReadImageInformation`` (no pixel data, no pydicom).
* :func:`analyse_stack` derives the stack geometry from the per-slice ImagePositionPatient
  (IPP, the slice origin) and ImageOrientationPatient (IOP, the in-plane row/column axes):
  the slice normal ``n = row x col``, each slice's position along ``n`` and its in-plane
  offset. A gantry tilt shows as in-plane offsets that grow with the position along ``n``
  (the stack is sheared); irregular spacing shows as unequal steps along ``n``.
* :func:`read_series` reads the pixels (``sitk.ImageSeriesReader``, rescale slope/intercept
  applied, float32) and, when the stack is sheared or irregular, resamples it onto a regular
  grid whose axes are the slices' row, column and normal directions, putting every original
  slice at the physical position its IPP states and interpolating linearly between slices.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from .errors import GeometryError, InputError, NotCTError

#: DICOM tags read from every file header (key -> name used in this module).
TAGS = {
    "0008|0060": "modality",
    "0020|000e": "series_instance_uid",
    "0020|000d": "study_instance_uid",
    "0008|103e": "series_description",
    "0010|0020": "patient_id",
    "0018|0050": "slice_thickness",
    "0018|0088": "spacing_between_slices",
    "0018|1120": "gantry_tilt",
    "0008|0008": "image_type",
    "0008|0070": "manufacturer",
    "0020|0011": "series_number",
    "0020|0013": "instance_number",
    "0028|1052": "rescale_intercept",
    "0028|1053": "rescale_slope",
    "0018|0060": "kvp",
    "0018|1210": "convolution_kernel",
    "0018|0015": "body_part_examined",
}

#: Largest gantry tilt the correction accepts (CT gantries tilt at most about +-30 degrees).
MAX_TILT_DEG = 30.0
#: A gap larger than this multiple of the median slice step means missing slices.
MAX_GAP_RATIO = 3.0
#: In-plane shear below this fraction of a pixel over the whole stack is ignored.
SHEAR_TOLERANCE_PIXELS = 0.1
#: Relative spread of slice steps below which the spacing counts as uniform.
SPACING_TOLERANCE = 0.01


@dataclass
class DicomSlice:
    """One DICOM file's header: geometry in LPS mm and the tags in :data:`TAGS`."""

    path: str
    origin: np.ndarray  # IPP, LPS mm
    direction: np.ndarray  # 3x3, columns: row axis, column axis, normal (LPS unit vectors)
    pixel_spacing: Tuple[float, float]  # (along row axis i, along column axis j) mm
    size: Tuple[int, int, int]  # (i, j, frames)
    tags: Dict[str, str]
    n_components: int = 1

    @property
    def orientation_key(self) -> tuple:
        """Hashable key of what must be equal for slices to stack into one volume."""
        return (self.size[0], self.size[1],
                tuple(np.round(self.direction[:, :2].ravel(), 3)),
                tuple(np.round(self.pixel_spacing, 4)))


@dataclass
class DicomSeries:
    """The files of one series (largest consistent group) and their shared tags."""

    uid: str
    slices: List[DicomSlice]
    excluded: List[str] = field(default_factory=list)  # files of the UID left out, and why
    unreadable: int = 0

    def tag(self, name: str) -> str:
        return self.slices[0].tags.get(name, "") if self.slices else ""

    @property
    def modality(self) -> str:
        return self.tag("modality").upper()

    @property
    def n_slices(self) -> int:
        """Number of image planes (files, or frames of a multi-frame file)."""
        return sum(s.size[2] for s in self.slices)

    def summary(self) -> dict:
        """JSON-friendly description used by ``list_dicom_series`` and warnings."""
        first = self.slices[0]
        return {
            "series_instance_uid": self.uid,
            "modality": self.modality or None,
            "series_description": self.tag("series_description") or None,
            "series_number": self.tag("series_number") or None,
            "study_instance_uid": self.tag("study_instance_uid") or None,
            "patient_id": self.tag("patient_id") or None,
            "n_slices": self.n_slices,
            "n_files": len(self.slices),
            "size": [int(first.size[0]), int(first.size[1]), int(self.n_slices)],
            "pixel_spacing_mm": [float(v) for v in first.pixel_spacing],
            "image_type": self.tag("image_type") or None,
            "excluded_files": len(self.excluded),
        }


@dataclass
class StackGeometry:
    """Geometry of a stack of parallel slices, sorted along the slice normal.

    ``positions_mm[k]`` is slice k's coordinate along ``normal`` relative to slice 0;
    ``offsets_mm[k]`` its in-plane (row, column) offset relative to slice 0, both in mm.
    """

    origin: np.ndarray  # IPP of the first (most negative along normal) slice, LPS mm
    row: np.ndarray
    col: np.ndarray
    normal: np.ndarray
    pixel_spacing: Tuple[float, float]
    positions_mm: np.ndarray
    offsets_mm: np.ndarray  # (K, 2)
    order: np.ndarray  # indices into the input slice list, sorted along the normal

    @property
    def steps_mm(self) -> np.ndarray:
        return np.diff(self.positions_mm)

    @property
    def median_step_mm(self) -> float:
        return float(np.median(self.steps_mm))

    @property
    def tilt_deg(self) -> float:
        """Angle between the stacking direction (first -> last IPP) and the slice normal."""
        lateral = float(np.linalg.norm(self.offsets_mm[-1]))
        along = float(self.positions_mm[-1])
        return float(np.degrees(np.arctan2(lateral, along)))

    @property
    def is_sheared(self) -> bool:
        limit = SHEAR_TOLERANCE_PIXELS * min(self.pixel_spacing)
        return bool(np.abs(self.offsets_mm).max() > limit)

    @property
    def is_irregular(self) -> bool:
        steps = self.steps_mm
        spread = float(steps.max() - steps.min())
        return spread > max(0.01, SPACING_TOLERANCE * self.median_step_mm)

    @property
    def missing_slices(self) -> list:
        """``[(k, n), ...]``: n slices missing after sorted slice k, or [] when the stack is not
        a regular series with gaps (every other step equal, each gap a whole multiple of it)."""
        steps = self.steps_mm
        step = self.median_step_mm
        tol = max(0.01, SPACING_TOLERANCE * step)
        ratio = steps / step
        gaps = np.flatnonzero(ratio >= 1.5)
        regular = np.delete(steps, gaps)
        if (len(gaps) == 0 or regular.size == 0 or float(regular.max() - regular.min()) > tol
                or np.any(np.abs(ratio[gaps] - np.round(ratio[gaps])) > 0.1)):
            return []
        return [(int(k), int(round(ratio[k])) - 1) for k in gaps]

    @property
    def regular_step_mm(self) -> float:
        """Step of the regular grid a correction resamples onto: the finest regular step.

        The smallest step that is at least half the median (a single short overlap step
        between two blocks does not shrink the grid), so no block of slices loses resolution.
        """
        steps = self.steps_mm
        usable = steps[steps >= 0.5 * self.median_step_mm]
        return float(usable.min())

    def describe(self) -> dict:
        steps = self.steps_mm
        return {
            "n_slices": int(len(self.positions_mm)),
            "slice_step_mm": {"min": float(steps.min()), "median": float(np.median(steps)),
                              "max": float(steps.max())},
            "tilt_deg_from_positions": round(self.tilt_deg, 3),
            "sheared": self.is_sheared,
            "irregular": self.is_irregular,
        }


def _read_header(path: str) -> Optional[DicomSlice]:
    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(path)
    reader.LoadPrivateTagsOff()
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None
    keys = set(reader.GetMetaDataKeys())
    tags = {name: reader.GetMetaData(key).strip() for key, name in TAGS.items() if key in keys}
    size = list(reader.GetSize()) + [1] * (3 - reader.GetDimension())
    direction = np.asarray(reader.GetDirection(), dtype=float)
    direction = direction.reshape(3, 3) if direction.size == 9 else np.eye(3)
    origin = np.asarray(reader.GetOrigin(), dtype=float)
    if origin.size == 2:
        origin = np.append(origin, 0.0)
    spacing = reader.GetSpacing()
    return DicomSlice(path=path, origin=origin, direction=direction,
                      pixel_spacing=(float(spacing[0]), float(spacing[1])),
                      size=(int(size[0]), int(size[1]), int(size[2])), tags=tags,
                      n_components=int(reader.GetNumberOfComponents()))


def _quiet(fn: Callable, *args, **kwargs):
    """Call a SimpleITK function with ITK's console warnings silenced (we report our own)."""
    previous = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        return fn(*args, **kwargs)
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(previous)


def scan_dicom_folder(folder: str | os.PathLike) -> List[DicomSeries]:
    """All DICOM series under ``folder`` (recursive), largest first.

    Files of one SeriesInstanceUID with a different matrix size, orientation or pixel spacing
    from the majority (localisers, reformats sharing the UID) are set aside in ``excluded``.
    """
    by_uid: Dict[str, List[str]] = {}
    for dirpath, dirnames, filenames in os.walk(str(folder)):
        dirnames.sort()
        if not filenames:
            continue
        try:
            uids = _quiet(sitk.ImageSeriesReader.GetGDCMSeriesIDs, dirpath)
        except RuntimeError:
            continue
        for uid in uids:
            files = _quiet(sitk.ImageSeriesReader.GetGDCMSeriesFileNames, dirpath, uid)
            by_uid.setdefault(uid, []).extend(files)
    series: List[DicomSeries] = []
    for uid, files in by_uid.items():
        headers = [_read_header(f) for f in sorted(set(files))]
        good = [h for h in headers if h is not None]
        unreadable = len(headers) - len(good)
        if not good:
            continue
        is_localiser = ["LOCALIZER" in h.tags.get("image_type", "").upper() for h in good]
        images = [h for h, loc in zip(good, is_localiser) if not loc] or good
        groups: Dict[tuple, List[DicomSlice]] = {}
        for h in images:
            groups.setdefault(h.orientation_key, []).append(h)
        main = max(groups.values(), key=lambda g: sum(s.size[2] for s in g))
        kept = {id(h) for h in images}
        excluded = [f"{h.path} (localiser)" for h in good if id(h) not in kept]
        excluded += [f"{h.path} (different size/orientation/pixel spacing)"
                     for g in groups.values() if g is not main for h in g]
        series.append(DicomSeries(uid=uid, slices=main, excluded=excluded,
                                  unreadable=unreadable))
    series.sort(key=lambda s: s.n_slices, reverse=True)
    return series


def choose_series(series: Sequence[DicomSeries], series_uid: Optional[str] = None
                  ) -> DicomSeries:
    """The series to load: ``series_uid`` if given, else the CT series with the most slices.

    Raises :class:`InputError` for an unknown UID and :class:`NotCTError` when no series is
    CT (series without a Modality tag are tried and judged by their intensities later).
    """
    if series_uid is not None:
        for s in series:
            if s.uid == series_uid:
                return s
        listing = "; ".join(f"{s.uid} ({s.modality or '?'}, {s.n_slices} slices)" for s in series)
        raise InputError(f"DICOM series {series_uid} is not in the input; found: {listing}.",
                         "Pass one of the listed Series Instance UIDs with --series, or run "
                         "'c2net info' on the input to list them.")
    ct = [s for s in series if s.modality == "CT"]
    if ct:
        return max(ct, key=lambda s: s.n_slices)   # first of equals: the caller says it was a tie
    unknown = [s for s in series if s.modality in ("", "OT")]
    if unknown:
        return max(unknown, key=lambda s: s.n_slices)
    found = ", ".join(sorted({s.modality for s in series}))
    raise NotCTError(f"No CT series in the input: the DICOM Modality is {found}, not CT.",
                     "C2NetPlanner measures bone in Hounsfield units and needs a CT scan "
                     "(Modality CT); load the patient's cervical CT series instead.")


def analyse_stack(slices: Sequence[DicomSlice]) -> StackGeometry:
    """Stack geometry from per-slice IPP/IOP; refuses stacks that cannot be one volume."""
    if len(slices) < 2:
        raise NotCTError("The DICOM series has a single slice: it is a 2D image, not a 3D CT.",
                         "Load the whole CT series (all slices), not one image.")
    first = slices[0]
    row = first.direction[:, 0] / np.linalg.norm(first.direction[:, 0])
    col = first.direction[:, 1] / np.linalg.norm(first.direction[:, 1])
    if abs(float(row @ col)) > 1e-3:
        raise GeometryError("The slices' row and column directions (ImageOrientationPatient) "
                            "are not perpendicular.",
                            "The DICOM header is inconsistent; re-export the series from the "
                            "scanner or PACS.")
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    for s in slices[1:]:
        if (np.abs(s.direction[:, :2] - first.direction[:, :2]).max() > 1e-3
                or s.size[:2] != first.size[:2]):
            raise GeometryError("The slices of this DICOM series have different orientations "
                                "or matrix sizes, so they do not form one volume.",
                                "Choose a single axial reconstruction with --series, or "
                                "re-export the series.")
    ipp = np.array([s.origin for s in slices])
    rel = ipp - ipp[0]
    along = rel @ normal
    order = np.argsort(along, kind="stable")
    rel = ipp[order] - ipp[order[0]]
    positions = rel @ normal
    offsets = np.stack([rel @ row, rel @ col], axis=1)
    steps = np.diff(positions)
    if np.any(steps < 1e-3):
        k = int(np.argmin(steps))
        raise GeometryError(
            f"Two slices of the DICOM series lie at the same position "
            f"({os.path.basename(slices[order[k]].path)} and "
            f"{os.path.basename(slices[order[k + 1]].path)}): the series mixes acquisitions.",
            "Export each acquisition (phase, reconstruction) as its own series and load one.")
    geom = StackGeometry(origin=ipp[order[0]].copy(), row=row, col=col, normal=normal,
                         pixel_spacing=first.pixel_spacing, positions_mm=positions,
                         offsets_mm=offsets, order=order)
    median = geom.median_step_mm
    if steps.max() > MAX_GAP_RATIO * median:
        k = int(np.argmax(steps))
        raise GeometryError(
            f"Slices are missing: a gap of {steps.max():.1f} mm between slices "
            f"{k + 1} and {k + 2} (the median step is {median:.2f} mm).",
            "Interpolating across such a gap would invent anatomy; re-export the complete "
            "series (check that no files were lost).")
    if geom.is_sheared and geom.tilt_deg > MAX_TILT_DEG:
        raise GeometryError(
            f"The slice positions are offset by {geom.tilt_deg:.1f} degrees from the slice "
            f"normal, more than the {MAX_TILT_DEG:.0f} degrees a CT gantry can tilt.",
            "The slice positions are inconsistent; re-export the series or reconstruct it "
            "without tilt on the scanner.")
    return geom


def read_pixels(slices: Sequence[DicomSlice]) -> sitk.Image:
    """Pixels of the slices, in the given order, as a float32 image, rescale applied.

    Only the voxel values are to be trusted: the caller sets the geometry from the IPPs."""
    reader = sitk.ImageSeriesReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileNames([s.path for s in slices])
    reader.SetOutputPixelType(sitk.sitkFloat32)
    try:
        image = _quiet(reader.Execute)
    except RuntimeError as exc:
        raise InputError(f"The DICOM pixel data cannot be read: {str(exc).strip()[-200:]}",
                         "A file of the series is corrupt or uses an unsupported transfer "
                         "syntax; re-export the series (uncompressed or JPEG-lossless).") from exc
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise NotCTError("The DICOM series holds colour (RGB) pixels, not CT values.",
                         "This looks like a screenshot or secondary capture; load the original "
                         "CT series.")
    return image


def resample_stack(pixels: np.ndarray, geom: StackGeometry, step_mm: float,
                   fill_value: float) -> sitk.Image:
    """Resample a sheared and/or irregular stack onto a regular grid (LPS mm).

    ``pixels[k]`` is the slice at ``geom.positions_mm[k]`` along the normal, shifted in plane
    by ``geom.offsets_mm[k]``. The output's axes are the slices' row, column and normal
    directions; its in-plane extent is the union of all shifted slices (nothing is cropped;
    uncovered pixels get ``fill_value``), its planes lie every ``step_mm`` from the first
    slice. Each output plane is the linear interpolation, along the normal, of the two
    original slices around it, each sampled (bilinearly) at the plane's in-plane grid.
    """
    from scipy import ndimage

    k_count, ny, nx = pixels.shape
    sx, sy = geom.pixel_spacing
    u = geom.offsets_mm[:, 0]
    v = geom.offsets_mm[:, 1]
    u0, v0 = float(u.min()), float(v.min())
    nx_out = int(np.ceil((u.max() - u0) / sx - 1e-6)) + nx
    ny_out = int(np.ceil((v.max() - v0) / sy - 1e-6)) + ny
    pos = geom.positions_mm
    n_planes = int(np.floor(pos[-1] / step_mm + 1e-6)) + 1
    out = np.empty((n_planes, ny_out, nx_out), dtype=np.float32)
    cache: Dict[int, np.ndarray] = {}

    def shifted(k: int) -> np.ndarray:
        if k not in cache:
            for old in [key for key in cache if key < k - 1]:
                del cache[old]
            offset = ((v0 - v[k]) / sy, (u0 - u[k]) / sx)
            if max(abs(offset[0] - round(offset[0])), abs(offset[1] - round(offset[1]))) < 1e-3:
                canvas = np.full((ny_out, nx_out), fill_value, dtype=np.float32)
                j0, i0 = int(round(-offset[0])), int(round(-offset[1]))
                canvas[j0:j0 + ny, i0:i0 + nx] = pixels[k]
                cache[k] = canvas
            else:
                # bilinear inside the slice, edge pixels extend half a pixel (their own
                # extent), fill_value beyond
                moved = ndimage.affine_transform(
                    pixels[k], np.eye(2), offset=offset, output_shape=(ny_out, nx_out),
                    order=1, mode="nearest").astype(np.float32)
                jy = np.arange(ny_out) + offset[0]
                ix = np.arange(nx_out) + offset[1]
                inside = (((jy >= -0.5) & (jy <= ny - 0.5))[:, None]
                          & ((ix >= -0.5) & (ix <= nx - 0.5))[None, :])
                moved[~inside] = fill_value
                cache[k] = moved
        return cache[k]

    for m in range(n_planes):
        n = m * step_mm
        k = int(np.clip(np.searchsorted(pos, n, side="right") - 1, 0, k_count - 2))
        w = float(np.clip((n - pos[k]) / (pos[k + 1] - pos[k]), 0.0, 1.0))
        if w < 1e-6:
            out[m] = shifted(k)
        elif w > 1 - 1e-6:
            out[m] = shifted(k + 1)
        else:
            out[m] = (1.0 - w) * shifted(k) + w * shifted(k + 1)
    image = sitk.GetImageFromArray(out)
    image.SetSpacing((float(sx), float(sy), float(step_mm)))
    image.SetOrigin(tuple(float(c) for c in geom.origin + u0 * geom.row + v0 * geom.col))
    image.SetDirection(tuple(np.stack([geom.row, geom.col, geom.normal], axis=1).ravel()
                             .astype(float)))
    return image


def stack_image(image: sitk.Image, geom: StackGeometry) -> sitk.Image:
    """Give a regular, unsheared stack its geometry: axes row, column, normal (LPS), origin
    the first IPP, slice step the median step (in place; returns ``image``)."""
    image.SetSpacing((float(geom.pixel_spacing[0]), float(geom.pixel_spacing[1]),
                      geom.median_step_mm))
    image.SetOrigin(tuple(float(c) for c in geom.origin))
    image.SetDirection(tuple(np.stack([geom.row, geom.col, geom.normal], axis=1).ravel()
                             .astype(float)))
    return image


def _float_tag(value: str) -> Optional[float]:
    try:
        return float(value.split("\\")[0])
    except (ValueError, AttributeError, IndexError):
        return None


@dataclass
class SeriesVolume:
    """A DICOM series read into one regular volume, with what was found and done."""

    image: sitk.Image  # float32 HU, LPS geometry
    geometry: Optional[dict]
    corrections: List[dict]
    warnings: List[str]
    gantry_tilt_tag_deg: Optional[float]
    slice_thickness_mm: Optional[float]


def read_series(series: DicomSeries, fill_value: float = -1024.0) -> SeriesVolume:
    """Read a series into a regular float32 HU volume, correcting tilt / irregular spacing."""
    warnings: List[str] = []
    corrections: List[dict] = []
    tilt_tag = _float_tag(series.tag("gantry_tilt"))
    thickness = _float_tag(series.tag("slice_thickness"))
    if series.slices[0].n_components != 1:
        raise NotCTError("The DICOM series holds colour (RGB) pixels, not CT values.",
                         "This looks like a screenshot or secondary capture; load the original "
                         "CT series.")
    if len(series.slices) == 1 and series.slices[0].size[2] > 1:
        # Multi-frame (enhanced) DICOM: GDCM computes the volume geometry itself.
        try:
            image = _quiet(sitk.ReadImage, series.slices[0].path, sitk.sitkFloat32)
        except RuntimeError as exc:
            raise InputError(f"The multi-frame DICOM file cannot be read: {exc}",
                             "Re-export the series as one file per slice.") from exc
        warnings.append("multi-frame DICOM: per-frame positions were not checked for gantry "
                        "tilt or irregular spacing")
        return SeriesVolume(image, None, corrections, warnings, tilt_tag, thickness)
    geom = analyse_stack(series.slices)
    ordered = [series.slices[i] for i in geom.order]
    pixels = read_pixels(ordered)
    described = geom.describe()
    if not (geom.is_sheared or geom.is_irregular):
        image = stack_image(pixels, geom)
        if tilt_tag and abs(tilt_tag) > 0.1:
            warnings.append(f"the Gantry/Detector Tilt tag says {tilt_tag:g} deg but the slice "
                            "positions are not sheared: the scanner already reconstructed "
                            "the slices on an orthogonal grid, no correction needed")
        return SeriesVolume(image, described, corrections, warnings, tilt_tag, thickness)
    step = geom.regular_step_mm
    image = resample_stack(sitk.GetArrayViewFromImage(pixels), geom, step, fill_value)
    if geom.is_sheared:
        tilt = geom.tilt_deg
        text = f"gantry tilt of {tilt:.1f}\u00b0 corrected by resampling"
        if tilt_tag is not None and abs(abs(tilt_tag) - tilt) > 1.0:
            warnings.append(f"the Gantry/Detector Tilt tag ({tilt_tag:g} deg) differs from the "
                            f"tilt measured from the slice positions ({tilt:.1f} deg); the "
                            "slice positions were used")
        corrections.append({"kind": "gantry_tilt", "angle_deg": round(tilt, 3),
                            "tag_deg": tilt_tag, "description": text})
        warnings.append(text + " (slices shifted to their true positions, axes along the "
                        "slice plane and its normal)")
    missing = geom.missing_slices if geom.is_irregular else []
    if missing:
        n = sum(m for _, m in missing)
        where = ", ".join(f"{m} after slice {k + 1}" for k, m in missing[:4])
        text = (f"{n} slice(s) missing from the series ({where}; the series steps "
                f"{geom.median_step_mm:.2f} mm): filled by linear interpolation between their "
                "neighbours; check that no DICOM files were lost")
        corrections.append({"kind": "missing_slices", "n_missing": n,
                            "after_slices": [k + 1 for k, _ in missing], "new_step_mm": step,
                            "description": text})
        warnings.append(text)
    elif geom.is_irregular:
        steps = geom.steps_mm
        text = (f"non-uniform slice spacing ({steps.min():.2f}-{steps.max():.2f} mm) resampled "
                f"to a regular {step:.2f} mm by linear interpolation between slices")
        corrections.append({"kind": "irregular_spacing", "min_step_mm": float(steps.min()),
                            "max_step_mm": float(steps.max()), "new_step_mm": step,
                            "description": text})
        warnings.append(text)
    return SeriesVolume(image, described, corrections, warnings, tilt_tag, thickness)
