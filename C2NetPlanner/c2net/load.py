"""Load a CT from a DICOM folder / archive, NIfTI, NRRD or MetaImage, keeping its geometry.

:func:`load_ct` returns a :class:`LoadedCT`: a float32 ``SimpleITK.Image`` in Hounsfield units
with the input's own spacing, origin and direction (LPS mm; DICOM stacks with gantry tilt or
irregular slice spacing are resampled onto a regular grid, see :mod:`c2net.dicom_series`),
an ``info`` dict describing the input and what was done to it, and human-readable warnings.

Inputs that cannot be a 3D CT are refused with a :class:`c2net.errors.C2NetError` subclass
whose message says why and whose hint says what to do: :class:`~c2net.errors.InputError`
(missing, unreadable, empty, unsupported), :class:`~c2net.errors.NotCTError` (MR/PET, 2D,
RGB, constant, NaN, not HU) and :class:`~c2net.errors.GeometryError` (missing slices,
inconsistent slice geometry). Inputs are never modified; archives are extracted to a
temporary folder that is removed afterwards.
"""

from __future__ import annotations

import contextlib
import gzip
import locale
import os
import shutil
import struct
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional, Union

import numpy as np
import SimpleITK as sitk

from . import geometry
from .background import Background
from .dicom_series import DicomSeries, choose_series, read_series, scan_dicom_folder
from .errors import InputError, NotCTError
from .sheared_grid import nifti_sform_shear_deg, refuse_sheared

PathLike = Union[str, "os.PathLike[str]"]

#: File name endings of single-file volumes -> format name in ``info["format"]``.
VOLUME_SUFFIXES = {
    ".nii.gz": "nifti", ".nii": "nifti", ".nrrd": "nrrd", ".nhdr": "nrrd",
    ".mha": "mha", ".mhd": "mha",
}
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")
#: Intensity limits a CT in Hounsfield units must reach (air and bone / soft tissue).
MIN_PLAUSIBLE_MAX_HU = 100.0
MAX_PLAUSIBLE_MIN_HU = -200.0
#: Voxel spacing (mm) above which small structures are flagged as coarsely sampled.
COARSE_SPACING_MM = 1.5
#: Obliquity (degrees) above which the acquisition is reported as oblique.
OBLIQUE_DEG = 1.0

_SUPPORTED_TEXT = ("a DICOM folder, .zip, .tgz/.tar.gz or .tar of DICOM files, or a "
                   "volume file (.nii, .nii.gz, .nrrd, .nhdr, .mha, .mhd)")


@dataclass
class LoadedCT:
    """A loaded CT: float32 HU image (LPS geometry), description of the input, warnings."""

    image: sitk.Image
    info: dict
    warnings: List[str] = field(default_factory=list)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in list(VOLUME_SUFFIXES) + list(ARCHIVE_SUFFIXES):
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def _is_dicom_file(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _safe_target(root: Path, name: str) -> Optional[Path]:
    target = (root / name).resolve()
    root_resolved = root.resolve()
    if target != root_resolved and root_resolved not in target.parents:
        return None
    return target


@contextlib.contextmanager
def extracted_archive(path: Path) -> Iterator[Path]:
    """Extract a .zip / .tar(.gz) / .tgz to a temporary folder, removed on exit.

    Only regular files are extracted and none outside the folder (no absolute paths, no
    ``..``, no links), so a hostile archive cannot write elsewhere.
    """
    tmp = Path(tempfile.mkdtemp(prefix="c2net_archive_"))
    try:
        try:
            if path.name.lower().endswith(".zip"):
                with zipfile.ZipFile(path) as zf:
                    for member in zf.infolist():
                        if member.is_dir():
                            continue
                        target = _safe_target(tmp, member.filename)
                        if target is None:
                            continue
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with zf.open(member) as src, open(target, "wb") as dst:
                            shutil.copyfileobj(src, dst)
            else:
                with tarfile.open(path, "r:*") as tf:
                    for member in tf.getmembers():
                        if not member.isfile():
                            continue
                        target = _safe_target(tmp, member.name)
                        src = tf.extractfile(member)
                        if target is None or src is None:
                            continue
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with src, open(target, "wb") as dst:
                            shutil.copyfileobj(src, dst)
        except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as exc:
            raise InputError(f"The archive {path} cannot be read: {exc}",
                             "Check that the download or copy is complete, or unpack it "
                             "yourself and pass the folder.") from exc
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _refuse_array_shape(image: sitk.Image, source: str) -> sitk.Image:
    """Refuse 2D, vector/RGB and 4D images; squeeze a trailing singleton 4th axis."""
    if image.GetNumberOfComponentsPerPixel() > 1:
        raise NotCTError(
            f"{source} is an RGB/vector image ({image.GetNumberOfComponentsPerPixel()} values "
            "per voxel), not a CT volume of Hounsfield units.",
            "Load the original greyscale CT, not a screenshot, colour rendering or "
            "vector field.")
    if image.GetDimension() == 4:
        if image.GetSize()[3] != 1:
            raise NotCTError(f"{source} is a 4D image (size {list(image.GetSize())}), "
                             "not a single 3D CT.",
                             "Extract the one 3D CT volume you want to assess and load it.")
        image = image[:, :, :, 0]
    if image.GetDimension() != 3:
        raise NotCTError(f"{source} is a {image.GetDimension()}D image, not a 3D CT volume.",
                         "Load the whole CT volume (all slices), not a single slice.")
    if min(image.GetSize()) < 2:
        raise NotCTError(f"{source} has a single slice (size {list(image.GetSize())}): it is "
                         "a 2D image, not a 3D CT volume.",
                         "Load the whole CT volume (all slices), not a single slice.")
    return image


def check_hounsfield(image: sitk.Image, source: str, stored_pixel_type: str = "") -> dict:
    """Refuse intensities that cannot be a CT in HU; return intensity statistics.

    Refused: NaN/inf values, a constant volume, 8-bit unsigned 0..255 data (a photo or
    screenshot), a maximum below 100 HU (no soft tissue or bone) and a minimum above -200 HU
    (no air: typically raw stored values without the rescale to HU).
    """
    arr = sitk.GetArrayViewFromImage(image)
    if "float" in stored_pixel_type.lower() or not stored_pixel_type:
        finite = np.isfinite(arr)       # integer voxels (most CT files) cannot be NaN
        if not finite.all():
            bad = int(arr.size - np.count_nonzero(finite))
            raise NotCTError(f"{source} contains {bad} NaN or infinite voxel values.",
                             "The file is damaged or was written by a failed computation; "
                             "re-export the original CT.")
    # NumPy's vectorised reductions over the voxel buffer (no copy): twice as fast as ITK's
    # MinimumMaximumImageFilter here, same values
    lo, hi = float(arr.min()), float(arr.max())
    if lo == hi:
        raise NotCTError(f"{source} is constant (every voxel is {lo:g}): there is no image.",
                         "The file holds no image data; re-export the original CT.")
    if stored_pixel_type == "8-bit unsigned integer" and lo >= 0 and hi <= 255:
        raise NotCTError(f"{source} stores 8-bit values 0..255 (range {lo:g}..{hi:g}): it looks "
                         "like a photo or screenshot, not Hounsfield units.",
                         "Load the original CT (DICOM, or NIfTI/NRRD saved with its HU values).")
    if hi < MIN_PLAUSIBLE_MAX_HU:
        raise NotCTError(f"{source} cannot be a CT in Hounsfield units: its maximum is {hi:g} "
                         f"(a CT reaches at least {MIN_PLAUSIBLE_MAX_HU:g} HU in soft tissue "
                         "and bone).",
                         "This looks like MR, a probability map or normalised data; load the "
                         "original CT in HU.")
    if lo > MAX_PLAUSIBLE_MIN_HU:
        raise NotCTError(f"{source} cannot be a CT in Hounsfield units: its minimum is {lo:g} "
                         f"(air is about -1000 HU; a CT reaches below {MAX_PLAUSIBLE_MIN_HU:g}).",
                         "Raw scanner values without the rescale slope/intercept, an MR or a "
                         "tight crop with no air look like this; load the original CT in HU.")
    sample = arr[:: max(1, arr.shape[0] // 64), ::4, ::4]
    p1, p50, p99 = (float(v) for v in np.percentile(sample, [1, 50, 99]))
    return {"min": lo, "max": hi, "p1": p1, "median": p50, "p99": p99}


#: MetaImage ``Modality`` values -> DICOM modality codes ("" = not stated).
_METAIO_MODALITIES = {"MET_MOD_CT": "CT", "MET_MOD_MR": "MR", "MET_MOD_NM": "NM",
                      "MET_MOD_US": "US", "MET_MOD_OTHER": "", "MET_MOD_UNKNOWN": ""}


def _gzip_trailer_size(path: Path) -> Optional[int]:
    """The uncompressed length (mod 2**32) that a gzip file's trailer records (RFC 1952 ISIZE).

    A complete single-member stream ends with it; a truncated one ends in compressed data,
    which matches the length its header promises with odds of 2**-32. So a match proves the
    file complete without decompressing it a second time (ITK decompresses it to read it);
    anything else (truncated, multi-member, trailing data) is counted the slow way."""
    try:
        with open(path, "rb") as fh:
            fh.seek(-4, os.SEEK_END)
            return struct.unpack("<I", fh.read(4))[0]
    except (OSError, struct.error):
        return None


def _nifti_truncation(path: Path) -> Optional[str]:
    """Why a NIfTI file is shorter than its header promises (ITK would zero-fill), or None."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            header = fh.read(540)
            if len(header) < 348:
                return "the header is incomplete"
            for endian in ("<", ">"):
                sizeof_hdr = struct.unpack(endian + "i", header[:4])[0]
                if sizeof_hdr in (348, 540):
                    break
            else:
                return None  # not a NIfTI header we understand: let ITK decide
            if sizeof_hdr == 348:
                dims = struct.unpack(endian + "8h", header[40:56])
                bitpix = struct.unpack(endian + "h", header[72:74])[0]
                vox_offset = struct.unpack(endian + "f", header[108:112])[0]
            else:
                dims = struct.unpack(endian + "8q", header[16:80])
                bitpix = struct.unpack(endian + "h", header[14:16])[0]
                vox_offset = struct.unpack(endian + "q", header[168:176])[0]
            ndim = int(dims[0])
            if not 1 <= ndim <= 7:
                return None
            expected = int(vox_offset) + int(np.prod([max(int(d), 1) for d in dims[1:ndim + 1]],
                                                     dtype=np.int64)) * int(bitpix) // 8
            if opener is open:
                actual = path.stat().st_size
            elif _gzip_trailer_size(path) == expected % (1 << 32):
                return None     # the stream's own record of its length: complete
            else:
                actual = len(header)
                while True:
                    chunk = fh.read(1 << 22)
                    if not chunk:
                        break
                    actual += len(chunk)
    except (OSError, EOFError, struct.error, zlib.error) as exc:
        return f"the file is damaged ({exc})"
    if actual < expected:
        return f"it holds {actual} bytes but its header needs {expected}"
    return None


def _read_volume_file(path: Path, fmt: str) -> tuple:
    truncation = None
    if fmt == "nifti":
        # A compressed file's length is known only once decompressed: count it on a worker
        # thread while ITK decompresses the same file here (both run outside the interpreter
        # lock), and judge it before the image is used.
        truncation = Background(_nifti_truncation, path, name="c2net-load")
    try:
        image, stored, meta = _read_with_itk(path, fmt)
    finally:
        problem = truncation.result() if truncation is not None else None
    if problem:
        raise InputError(f"{path.name} cannot be read as a NIFTI image: {problem} "
                         "(truncated or corrupt).",
                         "The file is corrupt or incompletely copied; copy or export it again.")
    return image, stored, meta


def _read_with_itk(path: Path, fmt: str) -> tuple:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    warn = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # ITK's own warnings are not for the user:
    try:                                               # what they flag is checked and said here
        reader.ReadImageInformation()
        stored = sitk.GetPixelIDValueAsString(reader.GetPixelID())
        image = reader.Execute()
    except RuntimeError as exc:
        detail = str(exc).strip().splitlines()
        raise InputError(f"{path.name} cannot be read as a {fmt.upper()} image "
                         f"({detail[-1][:160] if detail else 'unknown reason'}).",
                         "The file is corrupt, truncated or not what its extension says; "
                         "check the copy or re-export it.") from exc
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(warn)
    meta = {}
    for key in reader.GetMetaDataKeys():
        if key in ("0008|0060", "Modality", "modality"):
            value = reader.GetMetaData(key).strip().upper()
            value = _METAIO_MODALITIES.get(value, value)
            if value:
                meta["modality"] = value
    return image, stored, meta


def _direction_list(image: sitk.Image) -> list:
    return [round(float(v), 9) for v in image.GetDirection()]


def _geometry_info(image: sitk.Image) -> dict:
    return {
        "size": [int(v) for v in image.GetSize()],
        "spacing_mm": [float(v) for v in image.GetSpacing()],
        "origin_lps_mm": [float(v) for v in image.GetOrigin()],
        "direction": _direction_list(image),
        "orientation_code": geometry.orientation_code(image),
        "obliquity_deg": round(geometry.obliquity_deg(image), 3),
        "physical_extent_mm": [float(s * n) for s, n in zip(image.GetSpacing(),
                                                          image.GetSize())],
    }


def _general_warnings(image: sitk.Image) -> List[str]:
    out: List[str] = []
    spacing = image.GetSpacing()
    if max(spacing) > COARSE_SPACING_MM:
        out.append(f"coarse voxel spacing ({', '.join(f'{s:.2f}' for s in spacing)} mm): "
                   "a 4-5 mm pedicle is sampled by few voxels, measurements are less precise")
    obl = geometry.obliquity_deg(image)
    if obl > OBLIQUE_DEG:
        out.append(f"oblique acquisition ({obl:.1f}\u00b0 from the patient axes): handled by "
                   "resampling through physical space")
    return out


def _load_dicom(series_list: List[DicomSeries], series_uid: Optional[str], display: str,
                fmt: str = "dicom") -> LoadedCT:
    chosen = choose_series(series_list, series_uid)
    if chosen.modality not in ("CT", "", "OT"):
        raise NotCTError(f"The DICOM series {chosen.uid} has Modality {chosen.modality}, "
                         "not CT.",
                         "C2NetPlanner measures bone in Hounsfield units and needs a CT series; "
                         "choose the CT series (c2net info lists them).")
    volume = read_series(chosen)
    image = _refuse_array_shape(volume.image, f"DICOM series {chosen.uid}")
    source = f"DICOM series {chosen.uid}"
    stats = check_hounsfield(image, source)
    warnings = list(volume.warnings)
    others = [s for s in series_list if s is not chosen]
    if others:
        listing = "; ".join(f"{s.uid} ({s.modality or '?'}, {s.n_slices} slices"
                            + (f", '{s.tag('series_description')}'" if s.tag("series_description")
                               else "") + ")" for s in others)
        tied = [s for s in others if s.n_slices == chosen.n_slices and s.modality == chosen.modality]
        how = ("chosen with --series" if series_uid else
               f"{len(tied) + 1} series tie at {chosen.n_slices} slices: the first found was "
               "taken; pick one with --series" if tied else "the CT series with the most slices")
        warnings.insert(0, f"{len(series_list)} DICOM series found; loaded {chosen.uid} "
                           f"({chosen.n_slices} slices, {how}); others: {listing}")
    if chosen.excluded:
        warnings.append(f"{len(chosen.excluded)} file(s) of the series left out (localisers or "
                        "a different size/orientation)")
    if chosen.unreadable:
        warnings.append(f"{chosen.unreadable} file(s) of the series could not be read")
    if not chosen.modality:
        warnings.append("the DICOM series has no Modality tag: accepted as CT from its "
                        "intensity range")
    info = {
        "path": display,
        "format": fmt,
        **_geometry_info(image),
        "modality": chosen.modality or None,
        "series_instance_uid": chosen.uid,
        "series_description": chosen.tag("series_description") or None,
        "series_number": chosen.tag("series_number") or None,
        "study_instance_uid": chosen.tag("study_instance_uid") or None,
        "patient_id": chosen.tag("patient_id") or None,
        "manufacturer": chosen.tag("manufacturer") or None,
        "convolution_kernel": chosen.tag("convolution_kernel") or None,
        "n_series_found": len(series_list),
        "other_series": [s.summary() for s in others],
        "n_source_slices": chosen.n_slices,
        "slice_thickness_mm": volume.slice_thickness_mm,
        "gantry_tilt_tag_deg": volume.gantry_tilt_tag_deg,
        "source_stack": volume.geometry,
        "corrections": volume.corrections,
        "intensity_hu": stats,
    }
    warnings += _general_warnings(image)
    return LoadedCT(image=image, info=info, warnings=warnings)


def _load_volume(path: Path, fmt: str, display: str) -> LoadedCT:
    image, stored, meta = _read_volume_file(path, fmt)
    image = _refuse_array_shape(image, path.name)
    refuse_sheared(image, path.name, nifti_sform_shear_deg(path) if fmt == "nifti" else None)
    modality = meta.get("modality")
    if modality and modality not in ("CT", "OT"):
        raise NotCTError(f"{path.name} is labelled Modality {modality}, not CT.",
                         "C2NetPlanner measures bone in Hounsfield units and needs a CT.")
    image = sitk.Cast(image, sitk.sitkFloat32)
    stats = check_hounsfield(image, path.name, stored)
    info = {
        "path": display,
        "format": fmt,
        **_geometry_info(image),
        "modality": modality,
        "series_instance_uid": None,
        "series_description": None,
        "study_instance_uid": None,
        "patient_id": None,
        "n_series_found": 1,
        "slice_thickness_mm": None,
        "stored_pixel_type": stored,
        "corrections": [],
        "intensity_hu": stats,
    }
    return LoadedCT(image=image, info=info, warnings=_general_warnings(image))


def _volume_files(folder: Path) -> List[Path]:
    out = []
    for root, _dirs, files in os.walk(folder):
        for name in files:
            p = Path(root) / name
            if _suffix(p) in VOLUME_SUFFIXES and not name.lower().endswith(".raw"):
                out.append(p)
    return sorted(out)


def _load_folder(folder: Path, series_uid: Optional[str], display: str, fmt: str) -> LoadedCT:
    has_files = any(files for _r, _d, files in os.walk(folder))
    if not has_files:
        raise InputError(f"{display} is empty: there are no files in it.",
                         "Point to the folder that holds the CT's DICOM files (or a NIfTI/NRRD "
                         "file).")
    series_list = scan_dicom_folder(folder)
    if series_list:
        return _load_dicom(series_list, series_uid, display, fmt)
    volumes = _volume_files(folder)
    if len(volumes) == 1 and series_uid is None:
        loaded = _load_volume(volumes[0], VOLUME_SUFFIXES[_suffix(volumes[0])], display)
        loaded.info["inner_file"] = str(volumes[0].relative_to(folder))
        return loaded
    if len(volumes) > 1:
        names = ", ".join(str(v.relative_to(folder)) for v in volumes[:5])
        raise InputError(f"{display} holds no DICOM series but several volume files ({names}).",
                         "Pass the one volume file you want to load.")
    raise InputError(f"{display} contains no readable DICOM files.",
                     "Point to the folder (or .zip) that holds the CT's DICOM files, or "
                     "pass a NIfTI/NRRD/MHA file.")


@contextlib.contextmanager
def _process_locale_kept() -> Iterator[None]:
    """GDCM (behind SimpleITK's DICOM reader) switches the process locale to "C", after which
    Python reads and writes text as ASCII by default; put the caller's locale back."""
    saved = {cat: locale.setlocale(cat) for cat in (locale.LC_CTYPE, locale.LC_NUMERIC)}
    try:
        yield
    finally:
        for cat, value in saved.items():
            with contextlib.suppress(locale.Error):
                locale.setlocale(cat, value)


def load_ct(path: PathLike, series_uid: Optional[str] = None) -> LoadedCT:
    """Load a CT (DICOM folder/archive/file, NIfTI, NRRD, MHA/MHD) as float32 HU.

    ``series_uid`` picks a DICOM series when the input holds several (default: the CT series
    with the most slices). The returned image keeps the input's spacing, origin and direction
    (LPS mm); a gantry-tilted or irregularly spaced DICOM stack is resampled onto a regular
    grid along the slice axes and the normal (recorded in ``info["corrections"]``).
    """
    with _process_locale_kept():
        return _load_ct(path, series_uid)


def list_dicom_series(folder_or_zip: PathLike) -> List[dict]:
    """Describe every DICOM series in a folder (recursive) or archive, largest first."""
    with _process_locale_kept():
        return _list_dicom_series(folder_or_zip)


def _load_ct(path: PathLike, series_uid: Optional[str] = None) -> LoadedCT:
    if path is None or str(path).strip() == "":
        raise InputError("No input CT was given.", "Pass " + _SUPPORTED_TEXT + ".")
    p = Path(path).expanduser()
    display = str(path)
    if not p.exists():
        raise InputError(f"{display} does not exist.",
                         "Check the path (spelling, mounted drive) and pass "
                         + _SUPPORTED_TEXT + ".")
    if p.is_dir():
        return _load_folder(p, series_uid, display, "dicom")
    suffix = _suffix(p)
    if suffix in ARCHIVE_SUFFIXES:
        with extracted_archive(p) as folder:
            loaded = _load_folder(folder, series_uid, display, "dicom")
        loaded.info["archive"] = True
        return loaded
    if suffix in VOLUME_SUFFIXES:
        return _load_volume(p, VOLUME_SUFFIXES[suffix], display)
    if suffix == ".dcm" or _is_dicom_file(p):
        if series_uid is None:
            series_uid = _series_uid_of(p)
        series_list = scan_dicom_folder(p.parent)
        if not series_list:
            raise InputError(f"{display} cannot be read as DICOM.",
                             "The file is corrupt or not DICOM; check the copy.")
        return _load_dicom(series_list, series_uid, display)
    raise InputError(f"{display}: unsupported file type '{suffix or p.name}'.",
                     "Pass " + _SUPPORTED_TEXT + ".")


def _series_uid_of(path: Path) -> Optional[str]:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputError(f"{path} cannot be read as DICOM.",
                         "The file is corrupt or not DICOM; check the copy.") from exc
    return reader.GetMetaData("0020|000e").strip() if reader.HasMetaDataKey("0020|000e") else None


def _list_dicom_series(folder_or_zip: PathLike) -> List[dict]:
    p = Path(folder_or_zip).expanduser()
    if not p.exists():
        raise InputError(f"{folder_or_zip} does not exist.", "Check the path.")
    if p.is_dir():
        return [s.summary() for s in scan_dicom_folder(p)]
    if _suffix(p) in ARCHIVE_SUFFIXES:
        with extracted_archive(p) as folder:
            return [s.summary() for s in scan_dicom_folder(folder)]
    if _is_dicom_file(p) or _suffix(p) == ".dcm":
        return [s.summary() for s in scan_dicom_folder(p.parent)]
    raise InputError(f"{folder_or_zip} is not a folder or archive of DICOM files.",
                     "Pass a DICOM folder, .zip, .tgz/.tar.gz or .tar.")
