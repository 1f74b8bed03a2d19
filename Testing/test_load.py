"""Tests of c2net.load / c2net.dicom_series: formats, geometry, DICOM series, refusals.

All inputs are written into ``tmp_path`` with SimpleITK (DICOM slices through GDCM with
explicit ImagePositionPatient / ImageOrientationPatient tags), so every refusal and every
geometry correction is exercised on an input built to need it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from c2net import DISCLAIMER, cli
from c2net import geometry as geo
from c2net.errors import GeometryError, InputError, NotCTError
from c2net.load import LoadedCT, list_dicom_series, load_ct

AXIAL_IOP = (np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))


# ----------------------------------------------------------------------------- helpers
def ramp_hu(points: np.ndarray) -> np.ndarray:
    """An asymmetric linear HU field of LPS points (N, 3): distinguishes every axis/sign."""
    p = np.asarray(points, dtype=float)
    return -300.0 + 20.0 * p[..., 0] + 25.0 * p[..., 1] + 10.0 * p[..., 2]


def write_dicom_series(folder: Path, ipps, row=AXIAL_IOP[0], col=AXIAL_IOP[1],
                       size=(40, 36), pixel_spacing=(1.0, 1.0), modality="CT",
                       series_uid="1.2.826.0.1.3680043.8.498.1", study_uid="1.2.826.0.1.3680043.8.498",
                       description="test series", values=ramp_hu, intercept=-1024.0,
                       slope=1.0, extra_tags=None, prefix="IM", shuffle=False) -> list:
    """Write one 2D DICOM file per IPP; pixel (i, j) of slice k holds ``values`` at its LPS
    point ``ipp_k + i*sx*row + j*sy*col`` (rounded to integer HU). Returns the file paths."""
    folder.mkdir(parents=True, exist_ok=True)
    row = np.asarray(row, float)
    col = np.asarray(col, float)
    nx, ny = size
    sx, sy = pixel_spacing
    jj, ii = np.mgrid[0:ny, 0:nx]
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    order = list(range(len(ipps)))
    if shuffle:
        order = list(np.random.default_rng(0).permutation(len(ipps)))
    paths = []
    for n, k in enumerate(order):
        ipp = np.asarray(ipps[k], float)
        pts = ipp + ii[..., None] * sx * row + jj[..., None] * sy * col
        arr = np.round(values(pts)).astype(np.int16)
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing((float(sx), float(sy)))
        tags = {
            "0008|0060": modality,
            "0020|000e": series_uid,
            "0020|000d": study_uid,
            "0008|0018": f"{series_uid}.{k + 1}",
            "0008|103e": description,
            "0010|0020": "PHANTOM-1",
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{v:.6f}" for v in ipp),
            "0020|0037": "\\".join(f"{v:.7f}" for v in np.concatenate([row, col])),
            "0028|1052": f"{intercept:g}",
            "0028|1053": f"{slope:g}",
            "0018|0050": "1.0",
        }
        tags.update(extra_tags or {})
        for key, value in tags.items():
            img.SetMetaData(key, value)
        path = folder / f"{prefix}{n:04d}.dcm"
        writer.SetFileName(str(path))
        writer.Execute(img)
        paths.append(path)
    return paths


def axial_ipps(n=10, step=1.5, origin=(-20.0, -18.0, 30.0)):
    return [np.asarray(origin) + np.array([0.0, 0.0, k * step]) for k in range(n)]


def write_volume(path: Path, arr_kji: np.ndarray, spacing=(0.8, 0.9, 1.2),
                 origin=(10.0, -20.0, 30.0), direction=None) -> sitk.Image:
    img = sitk.GetImageFromArray(arr_kji)
    if img.GetDimension() == 3:
        img.SetSpacing(spacing)
        img.SetOrigin(origin)
        if direction is not None:
            img.SetDirection(direction)
    sitk.WriteImage(img, str(path))
    return img


def ct_like_array(shape=(12, 20, 24), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    arr = np.full(shape, -1000.0, dtype=np.float32)
    arr[2:-2, 3:-3, 3:-3] = 40.0
    arr[4:8, 6:12, 8:16] = 900.0
    return arr + rng.normal(0, 5, shape).astype(np.float32)


def sample_linear(image: sitk.Image, points: np.ndarray) -> np.ndarray:
    """Trilinear samples of ``image`` at LPS points (N, 3) (scipy, index space)."""
    from scipy import ndimage

    ijk = geo.lps_to_index(image, points)
    arr = sitk.GetArrayFromImage(image)
    return ndimage.map_coordinates(arr, ijk[:, ::-1].T, order=1, mode="nearest")


def voxel_points(image: sitk.Image) -> np.ndarray:
    size = image.GetSize()
    kk, jj, ii = np.meshgrid(*[np.arange(s) for s in size[::-1]], indexing="ij")
    ijk = np.stack([ii.ravel(), jj.ravel(), kk.ravel()], axis=1)
    return geo.index_to_lps(image, ijk)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------- volume formats
@pytest.mark.parametrize("name,fmt", [("ct.nii.gz", "nifti"), ("ct.nii", "nifti"),
                                      ("ct.nrrd", "nrrd"), ("ct.mha", "mha"), ("ct.mhd", "mha")])
def test_volume_formats_keep_geometry_and_values(tmp_path, name, fmt):
    arr = ct_like_array()
    c, s = np.cos(np.radians(20)), np.sin(np.radians(20))
    direction = np.array([[c, 0, s], [0, -1, 0], [-s, 0, c]])  # oblique and flipped
    direction = direction[:, [1, 0, 2]]  # permuted axes too
    written = write_volume(tmp_path / name, arr.astype(np.int16),
                           direction=tuple(direction.ravel()))
    loaded = load_ct(tmp_path / name)
    assert isinstance(loaded, LoadedCT)
    img = loaded.image
    assert img.GetPixelID() == sitk.sitkFloat32
    assert img.GetSize() == written.GetSize()
    np.testing.assert_allclose(img.GetSpacing(), written.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(img.GetOrigin(), written.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(img.GetDirection(), written.GetDirection(), atol=1e-5)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), arr.astype(np.int16))
    info = loaded.info
    assert info["format"] == fmt
    assert info["size"] == list(written.GetSize())
    assert info["orientation_code"] == geo.orientation_code(written)
    assert info["obliquity_deg"] == pytest.approx(20.0, abs=0.01)
    assert info["corrections"] == []
    assert any("oblique" in w for w in loaded.warnings)
    assert tmp_path.joinpath(name).exists()


def test_single_volume_inside_zip(tmp_path):
    arr = ct_like_array()
    src = tmp_path / "ct.nii.gz"
    write_volume(src, arr)
    archive = tmp_path / "case.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(src, "case/ct.nii.gz")
    loaded = load_ct(archive)
    assert loaded.info["format"] == "nifti"
    assert loaded.info["inner_file"] == os.path.join("case", "ct.nii.gz")
    np.testing.assert_allclose(sitk.GetArrayFromImage(loaded.image), arr, atol=1e-3)


# ------------------------------------------------------------------------- DICOM series
def test_dicom_series_geometry_rescale_and_order(tmp_path):
    ipps = axial_ipps(n=10, step=1.5)
    paths = write_dicom_series(tmp_path / "ser", ipps, pixel_spacing=(0.7, 0.8), shuffle=True,
                               extra_tags={"0018|0050": "1.5"})
    loaded = load_ct(tmp_path / "ser")
    img = loaded.image
    assert img.GetSize() == (40, 36, 10)
    np.testing.assert_allclose(img.GetSpacing(), (0.7, 0.8, 1.5), atol=1e-6)
    np.testing.assert_allclose(img.GetOrigin(), ipps[0], atol=1e-6)
    np.testing.assert_allclose(img.GetDirection(), np.eye(3).ravel(), atol=1e-7)
    # every voxel holds the HU of its own physical point (geometry and HU both right)
    pts = voxel_points(img)
    np.testing.assert_allclose(sitk.GetArrayFromImage(img).ravel(), np.round(ramp_hu(pts)),
                               atol=0.51)
    info = loaded.info
    assert info["format"] == "dicom" and info["modality"] == "CT"
    assert info["series_instance_uid"] == "1.2.826.0.1.3680043.8.498.1"
    assert info["series_description"] == "test series"
    assert info["patient_id"] == "PHANTOM-1"
    assert info["study_instance_uid"] == "1.2.826.0.1.3680043.8.498"
    assert info["n_series_found"] == 1
    assert info["slice_thickness_mm"] == pytest.approx(1.5)
    assert info["corrections"] == [] and loaded.warnings == []
    assert info["orientation_code"] == "LPS"
    # the stored pixels are HU + 1024: SimpleITK applied the rescale intercept on reading
    n = 40 * 36
    first = sorted(paths)[0]
    raw = np.frombuffer(first.read_bytes()[-2 * n:], dtype="<i2").reshape(36, 40)
    assert raw.min() >= 0, "stored values should be unsigned-offset, not HU"
    slice_hu = sitk.GetArrayFromImage(img)
    matches = [np.array_equal(raw.astype(float) - 1024.0, slice_hu[z]) for z in range(10)]
    assert sum(matches) == 1


def test_dicom_rescale_slope_applied(tmp_path):
    ipps = axial_ipps(n=4, step=2.0)
    even = lambda p: 2.0 * np.round(ramp_hu(p) / 2.0)  # noqa: E731 - representable at slope 2
    write_dicom_series(tmp_path / "ser", ipps, values=even, slope=2.0, intercept=-1024.0)
    loaded = load_ct(tmp_path / "ser")
    pts = voxel_points(loaded.image)
    np.testing.assert_allclose(sitk.GetArrayFromImage(loaded.image).ravel(), even(pts), atol=1e-3)


def test_dicom_feet_first_descending_positions(tmp_path):
    ipps = axial_ipps(n=8, step=-2.0, origin=(-20.0, -18.0, 60.0))
    write_dicom_series(tmp_path / "ser", ipps)
    loaded = load_ct(tmp_path / "ser")
    img = loaded.image
    assert img.GetSpacing()[2] == pytest.approx(2.0)
    assert img.GetOrigin()[2] == pytest.approx(60.0 - 14.0)  # lowest slice first
    pts = voxel_points(img)
    np.testing.assert_allclose(sitk.GetArrayFromImage(img).ravel(), np.round(ramp_hu(pts)),
                               atol=0.51)


def test_sagittal_dicom_series_geometry(tmp_path):
    # rows run posterior, columns run inferior, slices stack towards patient left
    row, col = np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, -1.0])
    ipps = [np.array([-10.0 + 1.2 * k, -30.0, 40.0]) for k in range(9)]
    write_dicom_series(tmp_path / "sag", ipps, row=row, col=col)
    img = load_ct(tmp_path / "sag").image
    assert geo.orientation_code(img) == "PIR"  # normal = row x col = -x -> towards right
    pts = voxel_points(img)
    np.testing.assert_allclose(sitk.GetArrayFromImage(img).ravel(), np.round(ramp_hu(pts)),
                               atol=0.51)


def _three_series(folder: Path) -> None:
    write_dicom_series(folder / "a", axial_ipps(12), series_uid="1.2.3.100", description="big CT")
    write_dicom_series(folder / "b", axial_ipps(8), series_uid="1.2.3.200",
                       description="small CT", prefix="B")
    write_dicom_series(folder / "a", axial_ipps(20), modality="MR", series_uid="1.2.3.300",
                       description="T2 MR", prefix="MR")


def test_several_series_choose_largest_ct_and_say_so(tmp_path):
    _three_series(tmp_path / "study")
    loaded = load_ct(tmp_path / "study")
    assert loaded.info["series_instance_uid"] == "1.2.3.100"
    assert loaded.image.GetSize()[2] == 12
    assert loaded.info["n_series_found"] == 3
    others = {s["series_instance_uid"]: s for s in loaded.info["other_series"]}
    assert set(others) == {"1.2.3.200", "1.2.3.300"}
    assert others["1.2.3.300"]["modality"] == "MR" and others["1.2.3.300"]["n_slices"] == 20
    assert "3 DICOM series found" in loaded.warnings[0]
    assert "1.2.3.200" in loaded.warnings[0] and "1.2.3.300" in loaded.warnings[0]

    chosen = load_ct(tmp_path / "study", series_uid="1.2.3.200")
    assert chosen.image.GetSize()[2] == 8
    assert chosen.info["series_description"] == "small CT"

    with pytest.raises(NotCTError, match="Modality MR"):
        load_ct(tmp_path / "study", series_uid="1.2.3.300")
    with pytest.raises(InputError, match="1.2.3.999 is not in the input") as err:
        load_ct(tmp_path / "study", series_uid="1.2.3.999")
    assert "1.2.3.100" in err.value.message and "--series" in err.value.hint


def test_list_dicom_series_folder_and_zip(tmp_path):
    _three_series(tmp_path / "study")
    listed = list_dicom_series(tmp_path / "study")
    assert [s["series_instance_uid"] for s in listed] == ["1.2.3.300", "1.2.3.100", "1.2.3.200"]
    assert [s["n_slices"] for s in listed] == [20, 12, 8]
    assert listed[0]["modality"] == "MR" and listed[1]["series_description"] == "big CT"
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted((tmp_path / "study").rglob("*.dcm")):
            zf.write(p, p.relative_to(tmp_path).as_posix())
    assert list_dicom_series(archive) == listed


@pytest.mark.parametrize("kind", ["zip", "tgz", "tar.gz"])
def test_dicom_archive_loaded_cleaned_up_and_unchanged(tmp_path, monkeypatch, kind):
    import tempfile

    write_dicom_series(tmp_path / "src" / "series1", axial_ipps(6))
    archive = tmp_path / f"case.{kind}"
    files = sorted((tmp_path / "src").rglob("*.dcm"))
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for p in files:
                zf.write(p, p.relative_to(tmp_path / "src").as_posix())
    else:
        with tarfile.open(archive, "w:gz") as tf:
            for p in files:
                tf.add(p, p.relative_to(tmp_path / "src").as_posix())
    before = sha256(archive)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    loaded = load_ct(archive)
    assert loaded.image.GetSize() == (40, 36, 6)
    assert loaded.info["archive"] is True and loaded.info["path"] == str(archive)
    assert list(scratch.iterdir()) == [], "temporary extraction folder left behind"
    assert sha256(archive) == before


def test_zip_with_path_traversal_is_contained(tmp_path):
    write_dicom_series(tmp_path / "src", axial_ipps(4))
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted((tmp_path / "src").glob("*.dcm")):
            zf.write(p, p.name)
        zf.writestr("../../escaped.txt", "x")
    load_ct(archive)
    assert not (tmp_path.parent / "escaped.txt").exists()
    assert not (tmp_path / "escaped.txt").exists()


def test_single_dicom_file_loads_its_series(tmp_path):
    _three_series(tmp_path / "study")
    one = sorted((tmp_path / "study" / "b").glob("*.dcm"))[3]
    loaded = load_ct(one)
    assert loaded.info["series_instance_uid"] == "1.2.3.200"


# -------------------------------------------------------- gantry tilt / irregular slices
def _tilted_ipps(n, step_along_normal, tilt_deg, row, col):
    """IPPs of a tilted acquisition: slices move along z (table axis), normal is tilted."""
    normal = np.cross(row, col)
    stack = np.array([0.0, 0.0, 1.0])
    dist = step_along_normal / float(stack @ normal)
    origin = np.array([-22.0, -20.0, 10.0])
    return [origin + stack * dist * k for k in range(n)], normal


def _gantry(tilt_deg):
    t = np.radians(tilt_deg)
    return np.array([1.0, 0.0, 0.0]), np.array([0.0, np.cos(t), -np.sin(t)])


def test_gantry_tilt_corrected_and_each_slice_kept_at_its_ipp(tmp_path):
    row, col = _gantry(15.0)
    ipps, normal = _tilted_ipps(14, 2.0, 15.0, row, col)
    write_dicom_series(tmp_path / "tilt", ipps, row=row, col=col, size=(44, 40),
                       extra_tags={"0018|1120": "15.0"})
    loaded = load_ct(tmp_path / "tilt")
    img = loaded.image
    kinds = [c["kind"] for c in loaded.info["corrections"]]
    assert kinds == ["gantry_tilt"]
    assert loaded.info["corrections"][0]["angle_deg"] == pytest.approx(15.0, abs=0.05)
    assert loaded.info["gantry_tilt_tag_deg"] == pytest.approx(15.0)
    assert any("gantry tilt of 15.0\u00b0 corrected by resampling" in w for w in loaded.warnings)
    d = geo.direction_matrix(img)
    np.testing.assert_allclose(d[:, 2], normal, atol=1e-6)  # regular grid along the normal
    np.testing.assert_allclose(d[:, 1], col, atol=1e-6)
    assert img.GetSpacing()[2] == pytest.approx(2.0, abs=1e-4)
    # each original slice: its pixels, placed at their IPP-derived LPS points, are found there
    n_pix = 44 * 40
    jj, ii = np.mgrid[0:40, 0:44]
    border = (ii == 0) | (jj == 0) | (ii == 43) | (jj == 39)  # half a pixel meets the fill
    for k in (0, 5, 13):
        pts = ipps[k] + ii.reshape(-1, 1) * row + jj.reshape(-1, 1) * col
        got = sample_linear(img, pts)
        assert got.size == n_pix
        keep = ~border.ravel()
        np.testing.assert_allclose(got[keep], np.round(ramp_hu(pts[keep])), atol=0.6)
    # the whole volume holds the HU of each voxel's own point (inside all slice footprints)
    pts = voxel_points(img)
    inside = np.ones(len(pts), bool)
    for ipp in ipps:
        u = (pts - ipp) @ row
        v = (pts - ipp) @ col
        inside &= (u >= 1) & (u <= 42) & (v >= 1) & (v <= 38)
    assert inside.sum() > 5000
    vals = sitk.GetArrayFromImage(img).ravel()
    np.testing.assert_allclose(vals[inside], ramp_hu(pts[inside]), atol=0.6)


def test_naive_stack_of_tilted_series_would_be_wrong(tmp_path):
    """Power check: stacking the tilted slices without the shift misplaces them by mm."""
    row, col = _gantry(15.0)
    ipps, normal = _tilted_ipps(14, 2.0, 15.0, row, col)
    files = write_dicom_series(tmp_path / "tilt", ipps, row=row, col=col, size=(44, 40))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f in files])
    naive = sitk.Cast(reader.Execute(), sitk.sitkFloat32)
    last = ipps[-1] + np.array([[20.0, 20.0]]) @ np.stack([row, col])
    err = abs(sample_linear(naive, last)[0] - ramp_hu(last)[0])
    assert err > 20.0  # the ramp changes ~>10 HU/mm; the naive stack is off by ~7 mm


def test_irregular_spacing_resampled_linearly(tmp_path):
    z = np.cumsum([0.0, 2.0, 2.0, 2.0, 3.0, 3.0, 2.0, 2.0, 4.0, 2.0])
    ipps = [np.array([-20.0, -18.0, 5.0 + zz]) for zz in z]
    write_dicom_series(tmp_path / "irr", ipps)
    loaded = load_ct(tmp_path / "irr")
    img = loaded.image
    assert [c["kind"] for c in loaded.info["corrections"]] == ["irregular_spacing"]
    corr = loaded.info["corrections"][0]
    assert corr["min_step_mm"] == pytest.approx(2.0) and corr["max_step_mm"] == pytest.approx(4.0)
    assert img.GetSpacing()[2] == pytest.approx(2.0)
    assert img.GetSize()[2] == int(z[-1] / 2.0) + 1
    np.testing.assert_allclose(img.GetOrigin(), ipps[0], atol=1e-6)
    pts = voxel_points(img)
    np.testing.assert_allclose(sitk.GetArrayFromImage(img).ravel(), ramp_hu(pts), atol=0.6)
    assert any("non-uniform slice spacing" in w for w in loaded.warnings)


def test_tilt_tag_without_sheared_positions_is_not_corrected(tmp_path):
    write_dicom_series(tmp_path / "s", axial_ipps(6), extra_tags={"0018|1120": "12"})
    loaded = load_ct(tmp_path / "s")
    assert loaded.info["corrections"] == []
    assert any("Tilt tag says 12" in w for w in loaded.warnings)


def test_missing_slices_refused(tmp_path):
    z = [0, 2, 4, 6, 8, 18, 20, 22]
    write_dicom_series(tmp_path / "gap", [np.array([-20.0, -18.0, 5.0 + v]) for v in z])
    with pytest.raises(GeometryError, match="Slices are missing: a gap of 10.0 mm") as err:
        load_ct(tmp_path / "gap")
    assert "median step is 2.00 mm" in err.value.message
    assert "complete series" in err.value.hint


def test_duplicate_slice_positions_refused(tmp_path):
    ipps = axial_ipps(5)
    ipps.append(ipps[2].copy())
    write_dicom_series(tmp_path / "dup", ipps)
    with pytest.raises(GeometryError, match="lie at the same position"):
        load_ct(tmp_path / "dup")


def test_implausible_tilt_refused(tmp_path):
    row, col = _gantry(40.0)
    ipps, _ = _tilted_ipps(6, 2.0, 40.0, row, col)
    write_dicom_series(tmp_path / "t40", ipps, row=row, col=col)
    with pytest.raises(GeometryError, match="40.0 degrees from the slice normal"):
        load_ct(tmp_path / "t40")


# ------------------------------------------------------------------------------ refusals
def test_missing_path_refused(tmp_path):
    with pytest.raises(InputError, match="does not exist") as err:
        load_ct(tmp_path / "nope.nii.gz")
    assert "Check the path" in err.value.hint


def test_empty_folder_refused(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(InputError, match="is empty: there are no files in it"):
        load_ct(tmp_path / "empty")


def test_folder_without_dicom_refused(tmp_path):
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "notes.txt").write_text("not an image")
    (folder / "fake.dcm").write_bytes(b"\0" * 128 + b"DICM" + os.urandom(300))
    with pytest.raises(InputError, match="contains no readable DICOM files"):
        load_ct(folder)


def test_unsupported_extension_refused(tmp_path):
    p = tmp_path / "scan.jpg"
    p.write_bytes(os.urandom(100))
    with pytest.raises(InputError, match="unsupported file type '.jpg'") as err:
        load_ct(p)
    assert ".nii.gz" in err.value.hint


@pytest.mark.parametrize("name", ["bad.nii.gz", "bad.nrrd", "bad.mha"])
def test_corrupt_file_refused(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(os.urandom(2000))
    with pytest.raises(InputError, match="cannot be read as a") as err:
        load_ct(p)
    assert "corrupt" in err.value.hint


@pytest.mark.parametrize("name", ["cut.nii", "cut.nii.gz"])
def test_truncated_nifti_refused(tmp_path, name):
    """ITK zero-fills a truncated NIfTI silently; the loader must refuse it."""
    import gzip

    write_volume(tmp_path / "ct.nii", ct_like_array())
    data = (tmp_path / "ct.nii").read_bytes()[:-1000]
    (tmp_path / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    with pytest.raises(InputError, match=f"{name} cannot be read as a NIFTI image: it holds"):
        load_ct(tmp_path / name)


def test_truncated_gzip_stream_refused(tmp_path):
    import gzip

    write_volume(tmp_path / "ct.nii", ct_like_array())
    packed = gzip.compress((tmp_path / "ct.nii").read_bytes())
    (tmp_path / "cut.nii.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(InputError, match="cut.nii.gz cannot be read as a NIFTI image"):
        load_ct(tmp_path / "cut.nii.gz")


def test_complete_gzip_judged_by_its_trailer_and_multi_member_by_counting(tmp_path, monkeypatch):
    """A complete stream is proven complete by its trailer's length record without a second
    decompression; a complete two-member stream (trailer: the last member's length only) is
    counted and accepted, and one whose second member is cut is refused."""
    import gzip

    import c2net.load as load_module

    write_volume(tmp_path / "ct.nii", ct_like_array())
    data = (tmp_path / "ct.nii").read_bytes()
    (tmp_path / "one.nii.gz").write_bytes(gzip.compress(data))
    decompressed = []

    class CountingGzip(gzip.GzipFile):
        def read(self, size=-1):
            out = super().read(size)
            decompressed.append(len(out))
            return out

    monkeypatch.setattr(load_module.gzip, "open", lambda path, mode: CountingGzip(path, mode))
    assert load_module._nifti_truncation(tmp_path / "one.nii.gz") is None
    assert sum(decompressed) <= 540 < len(data)  # the header only
    two = gzip.compress(data[:5000]) + gzip.compress(data[5000:])
    (tmp_path / "two.nii.gz").write_bytes(two)
    assert load_module._nifti_truncation(tmp_path / "two.nii.gz") is None
    (tmp_path / "cut2.nii.gz").write_bytes(gzip.compress(data[:5000])
                                           + gzip.compress(data[5000:-700]))
    assert "holds" in load_module._nifti_truncation(tmp_path / "cut2.nii.gz")
    assert load_ct(tmp_path / "two.nii.gz").image.GetSize() == load_ct(tmp_path / "ct.nii").image.GetSize()


@pytest.mark.parametrize("name", ["cut.mha", "cut.nrrd"])
def test_truncated_mha_nrrd_refused(tmp_path, name):
    write_volume(tmp_path / name.replace("cut", "ct"), ct_like_array())
    data = (tmp_path / name.replace("cut", "ct")).read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) - 2000])
    with pytest.raises(InputError, match=f"{name} cannot be read"):
        load_ct(tmp_path / name)


def test_corrupt_archive_refused(tmp_path):
    p = tmp_path / "broken.zip"
    p.write_bytes(b"PK\x03\x04" + os.urandom(200))
    with pytest.raises(InputError, match="archive .* cannot be read"):
        load_ct(p)


def test_mr_dicom_refused(tmp_path):
    write_dicom_series(tmp_path / "mr", axial_ipps(8), modality="MR",
                       values=lambda p: 300.0 + 0 * p[..., 0], intercept=0.0)
    with pytest.raises(NotCTError, match="DICOM Modality is MR, not CT") as err:
        load_ct(tmp_path / "mr")
    assert "needs a CT" in err.value.hint


def test_mr_labelled_volume_file_refused(tmp_path):
    img = sitk.GetImageFromArray(ct_like_array().astype(np.int16))
    img.SetMetaData("0008|0060", "MR")
    sitk.WriteImage(img, str(tmp_path / "mr.nrrd"))
    if "0008|0060" not in sitk.ReadImage(str(tmp_path / "mr.nrrd")).GetMetaDataKeys():
        pytest.skip("NRRD writer drops the key")
    with pytest.raises(NotCTError, match="Modality MR"):
        load_ct(tmp_path / "mr.nrrd")


def test_single_dicom_slice_refused(tmp_path):
    write_dicom_series(tmp_path / "one", axial_ipps(1))
    with pytest.raises(NotCTError, match="single slice: it is a 2D image"):
        load_ct(tmp_path / "one")


def test_2d_image_refused(tmp_path):
    img = sitk.GetImageFromArray(ct_like_array()[5])
    sitk.WriteImage(img, str(tmp_path / "slice.nrrd"))
    with pytest.raises(NotCTError, match="2D image, not a 3D CT volume"):
        load_ct(tmp_path / "slice.nrrd")


def test_one_slice_3d_volume_refused(tmp_path):
    write_volume(tmp_path / "thin.nii.gz", ct_like_array()[4:5])
    with pytest.raises(NotCTError, match=r"single slice \(size \[24, 20, 1\]\)"):
        load_ct(tmp_path / "thin.nii.gz")


def test_rgb_image_refused(tmp_path):
    rgb = np.zeros((6, 10, 12, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    img = sitk.GetImageFromArray(rgb, isVector=True)
    sitk.WriteImage(img, str(tmp_path / "rgb.mha"))
    with pytest.raises(NotCTError, match="RGB/vector image \\(3 values per voxel\\)"):
        load_ct(tmp_path / "rgb.mha")


def test_4d_image_refused(tmp_path):
    img = sitk.JoinSeries([sitk.GetImageFromArray(ct_like_array())] * 3)
    assert img.GetDimension() == 4
    sitk.WriteImage(img, str(tmp_path / "t.nii.gz"))
    with pytest.raises(NotCTError, match="4D image"):
        load_ct(tmp_path / "t.nii.gz")


def test_constant_volume_refused(tmp_path):
    write_volume(tmp_path / "c.nii.gz", np.full((8, 10, 12), -1000.0, np.float32))
    with pytest.raises(NotCTError, match=r"is constant \(every voxel is -1000\)"):
        load_ct(tmp_path / "c.nii.gz")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_volume_refused(tmp_path, bad):
    arr = ct_like_array()
    arr[3, 4, 5] = bad
    arr[6, 7, 8] = bad
    write_volume(tmp_path / "n.mha", arr)  # (ITK's NIfTI IO turns NaN into 0)
    with pytest.raises(NotCTError, match="contains 2 NaN or infinite voxel values"):
        load_ct(tmp_path / "n.mha")


def test_intensity_without_bone_or_tissue_refused(tmp_path):
    arr = np.random.default_rng(1).uniform(0.0, 1.0, (8, 10, 12)).astype(np.float32)
    write_volume(tmp_path / "prob.nii.gz", arr)
    with pytest.raises(NotCTError, match="cannot be a CT in Hounsfield units: its maximum is"):
        load_ct(tmp_path / "prob.nii.gz")


def test_raw_values_without_air_refused(tmp_path):
    arr = (ct_like_array() + 1024.0).astype(np.uint16)  # stored values, rescale forgotten
    write_volume(tmp_path / "raw.nrrd", arr)
    with pytest.raises(NotCTError, match="its minimum is [0-9]+ ") as err:
        load_ct(tmp_path / "raw.nrrd")
    assert "rescale" in err.value.hint


def test_uint8_photo_like_volume_refused(tmp_path):
    arr = np.random.default_rng(2).integers(0, 256, (8, 10, 12)).astype(np.uint8)
    write_volume(tmp_path / "photo.mha", arr)
    with pytest.raises(NotCTError, match="8-bit values 0..255.*photo or screenshot"):
        load_ct(tmp_path / "photo.mha")


def test_ct_with_min_below_air_accepted(tmp_path):
    """The HU plausibility checks do not refuse an ordinary CT (padding -2000, bone 1500)."""
    arr = ct_like_array()
    arr[0, 0, :] = -2000.0
    arr[5, 10, 10] = 1500.0
    write_volume(tmp_path / "ok.nii.gz", arr)
    info = load_ct(tmp_path / "ok.nii.gz").info
    assert info["intensity_hu"]["min"] == pytest.approx(-2000.0)
    assert info["intensity_hu"]["max"] == pytest.approx(1500.0, abs=0.1)


# ------------------------------------------------------------------------------ c2net info
def test_cli_info_prints_summary_and_json(tmp_path, capsys):
    _three_series(tmp_path / "study")
    out_json = tmp_path / "out" / "info.json"
    rc = cli.main(["info", str(tmp_path / "study"), "--json", str(out_json)])
    out = capsys.readouterr().out
    assert rc == 0
    assert DISCLAIMER in out
    assert "series:       1.2.3.100 'big CT' (12 slices; 3 series found)" in out
    assert "other:      1.2.3.300 (MR, 20 slices, 'T2 MR')" in out
    assert "spacing:      1 x 1 x 1.5 mm" in out
    assert "orientation:  LPS" in out
    payload = json.loads(out_json.read_text())
    assert payload["disclaimer"] == DISCLAIMER
    assert payload["info"]["series_instance_uid"] == "1.2.3.100"
    assert payload["warnings"] and "3 DICOM series found" in payload["warnings"][0]


def test_cli_info_series_option_and_refusal_exit_code(tmp_path, capsys):
    _three_series(tmp_path / "study")
    assert cli.main(["info", str(tmp_path / "study"), "--series", "1.2.3.200"]) == 0
    assert "1.2.3.200 'small CT' (8 slices" in capsys.readouterr().out
    assert cli.main(["info", str(tmp_path / "study"), "--series", "1.2.3.300"]) == 2
    err = capsys.readouterr().err
    assert "error: The DICOM series 1.2.3.300 has Modality MR, not CT." in err
    assert "hint:" in err


def test_cli_info_tilted_series_reports_correction(tmp_path, capsys):
    row, col = _gantry(15.0)
    ipps, _ = _tilted_ipps(8, 2.0, 15.0, row, col)
    write_dicom_series(tmp_path / "tilt", ipps, row=row, col=col)
    assert cli.main(["info", str(tmp_path / "tilt")]) == 0
    out = capsys.readouterr().out
    assert "corrections:  gantry tilt of 15.0\u00b0 corrected by resampling" in out


def test_tilt_and_irregular_spacing_together_like_the_ge_series(tmp_path):
    """18.5 deg tilt, a 4 mm block, a 1.08 mm overlap step, then a 7 mm block (as the GE)."""
    row, col = _gantry(18.5)
    normal = np.cross(row, col)
    steps = [4.0] * 4 + [1.08] + [7.0] * 3
    along = np.concatenate([[0.0], np.cumsum(steps)])
    stack = np.array([0.0, 0.0, 1.0]) / float(normal[2])
    ipps = [np.array([-22.0, -20.0, 5.0]) + a * stack for a in along]
    write_dicom_series(tmp_path / "ge", ipps, row=row, col=col, size=(44, 40),
                       extra_tags={"0018|1120": "+18.5"})
    loaded = load_ct(tmp_path / "ge")
    img = loaded.image
    assert [c["kind"] for c in loaded.info["corrections"]] == ["gantry_tilt",
                                                               "irregular_spacing"]
    assert loaded.info["corrections"][0]["angle_deg"] == pytest.approx(18.5, abs=0.05)
    assert img.GetSpacing()[2] == pytest.approx(4.0, abs=1e-3)  # the finest regular block
    assert img.GetSize()[2] == int(along[-1] / 4.0 + 1e-6) + 1
    pts = voxel_points(img)
    inside = np.ones(len(pts), bool)
    for ipp in ipps:
        u, v = (pts - ipp) @ row, (pts - ipp) @ col
        inside &= (u >= 1) & (u <= 42) & (v >= 1) & (v <= 38)
    assert inside.sum() > 3000
    np.testing.assert_allclose(sitk.GetArrayFromImage(img).ravel()[inside],
                               ramp_hu(pts[inside]), atol=0.6)
