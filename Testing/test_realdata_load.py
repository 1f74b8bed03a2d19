"""Loading the real scans in ../shared/data/real (skipped when that folder is absent).

Visible Human Male DICOM (inside vhm_head_dicom.tgz), the CThead NIfTI and the GE series
with 18.5 deg gantry tilt and 4/7 mm slices: geometry and HU plausibility.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from c2net import geometry as geo
from c2net.dicom_series import analyse_stack, scan_dicom_folder
from c2net.load import list_dicom_series, load_ct
from scipy import ndimage

REAL = Path(os.environ.get("C2NET_REAL_DATA",
                           Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real"))
if not REAL.is_dir():  # the team checkout sits beside /work/shared
    REAL = Path("/work/shared/data/real")

pytestmark = [pytest.mark.realdata,
              pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data/real is absent")]

VHM_TGZ = REAL / "vhm_head_dicom.tgz"
CTHEAD = REAL / "cthead_approxHU.nii.gz"
GE = REAL / "ge_gantry_tilt_dicom"


def _need(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path.name} is absent")


@pytest.fixture(scope="session")
def vhm_folder(tmp_path_factory) -> Path:
    _need(VHM_TGZ)
    out = tmp_path_factory.mktemp("vhm")
    with tarfile.open(VHM_TGZ, "r:gz") as tf:
        for member in tf.getmembers():
            if member.isfile() and not member.name.startswith(("/", "..")) \
                    and ".." not in Path(member.name).parts:
                tf.extract(member, out)
    return out


@pytest.fixture(scope="session")
def vhm(vhm_folder):
    return load_ct(vhm_folder)


def _hu_plausible(image: sitk.Image) -> None:
    arr = sitk.GetArrayViewFromImage(image)
    corner = arr[:, :20, :20]  # outside the body: air
    assert -1100.0 < float(np.median(corner)) < -900.0
    assert int(np.count_nonzero(arr > 700.0)) > 5000  # cortical bone is present
    body = arr[arr > -300.0]
    assert -300.0 < float(np.median(body)) < 300.0  # soft tissue around water


def test_vhm_dicom_geometry_and_hu(vhm):
    img, info = vhm.image, vhm.info
    assert img.GetSize() == (512, 512, 245)
    np.testing.assert_allclose(img.GetSpacing(), (1.0, 1.0, 1.0), atol=1e-6)
    assert info["format"] == "dicom" and info["modality"] == "CT"
    assert info["n_series_found"] == 1 and info["n_source_slices"] == 245
    assert info["corrections"] == []
    assert info["orientation_code"] == "LPS" and info["obliquity_deg"] == 0.0
    assert img.GetPixelID() == sitk.sitkFloat32
    _hu_plausible(img)
    # superior is up: the skull vertex (bone, no neck) is in the top slices
    arr = sitk.GetArrayViewFromImage(img)
    top_bone = np.count_nonzero(arr[-30:] > 700)
    assert top_bone > 1000


def test_vhm_origin_matches_first_slice_ipp(vhm_folder, vhm):
    series = scan_dicom_folder(vhm_folder)
    assert len(series) == 1
    geom = analyse_stack(series[0].slices)
    np.testing.assert_allclose(vhm.image.GetOrigin(), geom.origin, atol=1e-6)
    lowest = min(s.origin[2] for s in series[0].slices)
    assert vhm.image.GetOrigin()[2] == pytest.approx(lowest)


def test_vhm_tgz_archive_loads_directly(vhm_folder, vhm):
    listed = list_dicom_series(vhm_folder)
    assert len(listed) == 1 and listed[0]["n_slices"] == 245 and listed[0]["modality"] == "CT"
    direct = load_ct(VHM_TGZ)
    assert direct.info["archive"] is True
    assert direct.image.GetSize() == vhm.image.GetSize()
    np.testing.assert_allclose(direct.image.GetOrigin(), vhm.image.GetOrigin())


def test_cthead_nifti_geometry_and_hu():
    _need(CTHEAD)
    loaded = load_ct(CTHEAD)
    img = loaded.image
    assert img.GetSize() == (256, 256, 113)
    np.testing.assert_allclose(img.GetSpacing(), (1.0, 1.0, 2.0), atol=1e-6)
    ref = sitk.ReadImage(str(CTHEAD))
    np.testing.assert_allclose(img.GetOrigin(), ref.GetOrigin())
    np.testing.assert_allclose(img.GetDirection(), ref.GetDirection())
    assert loaded.info["format"] == "nifti"
    assert loaded.info["orientation_code"] == geo.orientation_code(ref)
    _hu_plausible(img)
    assert any("coarse voxel spacing" in w for w in loaded.warnings)


@pytest.fixture(scope="module")
def ge():
    _need(GE)
    return load_ct(GE)


def test_ge_tilt_and_irregular_spacing_detected_and_corrected(ge):
    info = ge.info
    assert info["gantry_tilt_tag_deg"] == pytest.approx(18.5)
    kinds = {c["kind"]: c for c in info["corrections"]}
    assert set(kinds) == {"gantry_tilt", "irregular_spacing"}
    assert kinds["gantry_tilt"]["angle_deg"] == pytest.approx(18.5, abs=0.05)
    steps = info["source_stack"]["slice_step_mm"]
    assert steps["median"] == pytest.approx(4.0, abs=0.01)
    assert steps["max"] == pytest.approx(7.0, abs=0.01)
    assert steps["min"] == pytest.approx(1.08, abs=0.01)  # the overlap between the blocks
    assert info["n_source_slices"] == 28
    assert any("gantry tilt of 18.5\u00b0 corrected by resampling" in w for w in ge.warnings)
    img = ge.image
    np.testing.assert_allclose(img.GetSpacing()[:2], (0.4882812, 0.4882812), atol=1e-6)
    assert img.GetSpacing()[2] == pytest.approx(4.0, abs=0.01)
    # the regular grid's third axis is the slice normal: tilted 18.5 deg from the table axis
    d = geo.direction_matrix(img)
    assert np.degrees(np.arccos(d[2, 2])) == pytest.approx(18.5, abs=0.05)
    assert info["obliquity_deg"] == pytest.approx(18.5, abs=0.05)
    _hu_plausible_ge(img)


def _hu_plausible_ge(img: sitk.Image) -> None:
    arr = sitk.GetArrayViewFromImage(img)
    assert int(np.count_nonzero(arr > 700.0)) > 5000
    assert np.count_nonzero((arr > -1100) & (arr < -900)) > 100000  # air around the head


def test_ge_each_original_slice_is_where_its_ipp_says(ge):
    img = ge.image
    arr = sitk.GetArrayFromImage(img)
    series = scan_dicom_folder(GE)[0]
    geom = analyse_stack(series.slices)
    jj, ii = np.mgrid[0:512:4, 0:512:4]
    worst_right, far_wrong = 1.0, []
    for rank, k in enumerate(geom.order):
        s = series.slices[k]
        original = sitk.GetArrayFromImage(sitk.ReadImage(s.path, sitk.sitkFloat32))[0, ::4, ::4]
        row, col = s.direction[:, 0], s.direction[:, 1]
        offs = ii.reshape(-1, 1) * s.pixel_spacing[0] * row \
            + jj.reshape(-1, 1) * s.pixel_spacing[1] * col
        ref = original.ravel()
        keep = ref > -1100  # inside the reconstruction circle

        def sample(points):
            ijk = geo.lps_to_index(img, points)
            return ndimage.map_coordinates(arr, ijk[:, ::-1].T, order=1, mode="nearest")

        at_ipp = sample(s.origin + offs)
        worst_right = min(worst_right, np.corrcoef(ref[keep], at_ipp[keep])[0, 1])
        if rank in (0, 13):  # slices on the regular grid's planes: reproduced almost exactly
            assert np.median(np.abs(at_ipp - ref)[keep]) < 2.0
        # the same slice placed as if there were no tilt (no in-plane shift) does not match
        untilted = geom.origin + geom.positions_mm[rank] * geom.normal
        if rank >= 20:
            far_wrong.append(np.corrcoef(ref[keep], sample(untilted + offs)[keep])[0, 1])
    assert worst_right > 0.99
    assert max(far_wrong) < 0.6
